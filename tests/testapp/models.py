"""Models covering every relation kind and manager kind dualcall patches.

=================  ===========================================================
forward FK         Choice.question, Post.author (nullable), Comment.post
reverse FK         Question.choice_set, Author.posts (nullable: has remove/clear)
one-to-one         Profile.author / Author.profile
multi-table        Restaurant(Place): Restaurant.place_ptr / Place.restaurant
many-to-many       Post.tags / Tag.posts
generic FK         Comment.content_object
generic relation   Post.comments
custom managers    Post.objects (from_queryset), Post.published_objects (own
                   get_queryset), Post.by_queryset (as_manager)
save() overrides   Post (its own), Note (from a mixin that is no model)
=================  ===========================================================
"""

from django.conf import settings
from django.contrib.contenttypes.fields import GenericForeignKey, GenericRelation
from django.contrib.contenttypes.models import ContentType
from django.db import models
from django.utils import timezone

from dualcall import dualmethod


class Question(models.Model):
    question_text = models.CharField(max_length=200)
    pub_date = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return self.question_text


class Choice(models.Model):
    question = models.ForeignKey(Question, models.CASCADE)
    choice_text = models.CharField(max_length=200)
    votes = models.IntegerField(default=0)

    def __str__(self) -> str:
        return self.choice_text


class Author(models.Model):
    name = models.CharField(max_length=100, unique=True)


class Profile(models.Model):
    author = models.OneToOneField(Author, models.CASCADE, related_name="profile")
    bio = models.TextField(blank=True)


class Tag(models.Model):
    name = models.CharField(max_length=50, unique=True)


class PostQuerySet(models.QuerySet):
    def published(self):
        return self.filter(published=True)

    @dualmethod
    def publish_all(self):
        """A user QuerySet method made dual; managers get it through from_queryset()."""
        return self.update(published=True)

    def create(self, **kwargs):
        """A user override of a dual name on a custom QuerySet."""
        kwargs.setdefault("body", "created by PostQuerySet.create")
        return super().create(**kwargs)


class PublishedManager(models.Manager):
    def get_queryset(self):
        return super().get_queryset().filter(published=True)


class PostManager(models.Manager.from_queryset(PostQuerySet)):
    pass


class Post(models.Model):
    title = models.CharField(max_length=200)
    body = models.TextField(blank=True)
    published = models.BooleanField(default=False)
    author = models.ForeignKey(Author, models.SET_NULL, null=True, blank=True, related_name="posts")
    tags = models.ManyToManyField(Tag, related_name="posts", blank=True)
    comments = GenericRelation("Comment")
    # How many times the save() override ran for this row.
    save_count = models.IntegerField(default=0)

    objects = PostManager()
    published_objects = PublishedManager()
    by_queryset = PostQuerySet.as_manager()

    class Meta:
        ordering = ["pk"]

    def save(self, *args, **kwargs):
        self.save_count += 1
        super().save(*args, **kwargs)


class Comment(models.Model):
    content_type = models.ForeignKey(ContentType, models.CASCADE)
    object_id = models.PositiveIntegerField()
    content_object = GenericForeignKey("content_type", "object_id")
    text = models.CharField(max_length=200)


class Place(models.Model):
    name = models.CharField(max_length=100)


class Restaurant(Place):
    serves_pizza = models.BooleanField(default=False)


class CountSavesMixin:
    """Not a model: its save() reaches models through plain inheritance."""

    def save(self, *args, **kwargs):
        self.save_count += 1
        super().save(*args, **kwargs)


class Note(CountSavesMixin, models.Model):
    text = models.CharField(max_length=100)
    save_count = models.IntegerField(default=0)


class InSchoolUser(models.Model):
    """A user's role at school: the seed example of dualcall.decorators.

    ``async def is_teacher(user): return (await user.a.inschooluser).type == "teacher"``
    """

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, models.CASCADE, related_name="inschooluser"
    )
    type = models.CharField(max_length=20)


# -- the native PostgreSQL path (issue 15): a model with every common type ----


class NativeGroup(models.Model):
    name = models.CharField(max_length=50)
    rank = models.IntegerField(default=0)


class NativeItem(models.Model):
    """Rows the native-path tests compare between the native and the thread path."""

    group = models.ForeignKey(NativeGroup, models.CASCADE, null=True, related_name="items")
    name = models.CharField(max_length=100)
    number = models.IntegerField()
    big = models.BigIntegerField(default=0)
    price = models.DecimalField(max_digits=12, decimal_places=3)
    ratio = models.FloatField(null=True)
    flag = models.BooleanField(default=False)
    created = models.DateTimeField()
    day = models.DateField(null=True)
    duration = models.DurationField(null=True)
    uid = models.UUIDField(null=True)
    data = models.JSONField(null=True)
    text = models.TextField(blank=True, default="")

    class Meta:
        get_latest_by = "created"
