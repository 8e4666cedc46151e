"""Custom managers, from_queryset(), as_manager(), user QuerySet overrides, dualmethod."""

import pytest
from asgiref.sync import sync_to_async
from django.db import models

from dualcall import dualmethod
from tests.testapp.models import Post

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def posts():
    return [Post.objects.create(title=f"p{i}", published=i % 2 == 0) for i in range(4)]


async def test_custom_manager_with_its_own_get_queryset(posts):
    assert await Post.published_objects.count() == 2
    assert await Post.published_objects.get(title="p2") == posts[2]
    assert [p.title async for p in Post.published_objects.iterator()] == ["p0", "p2"]


async def test_from_queryset_manager_custom_method_then_dual_method(posts):
    assert await Post.objects.published().count() == 2
    assert await Post.objects.published().order_by("-pk").first() == posts[2]


async def test_user_queryset_override_runs_on_both_paths():
    post = await Post.objects.create(title="async")
    assert post.body == "created by PostQuerySet.create"
    post = await Post.by_queryset.create(title="as_manager")
    assert post.body == "created by PostQuerySet.create"

    def sync_path():
        return Post.objects.create(title="sync").body

    assert await sync_to_async(sync_path)() == "created by PostQuerySet.create"


async def test_dualmethod_queryset_method_through_from_queryset_manager(posts):
    assert await Post.objects.publish_all() == 4
    assert await Post.objects.filter(published=False).count() == 0


async def test_dualmethod_queryset_method_through_as_manager(posts):
    assert await Post.by_queryset.filter(title="p1").publish_all() == 1
    assert await Post.by_queryset.publish_all() == 4


def test_dualmethod_queryset_method_sync(posts):
    assert Post.objects.publish_all() == 4
    assert Post.by_queryset.publish_all() == 4
    assert Post.objects.filter(published=True).count() == 4


async def test_db_manager_and_using(posts):
    assert await Post.objects.db_manager("default").count() == 4
    assert await Post.objects.using("default").filter(published=True).count() == 2


class LoudQuerySet(models.QuerySet):
    """Defined at test time, after patch(): its override and dualmethod are dual."""

    def count(self):
        return super().count() * 10

    @dualmethod
    def loud(self):
        return "LOUD"


LoudManager = models.Manager.from_queryset(LoudQuerySet)


async def test_queryset_and_manager_defined_after_patch_are_dual(posts):
    manager = LoudManager()
    manager.model = Post
    assert await manager.count() == 40
    assert await manager.loud() == "LOUD"
    assert await manager.filter(published=True).count() == 20


def test_queryset_and_manager_defined_after_patch_sync(posts):
    manager = LoudManager()
    manager.model = Post
    assert manager.count() == 40
    assert manager.loud() == "LOUD"
