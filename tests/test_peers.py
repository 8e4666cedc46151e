"""Peers for ``.a`` (``DUALCALL_AWAIT_PEERS``): an awaited loop makes one query per relation.

Queries are counted on the connection the awaitables use (an execute wrapper
installed from the worker thread: ``CaptureQueriesContext`` cannot be entered
in the event loop's thread).  Each kind is compared with the one-by-one loads
(the setting off): same values, same caches, and N queries instead of 1.
"""

import asyncio
import contextlib
import copy
import gc
import pickle
import weakref

import pytest
from asgiref.sync import sync_to_async
from django.core.exceptions import ImproperlyConfigured
from django.db import connection
from django.db.models import prefetch_related_objects
from django.test import override_settings

import dualcall
from dualcall import peers
from dualcall.compat import fetch_modes
from tests.testapp.models import (
    Author,
    Choice,
    Comment,
    Place,
    Post,
    Profile,
    Question,
    Restaurant,
    Tag,
)

pytestmark = pytest.mark.django_db

N = 4

needs_fetch_modes = pytest.mark.skipif(
    fetch_modes() is None, reason="fetch modes are new in Django 6.1"
)


class Query(str):
    """The SQL of a query, with its parameters."""

    def __new__(cls, sql, params):
        query = super().__new__(cls, sql)
        query.params = tuple(params or ())
        return query


@contextlib.asynccontextmanager
async def queries():
    """The SQL run on the awaitables' connection inside the block."""
    executed = []

    def record(execute, sql, params, many, context):
        executed.append(Query(sql, params))
        return execute(sql, params, many, context)

    await sync_to_async(lambda: connection.execute_wrappers.append(record))()
    try:
        yield executed
    finally:
        await sync_to_async(lambda: connection.execute_wrappers.remove(record))()


@sync_to_async
def seed():
    """N of each relation kind, with two of everything on the many side."""
    tags = [Tag.objects.create(name=f"t{i}") for i in range(N)]
    for i in range(N):
        question = Question.objects.create(question_text=f"q{i}")
        for j in range(2):
            Choice.objects.create(question=question, choice_text=f"c{i}{j}")
        author = Author.objects.create(name=f"a{i}")
        Profile.objects.create(author=author, bio=f"bio{i}")
        post = Post.objects.create(title=f"p{i}", body=f"body{i}", author=author)
        post.tags.add(tags[i], tags[(i + 1) % N])
        Comment.objects.create(content_object=post, text=f"x{i}")
        Comment.objects.create(content_object=post, text=f"y{i}")
        Restaurant.objects.create(name=f"r{i}")


#: kind -> (queryset of N instances, name to await, many-valued)
KINDS = {
    "forward FK": (lambda: Choice.objects.filter(choice_text__endswith="0"), "question", False),
    "forward O2O": (lambda: Profile.objects.all(), "author", False),
    "reverse O2O": (lambda: Author.objects.all(), "profile", False),
    "MTI parent link": (lambda: Restaurant.objects.defer("name"), "place_ptr", False),
    "MTI child": (lambda: Place.objects.all(), "restaurant", False),
    "generic FK": (lambda: Comment.objects.filter(text__startswith="x"), "content_object", False),
    "deferred field": (lambda: Post.objects.defer("body"), "body", False),
    "deferred FK column": (lambda: Post.objects.only("title"), "author", False),
    "deferred GFK column": (
        lambda: Comment.objects.filter(text__startswith="x").defer("object_id"),
        "content_object",
        False,
    ),
    "reverse FK": (lambda: Question.objects.all(), "choice_set", True),
    "M2M forward": (lambda: Post.objects.all(), "tags", True),
    "M2M reverse": (lambda: Tag.objects.all(), "posts", True),
    "generic relation": (lambda: Post.objects.all(), "comments", True),
}


def describe(value):
    """A comparable picture of an awaited value: model instances by class, pk and fields."""
    if isinstance(value, list):
        return [describe(v) for v in value]
    if hasattr(value, "_meta"):
        fields = {f.attname: value.__dict__.get(f.attname) for f in value._meta.concrete_fields}
        return (type(value).__name__, value.pk, tuple(sorted(fields.items())))
    return value


def caches(instance, name):
    """What a later sync access would find without a query."""
    state = instance._state
    return (
        sorted(state.fields_cache),
        sorted(getattr(instance, "_prefetched_objects_cache", {})),
        name in instance.__dict__,
    )


async def awaited_loop(kind):
    make, name, _ = KINDS[kind]
    instances = await make().order_by("pk")
    assert len(instances) == N
    async with queries() as executed:
        values = [await getattr(instance.a, name) for instance in instances]
    return instances, values, executed


@pytest.mark.parametrize("kind", list(KINDS))
async def test_awaited_loop_makes_one_query_like_one_by_one(kind):
    await seed()
    name, many = KINDS[kind][1:]
    instances, values, executed = await awaited_loop(kind)
    # A deferred column: the column for all, then the relation for all.
    column = kind in ("deferred FK column", "deferred GFK column")
    assert len(executed) == (2 if column else 1), executed
    with override_settings(DUALCALL_AWAIT_PEERS=False):
        alone, expected, executed_alone = await awaited_loop(kind)
    assert len(executed_alone) == (2 * N if column else N)
    assert describe(values) == describe(expected)
    assert [caches(i, name) for i in instances] == [caches(i, name) for i in alone]
    assert not any(vars(i._state).get("_dualcall_pending") for i in instances)
    if many:
        # Nothing cached for sync code, as one by one; the lists were handed out.
        assert all(type(v) is list for v in values)
        assert not any(peers.has_pending(i, name) for i in instances)
        # No trace of the prefetch on the related instances (M2M join columns).
        related = [r for v in values for r in v]
        assert not [k for r in related for k in vars(r) if k.startswith("_prefetch_related")]
    else:
        # Cached: the sync access (and a second await) reads without a query.
        async with queries() as executed:
            again = [await getattr(i.a, name) for i in instances]
            await sync_to_async(lambda: [getattr(i, name) for i in instances])()
        assert executed == []
        assert describe(again) == describe(values)


async def test_multi_table_parent_built_without_query_is_not_batched():
    await seed()
    restaurants = await Restaurant.objects.order_by("pk")
    async with queries() as executed:
        places = [await r.a.place_ptr for r in restaurants]
    assert executed == []
    assert [(type(p), p.name) for p in places] == [(Place, f"r{i}") for i in range(N)]


async def test_many_valued_list_is_handed_out_once():
    await seed()
    questions = await Question.objects.order_by("pk")
    async with queries() as executed:
        first = await questions[0].a.choice_set
        rest = await asyncio.gather(*(q.a.choice_set for q in questions[1:]))
        again = await questions[1].a.choice_set
    # The batch, then one query for the second await (as one by one).
    assert len(executed) == 2
    assert describe(again) == describe(rest[0])
    assert [c.choice_text for c in first] == ["c00", "c01"]
    # Sync code still queries: the batch did not prefetch.
    async with queries() as executed:
        await sync_to_async(lambda: list(questions[2].choice_set.all()))()
    assert len(executed) == 1
    # The reverse side is cached as question.choice_set.all() caches it.
    async with queries() as executed:
        assert await first[0].a.question is questions[0]
    assert executed == []


async def test_related_manager_write_discards_the_batch():
    await seed()
    questions = await Question.objects.order_by("pk")
    await questions[0].a.choice_set
    assert peers.has_pending(questions[1], "choice_set")
    extra = await Choice.objects.create(question=questions[0], choice_text="moved")
    await questions[1].choice_set.add(extra)
    assert not peers.has_pending(questions[1], "choice_set")
    assert "moved" in [c.choice_text for c in await questions[1].a.choice_set]


async def test_gather_over_peers_makes_one_query():
    await seed()
    choices = await Choice.objects.order_by("pk")
    async with queries() as executed:
        questions = await asyncio.gather(*(c.a.question for c in choices))
    assert len(executed) == 1
    assert [q.question_text for q in questions] == [f"q{i // 2}" for i in range(2 * N)]


async def test_mixed_cached_prefetched_and_null():
    await seed()
    posts = await Post.objects.order_by("pk")
    await Post.objects.filter(pk=posts[2].pk).update(author=None)
    posts = await Post.objects.order_by("pk")
    own = await Author.objects.get(name="a1")
    posts[1].author = own  # cached by assignment
    await sync_to_async(prefetch_related_objects)([posts[3]], "tags")
    async with queries() as executed:
        authors = [await p.a.author for p in posts]
        tags = [await p.a.tags for p in posts]
    # One query each; the null, the cached and the prefetched are not asked for.
    assert len(executed) == 2
    assert authors[1] is own and authors[2] is None
    assert [a.name if a else None for a in authors] == ["a0", "a1", None, "a3"]
    assert sorted(executed[0].params) == sorted([posts[0].author_id, posts[3].author_id])
    assert posts[3].pk not in executed[1].params
    assert "_prefetched_objects_cache" in vars(posts[3])
    assert [t.name for t in tags[3]] == ["t0", "t3"]


async def test_instances_of_two_querysets_are_not_peers():
    await seed()
    first = await Choice.objects.filter(choice_text__endswith="0").order_by("pk")
    second = await Choice.objects.filter(choice_text__endswith="1").order_by("pk")
    async with queries() as executed:
        for choice in first + second:
            await choice.a.question
    assert len(executed) == 2


async def test_async_for_and_iterator_chunks():
    await seed()
    async with queries() as executed:
        async for choice in Choice.objects.order_by("pk"):
            await choice.a.question
    assert len(executed) == 2  # the evaluation, one batch
    async with queries() as executed:
        async for choice in Choice.objects.order_by("pk").iterator(chunk_size=3):
            await choice.a.question
    # 2N = 8 choices in chunks of 3: one batch per chunk (the chunks' own
    # queries depend on the backend's cursor: not counted here).
    batches = [sql for sql in executed if "testapp_question" in sql]
    assert len(batches) == 3


async def test_sync_evaluation_tracks_peers():
    await seed()
    choices = await sync_to_async(lambda: list(Choice.objects.order_by("pk")))()
    async with queries() as executed:
        for choice in choices:
            await choice.a.question
    assert len(executed) == 1


def test_sync_access_is_plain_django(django_assert_num_queries):
    asyncio.run(sync_to_async(lambda: None)())  # nothing special
    Question.objects.create(question_text="q")
    question = Question.objects.get()
    for i in range(3):
        Choice.objects.create(question=question, choice_text=str(i))
    choices = list(Choice.objects.all())
    with django_assert_num_queries(3):
        for choice in choices:
            _ = choice.question


async def test_missing_rows_raise_as_alone():
    await seed()
    authors = await Author.objects.order_by("pk")
    await Profile.objects.filter(author=authors[1]).delete()
    posts = await Post.objects.defer("body").order_by("pk")
    await Post.objects.filter(pk=posts[2].pk).delete()
    assert (await authors[0].a.profile).bio == "bio0"
    with pytest.raises(Author.profile.RelatedObjectDoesNotExist):
        await authors[1].a.profile
    assert (await posts[0].a.body) == "body0"
    with pytest.raises(Post.DoesNotExist):
        await posts[2].a.body
    async with queries() as executed:
        assert (await posts[3].a.body) == "body3"
        assert (await authors[3].a.profile).bio == "bio3"
    assert executed == []


async def test_peers_keep_no_instance_alive_and_copies_have_none():
    await seed()
    choices = await Choice.objects.order_by("pk")
    gone = weakref.ref(choices.pop())
    gc.collect()
    assert gone() is None
    duplicate = copy.copy(choices[0])
    async with queries() as executed:
        await duplicate.a.question
    assert len(executed) == 1
    assert not choices[1].__class__.question.is_cached(choices[1])
    restored = pickle.loads(pickle.dumps(choices))
    assert tuple(getattr(restored[0]._state, "peers", ())) == ()
    questions = await Question.objects.order_by("pk")
    await questions[0].a.choice_set
    assert peers.has_pending(questions[1], "choice_set")
    # The lists kept aside (whose choices cache their question) die with it.
    gone = weakref.ref(questions[1])
    del questions
    gc.collect()
    assert gone() is None
    assert pickle.loads(pickle.dumps(restored))[0]._state.db == "default"


async def test_setting_off_tracks_nothing():
    await seed()
    with override_settings(DUALCALL_AWAIT_PEERS=False):
        choices = await Choice.objects.order_by("pk")
    assert tuple(getattr(choices[0]._state, "peers", ())) == ()
    with override_settings(DUALCALL_AWAIT_PEERS="yes"), pytest.raises(
        ImproperlyConfigured, match="DUALCALL_AWAIT_PEERS"
    ):
        await Choice.objects.order_by("pk")


# -- Django 6.1: fetch modes ----------------------------------------------------


@needs_fetch_modes
async def test_explicit_fetch_one_loads_one():
    await seed()
    choices = await Choice.objects.fetch_mode(fetch_modes().FETCH_ONE).order_by("pk")
    async with queries() as executed:
        for choice in choices:
            await choice.a.question
    assert len(executed) == 2 * N


@needs_fetch_modes
async def test_explicit_raise_raises_from_the_await():
    from django.core.exceptions import FieldFetchBlocked

    await seed()
    choices = await Choice.objects.fetch_mode(fetch_modes().FETCH_RAISE).order_by("pk")
    with pytest.raises(FieldFetchBlocked, match=r"^Fetching of Choice\.question blocked\.$"):
        await choices[0].a.question
    # Django's related managers ignore fetch modes: one by one, as in sync code.
    questions = await Question.objects.fetch_mode(fetch_modes().FETCH_RAISE).order_by("pk")
    async with queries() as executed:
        for question in questions:
            await question.a.choice_set
    assert len(executed) == N


@needs_fetch_modes
async def test_explicit_fetch_peers_batches_multi_valued_too():
    await seed()
    questions = await Question.objects.fetch_mode(fetch_modes().FETCH_PEERS).order_by("pk")
    async with queries() as executed:
        for question in questions:
            await question.a.choice_set
    assert len(executed) == 1


@needs_fetch_modes
async def test_await_peers_mode_whatever_the_setting():
    await seed()
    with override_settings(DUALCALL_AWAIT_PEERS=False):
        choices = await Choice.objects.fetch_mode(dualcall.AWAIT_PEERS).order_by("pk")
        async with queries() as executed:
            for choice in choices:
                await choice.a.question
    assert len(executed) == 1
    assert choices[0]._state.fetch_mode is dualcall.AWAIT_PEERS
    assert pickle.loads(pickle.dumps(dualcall.AWAIT_PEERS)) is dualcall.AWAIT_PEERS


@needs_fetch_modes
def test_await_peers_mode_in_sync_code_loads_one(django_assert_num_queries):
    question = Question.objects.create(question_text="q")
    for i in range(3):
        Choice.objects.create(question=question, choice_text=str(i))
    choices = list(Choice.objects.fetch_mode(dualcall.AWAIT_PEERS))
    with django_assert_num_queries(3):
        for choice in choices:
            _ = choice.question


@needs_fetch_modes
def test_default_mode_is_django_default():
    from django.db.models import QuerySet

    assert QuerySet(Choice)._fetch_mode is fetch_modes().FETCH_ONE
    Choice.objects.create(question=Question.objects.create(question_text="q"), choice_text="c")
    assert Choice.objects.get()._state.fetch_mode is fetch_modes().FETCH_ONE


async def test_dangling_foreign_key_raises_as_alone():
    """A row gone from under a non-null FK: the batch's None is not kept."""
    await seed()
    choices = await Choice.objects.filter(choice_text__endswith="0").order_by("pk")
    # Django's FK constraints are deferred to the commit: restored below.
    question_id = choices[1].question_id
    await Choice.objects.filter(pk=choices[1].pk).update(question_id=10**6)
    try:
        choices = await Choice.objects.filter(choice_text__endswith="0").order_by("pk")
        async with queries() as executed:
            assert (await choices[0].a.question).question_text == "q0"
        assert len(executed) == 1
        with pytest.raises(Question.DoesNotExist):
            await choices[1].a.question
        assert not Choice.question.is_cached(choices[1])
        async with queries() as executed:
            assert (await choices[2].a.question).question_text == "q2"
        assert executed == []
    finally:
        await Choice.objects.filter(pk=choices[1].pk).update(question_id=question_id)


# -- canaries: the Django internals peers rely on --------------------------------


def test_canary_model_iterable_and_related_managers():
    """What to do when this breaks: see dualcall.peers and dualcall.compat."""
    import inspect

    from django.db.models.query import BaseIterable, ModelIterable

    # The wrapper replaces ModelIterable.__iter__, a generator function of the
    # iterable (queryset, chunked_fetch, chunk_size).
    original = vars(ModelIterable)["__iter__"].__wrapped__
    assert inspect.isgeneratorfunction(original)
    assert list(inspect.signature(BaseIterable.__init__).parameters) == [
        "self", "queryset", "chunked_fetch", "chunk_size",
    ]
    # Related managers drop their prefetch cache through this method on writes.
    question = Question(pk=1)
    post = Post(pk=1)
    for manager in (question.choice_set, post.tags, post.comments, Tag(pk=1).posts):
        assert callable(type(manager)._remove_prefetched_objects)


@needs_fetch_modes
def test_canary_fetch_modes():
    """Django 6.1: fetchers have fetch_many; FETCH_PEERS tracks _state.peers."""
    from django.contrib.contenttypes.fields import GenericForeignKeyDescriptor
    from django.db.models.fields.related_descriptors import (
        ForwardManyToOneDescriptor,
        ReverseOneToOneDescriptor,
    )
    from django.db.models.query_utils import DeferredAttribute

    for fetcher in (
        ForwardManyToOneDescriptor,
        ReverseOneToOneDescriptor,
        DeferredAttribute,
        GenericForeignKeyDescriptor,
    ):
        assert callable(fetcher.fetch_many), fetcher
    assert fetch_modes().FETCH_PEERS.track_peers is True
    assert fetch_modes().FETCH_ONE.track_peers is False
