from django.db import models
from django.utils import timezone
from django.utils.text import slugify


class Tag(models.Model):
    name = models.CharField(max_length=50, unique=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


class Post(models.Model):
    title = models.CharField(max_length=200)
    slug = models.SlugField(max_length=200, unique=True, blank=True)  # from the title
    body = models.TextField()
    published = models.BooleanField(default=False)
    published_at = models.DateTimeField(null=True, blank=True)
    tags = models.ManyToManyField(Tag, blank=True, related_name="posts")

    class Meta:
        ordering = ["-published_at", "pk"]

    def __str__(self):
        return self.title

    def clean(self):
        # Before validate_unique(): a second post with the same title fails
        # full_clean() with "Post with this Slug already exists."
        if not self.slug:
            self.slug = slugify(self.title)

    def save(self, *args, **kwargs):
        # A save() override: `await post.save()` runs all of it in the awaitable.
        if not self.slug:
            self.slug = slugify(self.title)
        if self.published and self.published_at is None:
            self.published_at = timezone.now()
        super().save(*args, **kwargs)


class Comment(models.Model):
    post = models.ForeignKey(Post, on_delete=models.CASCADE, related_name="comments")
    author = models.CharField(max_length=100)
    body = models.TextField()
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created", "pk"]

    def __str__(self):
        return f"{self.author} on {self.post_id}"
