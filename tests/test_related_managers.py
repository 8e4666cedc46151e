"""Related managers: reverse FK, many-to-many both ways, generic relations."""

import django
import pytest
from asgiref.sync import sync_to_async
from django.contrib.contenttypes.models import ContentType

from tests.testapp.models import Author, Choice, Comment, Post, Question, Tag

pytestmark = pytest.mark.django_db(transaction=True)


async def test_reverse_foreign_key_manager():
    question = await Question.objects.create(question_text="q")
    choice = await question.choice_set.create(choice_text="a")
    assert choice.question_id == question.pk
    got, created = await question.choice_set.get_or_create(choice_text="b")
    assert created is True
    same, created = await question.choice_set.get_or_create(choice_text="b")
    assert (same, created) == (got, False)
    updated, created = await question.choice_set.update_or_create(
        choice_text="b", defaults={"votes": 5}
    )
    assert (updated.pk, updated.votes, created) == (got.pk, 5, False)
    assert await question.choice_set.count() == 2
    assert await question.choice_set.all() == [choice, got]
    other = await Question.objects.create(question_text="other")
    moved = await Choice.objects.create(question=other, choice_text="c")
    await question.choice_set.add(moved)
    assert await question.choice_set.count() == 3
    assert await Choice.objects.filter(question=other).count() == 0
    await question.choice_set.set([choice, got, moved])
    assert await question.choice_set.filter(votes=5).get() == got


async def test_nullable_reverse_foreign_key_remove_clear_set():
    author = await Author.objects.create(name="Ada")
    first = await author.posts.create(title="one")
    second = await Post.objects.create(title="two")
    await author.posts.add(second)
    assert await author.posts.order_by("pk") == [first, second]
    await author.posts.remove(first)
    assert await author.posts.all() == [second]
    await author.posts.set([first])
    assert await author.posts.all() == [first]
    await author.posts.clear()
    assert await author.posts.count() == 0
    assert await Post.objects.filter(author__isnull=True).count() == 2


async def test_many_to_many_forward_and_reverse():
    post = await Post.objects.create(title="p")
    django_tag = await Tag.objects.create(name="django")
    await post.tags.add(django_tag)
    python_tag = await post.tags.create(name="python")
    assert await post.tags.order_by("name") == [django_tag, python_tag]
    assert await post.tags.count() == 2
    assert await post.tags.exists() is True
    # Reverse direction.
    assert await python_tag.posts.all() == [post]
    other = await python_tag.posts.create(title="other")
    assert await python_tag.posts.count() == 2
    await python_tag.posts.remove(other)
    assert await python_tag.posts.all() == [post]
    tag, created = await post.tags.get_or_create(name="asyncio")
    assert created is True
    tag, created = await post.tags.update_or_create(name="asyncio", defaults={"name": "aio"})
    assert (tag.name, created) == ("aio", False)
    await post.tags.set([django_tag])
    assert await post.tags.all() == [django_tag]
    await post.tags.clear()
    assert await post.tags.count() == 0
    assert await Tag.objects.count() == 3


async def test_many_to_many_prefetched_count_and_exists():
    post = await Post.objects.create(title="p")
    await post.tags.add(await Tag.objects.create(name="t"))
    post = await Post.objects.prefetch_related("tags").get(pk=post.pk)
    assert await post.tags.count() == 1
    assert await post.tags.exists() is True


async def test_generic_relation_manager():
    # A generic relation manager looks its ContentType up when it is created
    # (Django's behaviour): warm the ContentType cache first in async code.
    await sync_to_async(ContentType.objects.get_for_model)(Post)
    post = await Post.objects.create(title="p")
    first = await post.comments.create(text="first")
    assert (first.content_type.model, first.object_id) == ("post", post.pk)
    loose = await Comment.objects.create(
        content_object=await Post.objects.create(title="other"), text="loose"
    )
    await post.comments.add(loose)
    assert await post.comments.order_by("pk") == [first, loose]
    await post.comments.remove(first)
    assert await post.comments.all() == [loose]
    got, created = await post.comments.get_or_create(text="again")
    assert created is True
    got, created = await post.comments.update_or_create(text="again", defaults={"text": "new"})
    assert (got.text, created) == ("new", False)
    await post.comments.set([got])
    assert await post.comments.all() == [got]
    await post.comments.clear()
    assert await post.comments.count() == 0
    # remove() and clear() of a generic relation delete the rows.
    assert await Comment.objects.count() == 0


def test_related_managers_sync():
    question = Question.objects.create(question_text="q")
    question.choice_set.create(choice_text="a")
    post = Post.objects.create(title="p")
    post.tags.add(Tag.objects.create(name="t"))
    post.comments.create(text="c")
    assert question.choice_set.count() == 1
    assert [t.name for t in post.tags.all()] == ["t"]
    assert post.comments.get().text == "c"


@pytest.mark.skipif(django.VERSION < (5, 0), reason="Django 5.x M2M managers define count()")
def test_m2m_manager_own_count_is_dual():
    post = Post.objects.create(title="p")
    manager_class = type(post.tags)
    assert type(vars(manager_class)["count"]).__name__ == "DualMethod"


async def test_related_manager_sync_helper_inside_thread():
    # Work done in a thread (sync_to_async) runs entirely synchronously.
    question = await Question.objects.create(question_text="q")

    def add_two():
        question.choice_set.create(choice_text="x")
        question.choice_set.create(choice_text="y")
        return question.choice_set.count()

    assert await sync_to_async(add_two)() == 2
