"""The native path's greenlet runner: prefetches, async iteration, ``.a`` loads, related managers.

Each case runs natively and then on the thread path (``DUALCALL_NATIVE = []``)
from fresh objects, and must give the same picture (values, caches,
prefetched lists, exceptions); the native run must have run its queries on
the pool (``run.statements``) without falling back.
"""

import asyncio
import contextlib

import pytest
from django.core.exceptions import SynchronousOnlyOperation
from django.db import connection, connections
from django.db.models import Count, F, Prefetch
from django.test import override_settings
from django.utils import timezone

from dualcall.native import methods
from dualcall.native import run as native_run
from tests.helpers import NATIVE_TESTS
from tests.testapp.models import (
    Author,
    Choice,
    Comment,
    NativeGroup,
    NativeItem,
    Post,
    Profile,
    Question,
    Tag,
)

pytestmark = NATIVE_TESTS


@pytest.fixture
def data(db):
    from django.contrib.contenttypes.models import ContentType

    questions = [Question.objects.create(question_text=f"q{i}") for i in range(3)]
    for i, question in enumerate(questions):
        for j in range(i + 1):
            Choice.objects.create(question=question, choice_text=f"c{i}{j}", votes=j)
    authors = [Author.objects.create(name=f"a{i}") for i in range(3)]
    Profile.objects.create(author=authors[0], bio="bio0")
    Profile.objects.create(author=authors[1], bio="bio1")
    tags = [Tag.objects.create(name=f"t{i}") for i in range(3)]
    posts = []
    for i in range(4):
        post = Post.objects.create(title=f"p{i}", author=authors[i % 3] if i < 3 else None)
        post.tags.set(tags[: i % 3 + 1])
        posts.append(post)
    for i, post in enumerate(posts[:3]):
        Comment.objects.create(content_object=post, text=f"on p{i}")
    Comment.objects.create(content_object=questions[0], text="on q0")
    groups = [NativeGroup.objects.create(name=f"g{i}", rank=i) for i in range(2)]
    for i in range(7):
        NativeItem.objects.create(
            group=groups[i % 2], name=f"i{i}", number=i, price=i, created=timezone.now()
        )
    ContentType.objects.clear_cache()
    return questions


def snapshot(value, path=()):
    """A comparable picture of a result, down through caches and prefetched lists.

    A model instance already on the path (a known related object pointing
    back) is named, not walked again.
    """
    from django.db.models import Model, QuerySet

    if isinstance(value, Model):
        key = (type(value), value.pk)
        if key in path:
            return "back to", type(value).__name__, value.pk
        path = (*path, key)
        return (
            type(value).__name__,
            {k: snapshot(v, path) for k, v in vars(value).items() if k != "_state"},
            value._state.db,
            value._state.adding,
            {k: snapshot(v, path) for k, v in value._state.fields_cache.items()},
        )
    if isinstance(value, QuerySet):  # a prefetched relation: its rows
        assert value._result_cache is not None, "an unevaluated queryset in a result"
        return "QuerySet", [snapshot(v, path) for v in value._result_cache]
    if isinstance(value, dict):
        return {k: snapshot(v, path) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value).__name__, [snapshot(v, path) for v in value]
    return type(value).__name__, value


async def outcome(scenario):
    try:
        return "ok", snapshot(await scenario())
    except Exception as exc:
        return "raised", type(exc), str(exc)


async def both(scenario):
    """(native outcome, thread outcome, statements run natively); the thread path runs none."""
    methods.last_fallback = None
    before = native_run.statements
    native = await outcome(scenario)
    ran = native_run.statements - before
    fallback = methods.last_fallback
    with override_settings(DUALCALL_NATIVE=[]):
        thread = await outcome(scenario)
    assert native_run.statements - before == ran
    assert fallback is None, (native, fallback)
    return native, thread, ran


async def same(scenario, statements=None):
    native, thread, ran = await both(scenario)
    assert native == thread
    if statements is not None:
        assert ran == statements, (ran, native)
    else:
        assert ran >= 1, native
    return native


# -- prefetch_related ---------------------------------------------------------


async def test_prefetch_related(native, data):
    await same(lambda: Question.objects.prefetch_related("choice_set").order_by("pk"), 2)
    await same(lambda: Post.objects.prefetch_related("tags", "author__profile"), 4)
    await same(lambda: Post.objects.prefetch_related("tags__posts__author"), 4)
    await same(lambda: Tag.objects.prefetch_related("posts").order_by("-name"), 2)
    # A generic relation (and its content type, unless cached).
    await same(lambda: Post.objects.prefetch_related("comments"))
    await same(lambda: Author.objects.prefetch_related("profile", "posts").order_by("pk"), 3)
    await same(
        lambda: Question.objects.prefetch_related(
            Prefetch(
                "choice_set",
                queryset=Choice.objects.filter(votes__gte=1).order_by("-votes"),
                to_attr="voted",
            ),
            Prefetch("choice_set", queryset=Choice.objects.order_by("choice_text")),
        ).order_by("pk"),
        3,
    )
    await same(
        lambda: Post.objects.prefetch_related(
            Prefetch("tags", queryset=Tag.objects.prefetch_related("posts"))
        ),
        3,
    )
    await same(lambda: NativeGroup.objects.prefetch_related("items").order_by("rank"), 2)
    # Methods that evaluate with the prefetch: get, first, in_bulk.  (A lambda
    # is sync code: __acall__ makes the awaitable there.)
    prefetching = Question.objects.prefetch_related("choice_set")
    await same(lambda: prefetching.get.__acall__(question_text="q2"), 2)
    await same(lambda: Post.objects.prefetch_related("tags").first.__acall__(), 2)
    await same(lambda: Post.objects.prefetch_related("tags").in_bulk.__acall__(), 2)
    await same(lambda: Question.objects.prefetch_related("choice_set").none(), 0)


async def test_prefetch_generic_foreign_key(native, data):
    from django.contrib.contenttypes.models import ContentType

    # The content types come from ContentType's cache, or from one more query.
    ContentType.objects.clear_cache()
    await same(lambda: Comment.objects.prefetch_related("content_object").order_by("pk"))
    await same(lambda: Comment.objects.prefetch_related("content_object").order_by("pk"))


async def test_prefetched_cache_is_read_by_later_sync_access(native, data):
    questions = await Question.objects.prefetch_related("choice_set").order_by("pk")
    # Prefetched: sync access in the coroutine reads the cache, no query, no error.
    assert [len(q.choice_set.all()) for q in questions] == [1, 2, 3]


# -- async for and iterator() -------------------------------------------------

SHAPES = [
    lambda: NativeItem.objects.order_by("number"),
    lambda: NativeItem.objects.select_related("group").order_by("-number"),
    lambda: NativeItem.objects.values("name", "group__name").order_by("number"),
    lambda: NativeItem.objects.values_list("number", "price").order_by("number"),
    lambda: NativeItem.objects.values_list("name", flat=True).order_by("name"),
    lambda: NativeItem.objects.values_list("number", "name", named=True).order_by("number"),
    lambda: NativeItem.objects.annotate(d=F("number") * 2).order_by("d").filter(number__gt=2),
    lambda: NativeItem.objects.filter(number__in=[]),
    lambda: NativeGroup.objects.annotate(n=Count("items")).order_by("rank"),
]


@pytest.mark.parametrize("shape", range(len(SHAPES)))
async def test_async_for(native, data, shape):
    make = SHAPES[shape]

    async def scenario():
        return [item async for item in make()]

    await same(scenario, 0 if shape == 7 else 1)


async def test_async_for_with_prefetch(native, data):
    async def scenario():
        return [q async for q in Question.objects.prefetch_related("choice_set").order_by("pk")]

    await same(scenario, 2)


@pytest.mark.parametrize("chunk_size", [1, 2, 3, 100, None])
@pytest.mark.parametrize("shape", [0, 1, 2, 4, 5, 7])
async def test_iterator(native, data, shape, chunk_size):
    make = SHAPES[shape]
    kwargs = {} if chunk_size is None else {"chunk_size": chunk_size}

    async def scenario():
        return [item async for item in make().iterator(**kwargs)]

    native, thread, ran = await both(scenario)
    assert native == thread
    if shape != 7:
        # One DECLARE and the FETCHes: at least one statement.
        assert ran >= 1


async def test_iterator_of_a_manager(native, data):
    # Django's own async test: ``async for m in SimpleModel.objects.aiterator()``.
    async def scenario():
        return [item async for item in NativeItem.objects.iterator(chunk_size=2)]

    native, thread, ran = await both(scenario)
    assert native == thread
    assert ran >= 1


@pytest.mark.filterwarnings("ignore:Overriding setting DATABASES:UserWarning")
async def test_iterator_without_server_side_cursors(native, data, settings):
    databases = {alias: dict(connections.settings[alias]) for alias in connections.settings}
    databases["default"]["DISABLE_SERVER_SIDE_CURSORS"] = True
    with override_settings(DATABASES=databases, DUALCALL_NATIVE=["default"]):
        before = native_run.statements

        async def scenario():
            return [item async for item in NativeItem.objects.order_by("number").iterator(2)]

        native = await outcome(scenario)
        assert native_run.statements - before == 1  # one query, rows fetched client-side
    with override_settings(DUALCALL_NATIVE=[]):
        thread = await outcome(scenario)
    assert native == thread


async def test_iterator_bad_arguments_as_django(native, data):
    async def scenario(**kwargs):
        return [item async for item in NativeItem.objects.iterator(**kwargs)]

    for kwargs in ({"chunk_size": 0}, {"chunk_size": -1}, {"size": 3}):
        native, thread, ran = await both(lambda kwargs=kwargs: scenario(**kwargs))
        assert native == thread and native[0] == "raised"
        assert ran == 0


def _pool_stats():
    from dualcall.native.pool import loop_pools

    return loop_pools()["default"].get_stats()


def _declared_cursors():
    from tests.test_native import _admin

    return _admin(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
        "AND query LIKE 'DECLARE%%_dualcall_curs_%%' AND state <> 'idle'"
    )[0][0]


@pytest.mark.parametrize("how", ["break", "aclose", "cancel", "raise"])
async def test_iteration_gives_its_connection_back(native, data, settings, how):
    settings.DUALCALL_NATIVE_POOL = {"max_size": 2}
    await NativeItem.objects.count()  # the pool exists
    size = _pool_stats()["pool_size"]
    seen = []
    iterator = NativeItem.objects.order_by("number").iterator(chunk_size=2)

    async def consume():
        async for item in iterator:
            seen.append(item.number)
            if len(seen) == 3:
                if how == "break":
                    break
                if how == "raise":
                    raise LookupError("stop")
                if how == "cancel":
                    await asyncio.sleep(10)
                if how == "aclose":
                    return

    task = asyncio.ensure_future(consume())
    if how == "cancel":
        while len(seen) < 3:
            await asyncio.sleep(0.01)
        task.cancel()
    with contextlib.suppress(asyncio.CancelledError, LookupError):
        await task
    if how == "aclose":
        await iterator.aclose()
    iterator = task = None
    import gc

    gc.collect()
    for _ in range(200):  # the async generator is closed by the loop (bounded wait)
        if _pool_stats().get("pool_available", 0) == size:
            break
        await asyncio.sleep(0.01)
    assert seen == [0, 1, 2]
    assert _pool_stats().get("pool_available", 0) == size, _pool_stats()
    assert _declared_cursors() == 0
    # The pool's connections all still work.
    assert await asyncio.gather(*[NativeItem.objects.count() for _ in range(size)]) == [7] * size


# -- .a loads -----------------------------------------------------------------


async def test_a_loads_each_relation_kind(native, data, settings):
    settings.DUALCALL_AWAIT_PEERS = False

    async def load(queryset, name):
        instance = await queryset.order_by("pk").first()
        return await getattr(instance.a, name)

    cases = [
        (lambda: Choice.objects.filter(votes=1), "question"),  # forward FK
        (lambda: Question.objects.all(), "choice_set"),  # reverse FK
        (lambda: Profile.objects.all(), "author"),  # forward O2O
        (lambda: Author.objects.all(), "profile"),  # reverse O2O
        (lambda: Author.objects.filter(name="a2"), "profile"),  # missing reverse O2O
        (lambda: Post.objects.all(), "tags"),  # M2M
        (lambda: Tag.objects.all(), "posts"),  # reverse M2M
        (lambda: Comment.objects.all(), "content_object"),  # generic FK
        (lambda: Post.objects.all(), "comments"),  # generic relation
        (lambda: Question.objects.only("id"), "question_text"),  # deferred field
        (lambda: Post.objects.filter(author=None), "author"),  # null FK: no query
    ]
    for make, name in cases:
        native, thread, ran = await both(lambda make=make, name=name: load(make(), name))
        assert native == thread, name
        assert ran >= 1, name


async def test_a_peer_batches(native, data, settings):
    settings.DUALCALL_AWAIT_PEERS = True

    async def batch(queryset, name):
        instances = await queryset.order_by("pk")
        before = native_run.statements
        values = [await getattr(instance.a, name) for instance in instances]
        # One query for the whole group (two for the generic FK's content types
        # when they are not cached), none per peer.
        return values, native_run.statements - before

    for make, name in [
        (lambda: Choice.objects.all(), "question"),
        (lambda: Question.objects.all(), "choice_set"),
        (lambda: Author.objects.all(), "posts"),
        (lambda: Post.objects.all(), "tags"),
        (lambda: Tag.objects.all(), "posts"),
        (lambda: Author.objects.filter(profile__isnull=False), "profile"),
        (lambda: Post.objects.all(), "comments"),
        (lambda: Question.objects.defer("question_text"), "question_text"),
    ]:
        native, thread, _ = await both(lambda make=make, name=name: batch(make(), name))
        assert native[0] == thread[0] == "ok", (name, native, thread)
        assert native[1][1][0] == thread[1][1][0], name  # the values
        # One native query (the generic relation: and its content type, unless cached).
        queries = native[1][1][1][1]
        assert queries == 1 or (name == "comments" and queries == 2), (name, queries)


async def test_a_load_caches_like_sync(native, data, settings):
    settings.DUALCALL_AWAIT_PEERS = False
    choice = await Choice.objects.filter(votes=1).order_by("pk").first()
    question = await choice.a.question
    assert choice.question is question  # cached: no query, no error
    author = await Author.objects.order_by("pk").first()
    profile = await author.a.profile
    assert author.profile is profile


# -- related managers ---------------------------------------------------------


async def test_related_manager_reads(native, data):
    def question():
        return Question.objects.get.__acall__(question_text="q2")

    def post():
        return Post.objects.get.__acall__(title="p2")

    async def on(make, call):
        instance = await make()
        return await call(instance)

    cases = [
        (question, lambda q: q.choice_set.count.__acall__()),
        (question, lambda q: q.choice_set.all()),
        (question, lambda q: q.choice_set.filter(votes__gte=1).order_by("-votes")),
        (question, lambda q: q.choice_set.get.__acall__(votes=2)),
        (question, lambda q: q.choice_set.get.__acall__(votes=7)),
        (question, lambda q: q.choice_set.first.__acall__()),
        (question, lambda q: q.choice_set.exists.__acall__()),
        (question, lambda q: q.choice_set.order_by("votes").last.__acall__()),
        (question, lambda q: q.choice_set.aggregate.__acall__(n=Count("id"))),
        (question, lambda q: q.choice_set.values_list("votes", flat=True).order_by("votes")),
        (post, lambda p: p.tags.count.__acall__()),
        (post, lambda p: p.tags.exists.__acall__()),
        (post, lambda p: p.tags.all()),
        (post, lambda p: p.tags.filter(name="t1").get.__acall__()),
        (post, lambda p: p.comments.count.__acall__()),
        (post, lambda p: p.comments.all()),
    ]
    for make, call in cases:
        await same(lambda make=make, call=call: on(make, call))


async def test_related_manager_reads_honour_prefetch(native, data):
    async def prefetched(call):
        q = await Question.objects.prefetch_related("choice_set").get(question_text="q2")
        before = native_run.statements
        result = await call(q)
        return result, native_run.statements - before

    # count(), all(), exists() read the prefetch cache; first() of an
    # unordered relation orders by pk and queries, as in Django.
    for call, queries in [
        (lambda q: q.choice_set.count.__acall__(), 0),
        (lambda q: q.choice_set.all(), 0),
        (lambda q: q.choice_set.exists.__acall__(), 0),
        (lambda q: q.choice_set.first.__acall__(), 1),
        (lambda q: q.choice_set.filter(votes=0), 1),
    ]:
        native, thread, _ = await both(lambda call=call: prefetched(call))
        assert native[1][1][0] == thread[1][1][0]  # the results
        assert native[1][1][1] == ("int", queries)  # native statements of the call


async def test_related_manager_writes_stay_on_thread(native, data):
    question = await Question.objects.get(question_text="q0")
    before = native_run.statements
    await question.choice_set.create(choice_text="new")
    assert native_run.statements == before
    assert await question.choice_set.count() == 2


# -- execute wrappers and fallbacks --------------------------------------------


async def test_execute_wrapper_sees_native_queries(native, data):
    seen = []

    def record(execute, sql, params, many, context):
        seen.append((sql, params, many, context["connection"].alias))
        return execute(sql, params, many, context)

    before = native_run.statements
    with connection.execute_wrapper(record):
        assert await NativeItem.objects.filter(number__gte=5).count() == 2
        items = await Question.objects.prefetch_related("choice_set")
    assert native_run.statements - before == 3
    assert len(items) == 3
    assert [(many, alias) for _, _, many, alias in seen] == [(False, "default")] * 3
    assert "COUNT(*)" in seen[0][0] and seen[0][1] == (5,)


async def test_execute_wrapper_can_block_native_queries(native, data):
    class Refused(Exception):
        pass

    def refuse(execute, sql, params, many, context):
        raise Refused(f"no: {sql[:6]}")

    before = native_run.statements
    with connection.execute_wrapper(refuse):
        with pytest.raises(Refused, match="no: SELECT"):
            await NativeItem.objects.count()
        with pytest.raises(Refused, match="no: UPDATE"):
            await NativeItem.objects.filter(number=1).update(name="blocked")
    assert native_run.statements == before  # nothing reached the pool
    assert methods.last_fallback is None
    assert await NativeItem.objects.filter(name="blocked").count() == 0


async def test_wrapper_rewriting_sql(native, data):
    def rewrite(execute, sql, params, many, context):
        return execute(sql.replace("COUNT(*)", "COUNT(*) + 100"), params, many, context)

    with connection.execute_wrapper(rewrite):
        assert await NativeItem.objects.count() == 107


async def test_sync_connection_access_falls_back(native, data):
    # A wrapper that needs Django's cursor cannot run natively: the whole
    # read runs again on the thread path, where the wrapper sees the cursor.
    cursors = []

    def needs_cursor(execute, sql, params, many, context):
        cursors.append(type(context["cursor"]).__name__)
        context["cursor"].db  # noqa: B018
        return execute(sql, params, many, context)

    before = native_run.statements
    with connection.execute_wrapper(needs_cursor):
        assert await NativeItem.objects.filter(number__lt=3).count() == 3
    assert native_run.statements == before
    assert isinstance(methods.last_fallback, methods.Fallback)
    # The wrapper belongs to the task's connection: the worker thread's
    # connection has none (as with Django's own a-methods).
    assert cursors == ["_NoCursor"]


async def test_no_rerun_after_a_write(native, data):
    # A write that ran natively is never run again: an error after it stands.
    def after(execute, sql, params, many, context):
        result = execute(sql, params, many, context)
        context["cursor"].rowcount  # noqa: B018
        return result

    with (
        connection.execute_wrapper(after),
        pytest.raises(SynchronousOnlyOperation, match="execute wrapper read cursor"),
    ):
        await NativeItem.objects.filter(number=1).update(price=F("price") + 10)
    assert (await NativeItem.objects.get(number=1)).price == 11  # once


async def test_other_tasks_unaffected_while_suspended(native, data):
    # Many tasks share one never-connected wrapper; each is suspended inside
    # its greenlet while the others run, and sync access on the loop still raises.
    async def reader(i):
        question = await Question.objects.get(question_text=f"q{i % 3}")
        choices = await question.a.choice_set
        count = await question.choice_set.count()
        return len(choices), count

    results = await asyncio.gather(*[reader(i) for i in range(12)])
    assert results == [(i % 3 + 1, i % 3 + 1) for i in range(12)]
    with pytest.raises(SynchronousOnlyOperation):
        list(NativeItem.objects.all())


async def test_execute_wrappers_stay_with_their_task(native, data):
    # Tasks without a connection of their own share one never-connected
    # wrapper (run.task_connection): one task's execute_wrapper() must not
    # wrap another task's queries.
    seen = []
    inside = asyncio.Event()
    done = asyncio.Event()

    def record(execute, sql, params, many, context):
        seen.append(params)
        return execute(sql, params, many, context)

    async def wrapped():
        await NativeItem.objects.count()  # this task gets the shared wrapper
        with connections["default"].execute_wrapper(record):
            inside.set()
            await done.wait()
            await NativeItem.objects.filter(number=1).count()

    async def other():
        await inside.wait()
        await NativeItem.objects.filter(number=2).count()
        done.set()

    await asyncio.gather(asyncio.create_task(wrapped()), asyncio.create_task(other()))
    assert seen == [(1,)]


@pytest.mark.parametrize("when", [0.05, 0.25])
async def test_iteration_cancelled_while_fetching(native, data, settings, when):
    # Cancelled while the server runs the cursor's query (DECLARE, or a
    # later FETCH): the held connection goes back to the pool (reset or
    # discarded by it), and the pool keeps working.
    from django.db.models.expressions import RawSQL

    settings.DUALCALL_NATIVE_POOL = {"max_size": 2}
    await NativeItem.objects.count()
    size = _pool_stats()["pool_size"]
    slow = NativeItem.objects.annotate(s=RawSQL("pg_sleep(0.05)", ())).order_by("number")

    async def consume():
        return [item.number async for item in slow.iterator(chunk_size=2)]

    task = asyncio.ensure_future(consume())
    await asyncio.sleep(when)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    for _ in range(300):  # bounded wait for the pool to take the connection back
        if _pool_stats().get("pool_available", 0) == size:
            break
        await asyncio.sleep(0.01)
    assert _pool_stats().get("pool_available", 0) == size, _pool_stats()
    assert await asyncio.gather(*[NativeItem.objects.count() for _ in range(size)]) == [7] * size
