"""Typed models: every relation kind, custom QuerySets and managers, a save() override."""

from __future__ import annotations

from typing import Any

from django.contrib.contenttypes.fields import GenericForeignKey, GenericRelation
from django.contrib.contenttypes.models import ContentType
from django.db import models

from dualcall import dualmethod
from dualcall.typed import AsyncAttrs


class Question(models.Model):
    question_text = models.CharField(max_length=200)
    pub_date = models.DateTimeField()

    class Meta:
        app_label = "sample"


class Choice(models.Model):
    question = models.ForeignKey(Question, on_delete=models.CASCADE)
    choice_text = models.CharField(max_length=200)
    votes = models.IntegerField(default=0)

    class Meta:
        app_label = "sample"


class Author(models.Model):
    name = models.CharField(max_length=100)

    class Meta:
        app_label = "sample"


class Profile(models.Model):
    author = models.OneToOneField(Author, on_delete=models.CASCADE, related_name="profile")
    bio = models.TextField(blank=True)

    class Meta:
        app_label = "sample"


class Tag(models.Model):
    name = models.CharField(max_length=50)

    class Meta:
        app_label = "sample"


class PostQuerySet(models.QuerySet["Post"]):
    def published(self) -> PostQuerySet:
        return self.filter(published=True)

    @dualmethod
    def publish_all(self) -> int:
        return self.update(published=True)


PostManager = models.Manager.from_queryset(PostQuerySet)


class Post(models.Model):
    title = models.CharField(max_length=200)
    published = models.BooleanField(default=False)
    author = models.ForeignKey(
        Author, on_delete=models.SET_NULL, null=True, blank=True, related_name="posts"
    )
    tags = models.ManyToManyField(Tag, related_name="posts", blank=True)
    comments = GenericRelation("Comment")

    objects = PostManager()
    by_queryset = PostQuerySet.as_manager()

    class Meta:
        app_label = "sample"

    def save(self, *args: Any, **kwargs: Any) -> None:
        super().save(*args, **kwargs)

    @dualmethod
    def word_count(self) -> int:
        return len(self.title.split())


class Comment(models.Model):
    content_type = models.ForeignKey(ContentType, on_delete=models.CASCADE)
    object_id = models.PositiveIntegerField()
    content_object = GenericForeignKey("content_type", "object_id")
    text = models.CharField(max_length=200)

    class Meta:
        app_label = "sample"


class Note(AsyncAttrs, models.Model):
    """Declares ``a`` with the mixin (for pyright): mypy sees the same types."""

    text = models.CharField(max_length=100)
    post = models.ForeignKey(Post, on_delete=models.CASCADE, null=True)

    class Meta:
        app_label = "sample"


@dualmethod
def latest_question() -> Question | None:
    return Question.objects.order_by("-pub_date").first()
