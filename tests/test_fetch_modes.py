"""Django 6.1's fetch modes (``QuerySet.fetch_mode()``) with dualcall.

dualcall respects the instance's fetch mode:

* ``FETCH_RAISE``: Django's ``FieldFetchBlocked`` stands, for a sync access
  in async code and for ``.a`` alike (nothing is fetched lazily).
* ``FETCH_PEERS``: a sync access in async code raises
  ``UnprefetchedRelatedModelAccessError`` naming the field, as with
  ``FETCH_ONE``; ``.a`` loads the relation or field for every peer in one
  query, as a sync access does in sync code.

Skipped where Django has no fetch modes (before 6.1), detected by feature.
"""

import re

import pytest
from asgiref.sync import sync_to_async
from django.core.exceptions import SynchronousOnlyOperation

from dualcall import UnprefetchedRelatedModelAccessError
from tests.test_guards import (
    ASYNC,
    deferred_field,
    no_queries,
    raises,
    related_object,
)
from tests.testapp.models import Author, Choice, Comment, Post, Profile, Question

fetch_modes = pytest.importorskip(
    "django.db.models.fetch_modes", reason="fetch modes are new in Django 6.1"
)
FETCH_ONE = fetch_modes.FETCH_ONE
FETCH_PEERS = fetch_modes.FETCH_PEERS
FETCH_RAISE = fetch_modes.FETCH_RAISE

pytestmark = pytest.mark.django_db(transaction=True)

GENERIC_FK = (
    f'Related model Comment.content_object {ASYNC} Use prefetch_related("content_object") '
    "before accessing it, or await comment.a.content_object."
)


async def make_data():
    """Two of each: choices of a question, profiles, posts with comments."""
    question = await Question.objects.create(question_text="q")
    for text in ("a", "b"):
        await Choice.objects.create(question=question, choice_text=text)
        author = await Author.objects.create(name=text)
        await Profile.objects.create(author=author, bio=text)
        post = await Post.objects.create(title=text, body=f"body {text}")
        await Comment.objects.create(content_object=post, text=text)


def accesses(mode):
    """(name, fetch the instances, read one) for each single-valued lazy load kind."""
    return [
        ("deferred field", lambda: list(Post.objects.fetch_mode(mode).defer("body")), "body"),
        ("forward FK", lambda: list(Choice.objects.fetch_mode(mode)), "question"),
        ("reverse O2O", lambda: list(Author.objects.fetch_mode(mode)), "profile"),
        ("generic FK", lambda: list(Comment.objects.fetch_mode(mode)), "content_object"),
    ]


def django_error(fetch, name):
    """What plain Django raises reading *name* of the first instance (no loop: plain Django)."""
    instance = fetch()[0]
    with pytest.raises(Exception) as info:
        getattr(instance, name)
    return info.value


# -- FETCH_RAISE: Django's FieldFetchBlocked stands -----------------------------


async def test_raise_sync_access_in_coroutine_raises_field_fetch_blocked():
    from django.core.exceptions import FieldFetchBlocked

    await make_data()
    for kind, fetch, name in accesses(FETCH_RAISE):
        expected = await sync_to_async(django_error)(fetch, name)
        assert type(expected) is FieldFetchBlocked, kind
        instance = (await sync_to_async(fetch)())[0]
        with no_queries(), pytest.raises(FieldFetchBlocked) as info:
            getattr(instance, name)
        assert type(info.value) is FieldFetchBlocked, kind
        assert str(info.value) == str(expected), kind


async def test_raise_awaited_namespace_raises_field_fetch_blocked():
    from django.core.exceptions import FieldFetchBlocked

    await make_data()
    for kind, fetch, name in accesses(FETCH_RAISE):
        instance = (await sync_to_async(fetch)())[0]
        with pytest.raises(FieldFetchBlocked) as info:
            await getattr(instance.a, name)
        assert str(info.value) == f"Fetching of {type(instance).__name__}.{name} blocked.", kind
    # What is loaded resolves; nothing is fetched.
    post = await Post.objects.fetch_mode(FETCH_RAISE).defer("body").select_related("author").get(
        title="a"
    )
    with no_queries():
        assert await post.a.title == "a"
        assert await post.a.author is None


def test_raise_in_sync_code_is_plain_django():
    from django.core.exceptions import FieldFetchBlocked

    post = Post.objects.create(title="t", body="b")
    post = Post.objects.fetch_mode(FETCH_RAISE).defer("body").get(pk=post.pk)
    with pytest.raises(FieldFetchBlocked, match=r"^Fetching of Post\.body blocked\.$"):
        _ = post.body


# -- FETCH_PEERS: errors name the field; .a loads every peer --------------------


async def test_peers_sync_access_in_coroutine_names_the_field():
    await make_data()
    messages = {
        "deferred field": deferred_field("Post", "body"),
        "forward FK": related_object("Choice", "question"),
        "reverse O2O": related_object("Author", "profile"),
        "generic FK": GENERIC_FK,
    }
    for kind, fetch, name in accesses(FETCH_PEERS):
        instances = await sync_to_async(fetch)()
        assert len(instances) == 2
        with raises(messages[kind]) as info:
            getattr(instances[0], name)
        # Translated from Django's own error, raised where Django raises it.
        assert type(info.value.__cause__) is SynchronousOnlyOperation, kind
        # Nothing was loaded for any peer.
        with raises(messages[kind]):
            getattr(instances[1], name)


async def test_peers_deferred_generic_foreign_key_column_names_the_column():
    await make_data()
    comments = await Comment.objects.fetch_mode(FETCH_PEERS).defer("object_id")
    with raises(deferred_field("Comment", "object_id")):
        _ = comments[0].content_object


async def test_peers_awaited_namespace_loads_every_peer():
    await make_data()
    for kind, fetch, name in accesses(FETCH_PEERS):
        first, second = await sync_to_async(fetch)()
        value = await getattr(first.a, name)
        assert value is not None, kind
        # One load for both: the peer's value is cached, no query.
        with no_queries():
            assert getattr(second, name) is not None, kind
            assert getattr(first, name) == value, kind
    posts = await Post.objects.fetch_mode(FETCH_PEERS).defer("body")
    assert await posts[1].a.body == "body b"
    with no_queries():
        assert [post.body for post in posts] == ["body a", "body b"]


def test_peers_in_sync_code_is_plain_django(django_assert_num_queries):
    for text in ("a", "b"):
        Post.objects.create(title=text, body=text)
    posts = list(Post.objects.fetch_mode(FETCH_PEERS).defer("body"))
    with django_assert_num_queries(1):
        assert [post.body for post in posts] == ["a", "b"]


# -- FETCH_ONE (the default) keeps the 5.2 behaviour --------------------------


async def test_fetch_one_messages_match_the_default():
    await make_data()
    comment = await Comment.objects.fetch_mode(FETCH_ONE).aget(text="a")
    with raises(GENERIC_FK):
        _ = comment.content_object
    assert (await comment.a.content_object).title == "a"
    with no_queries():
        assert comment.content_object.title == "a"


async def test_error_is_the_dualcall_error_class():
    await make_data()
    choices = await Choice.objects.fetch_mode(FETCH_PEERS)
    with pytest.raises(UnprefetchedRelatedModelAccessError, match=re.escape("Choice.question")):
        _ = choices[0].question
