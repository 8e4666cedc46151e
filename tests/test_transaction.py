"""dualcall.atomic: Django's atomic in sync code, a real transaction in async code."""

import asyncio
import re
import threading

import pytest
from asgiref.sync import sync_to_async
from django.core.exceptions import SynchronousOnlyOperation
from django.db import connection, transaction

import dualcall
from tests.helpers import Boom, atitles, titles, write_in_block
from tests.testapp.models import Question

pytestmark = pytest.mark.django_db(transaction=True)




def test_sync_with_and_decorator_are_djangos_atomic():
    with pytest.raises(Boom), dualcall.atomic():
        Question.objects.create(question_text="rolled back")
        raise Boom
    with dualcall.atomic():
        Question.objects.create(question_text="kept")

    @dualcall.atomic
    def create_and_fail():
        Question.objects.create(question_text="decorated")
        raise Boom

    with pytest.raises(Boom):
        create_and_fail()
    assert titles() == ["kept"]
    assert isinstance(dualcall.atomic(), transaction.Atomic)


async def test_async_with_commits_on_normal_exit():
    async with dualcall.atomic():
        await Question.objects.create(question_text="dual")
        await Question.objects.acreate(question_text="a-method")
        await sync_to_async(Question.objects.create)(question_text="sync_to_async")
    assert await atitles() == ["a-method", "dual", "sync_to_async"]


async def test_async_with_rolls_back_every_kind_of_call_on_exception():
    with pytest.raises(Boom):
        async with dualcall.atomic():
            await Question.objects.create(question_text="dual")
            await Question.objects.acreate(question_text="a-method")
            await sync_to_async(Question.objects.create)(question_text="sync_to_async")
            question = Question(question_text="saved")
            await question.save()
            assert await Question.objects.count() == 4
            raise Boom
    assert await Question.objects.count() == 0


async def test_nested_block_is_a_savepoint():
    async with dualcall.atomic():
        await Question.objects.create(question_text="outer")
        with pytest.raises(Boom):
            async with dualcall.atomic():
                await Question.objects.create(question_text="inner")
                raise Boom
        async with dualcall.atomic():
            await Question.objects.create(question_text="inner kept")
    assert await atitles() == ["inner kept", "outer"]


async def test_nested_without_savepoint_dooms_the_outer_block():
    with pytest.raises(Boom):
        async with dualcall.atomic():
            await Question.objects.create(question_text="outer")
            async with dualcall.atomic(savepoint=False):
                await Question.objects.create(question_text="inner")
                raise Boom
    assert await Question.objects.count() == 0


async def test_durable_block_cannot_be_nested():
    async with dualcall.atomic(durable=True):
        await Question.objects.create(question_text="durable")
    message = "A durable atomic block cannot be nested within another atomic block."
    with pytest.raises(RuntimeError, match=re.escape(message)):
        async with dualcall.atomic(), dualcall.atomic(durable=True):
            pass
    assert await atitles() == ["durable"]


async def test_decorator_on_async_def():
    @dualcall.atomic
    async def bare(text, fail):
        await Question.objects.create(question_text=text)
        if fail:
            raise Boom
        return text

    @dualcall.atomic(using="default", durable=True)
    async def with_arguments(text):
        await Question.objects.create(question_text=text)
        return text

    assert await bare("kept", fail=False) == "kept"
    with pytest.raises(Boom):
        await bare("lost", fail=True)
    assert await with_arguments("durable") == "durable"
    assert await atitles() == ["durable", "kept"]


async def test_tasks_outside_the_block_are_not_part_of_it_and_do_not_wait():
    inside = asyncio.Event()
    release = asyncio.Event()

    async def transaction_body():
        async with dualcall.atomic():
            await Question.objects.create(question_text="uncommitted")
            inside.set()
            await release.wait()
            raise Boom

    block = asyncio.create_task(transaction_body())
    await inside.wait()
    # The block is open and holds an uncommitted row: this task (outside the
    # block) neither sees it nor waits for the block to finish.
    assert await asyncio.wait_for(Question.objects.count(), timeout=10) == 0
    release.set()
    with pytest.raises(Boom):
        await block
    assert await Question.objects.count() == 0


async def test_tasks_started_inside_the_block_join_it():
    with pytest.raises(Boom):
        async with dualcall.atomic():
            await asyncio.gather(
                *[Question.objects.create(question_text=f"t{i}") for i in range(5)]
            )
            assert await Question.objects.count() == 5
            raise Boom
    assert await Question.objects.count() == 0


async def test_concurrent_blocks_are_independent():
    results = await asyncio.gather(
        write_in_block("a"), write_in_block("b", fail=True), write_in_block("c"),
        return_exceptions=True,
    )
    assert [type(r) for r in results] == [type(None), Boom, type(None)]
    assert await atitles() == ["a", "c"]


async def test_on_commit_runs_after_commit_and_not_after_rollback():
    ran = []
    async with dualcall.atomic():
        await Question.objects.create(question_text="x")
        # Registered from the coroutine itself ...
        transaction.on_commit(lambda: ran.append("coroutine"))
        # ... and from sync code running in the block.
        await sync_to_async(transaction.on_commit)(lambda: ran.append("sync"))
        assert ran == []
    assert ran == ["coroutine", "sync"]

    with pytest.raises(Boom):
        async with dualcall.atomic():
            transaction.on_commit(lambda: ran.append("rolled back"))
            raise Boom
    assert ran == ["coroutine", "sync"]


async def test_on_commit_in_rolled_back_savepoint_is_discarded():
    ran = []
    async with dualcall.atomic():
        transaction.on_commit(lambda: ran.append("outer"))
        with pytest.raises(Boom):
            async with dualcall.atomic():
                transaction.on_commit(lambda: ran.append("inner"))
                raise Boom
    assert ran == ["outer"]


async def test_on_commit_outside_a_block_runs_at_once_as_in_django():
    ran = []
    await sync_to_async(transaction.on_commit)(lambda: ran.append("now"))
    assert ran == ["now"]


async def test_set_rollback_from_the_coroutine_rolls_the_block_back():
    async with dualcall.atomic():
        await Question.objects.create(question_text="x")
        transaction.set_rollback(True)
    assert await Question.objects.count() == 0


async def test_cancelling_the_task_rolls_the_block_back():
    inside = asyncio.Event()

    async def body():
        async with dualcall.atomic():
            await Question.objects.create(question_text="cancelled")
            inside.set()
            await asyncio.sleep(60)

    task = asyncio.create_task(body())
    await inside.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await Question.objects.count() == 0


def _server_connections():
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
        )
        return cursor.fetchone()[0]


async def _assert_server_connections_settle_to(before, seconds=5.0):
    """Poll ``pg_stat_activity``: a closed connection's server process ends shortly after."""
    deadline = asyncio.get_running_loop().time() + seconds
    while (now := await sync_to_async(_server_connections)()) > before:
        assert asyncio.get_running_loop().time() < deadline, (
            f"{now} server connections after {seconds}s, {before} before"
        )
        await asyncio.sleep(0.05)


async def test_blocks_do_not_leak_connections_or_threads():
    async def one_block(i):
        async with dualcall.atomic():
            await Question.objects.create(question_text=f"q{i}")

    await one_block(-1)
    if connection.vendor == "postgresql":
        before = await sync_to_async(_server_connections)()
    for i in range(500):
        await one_block(i)
    assert await Question.objects.count() == 501
    if connection.vendor == "postgresql":
        await _assert_server_connections_settle_to(before)
    await asyncio.sleep(0.1)
    lingering = [t for t in threading.enumerate() if t.name.startswith("dualcall-atomic")]
    assert len(lingering) <= 1


# -- cancellation at each await point, made deterministic -----------------------


def _stacks():
    """Django's atomic stacks of this thread's connection (run in the block's thread)."""
    return (
        list(connection.savepoint_ids),
        len(connection.atomic_blocks),
        connection.in_atomic_block,
        connection.needs_rollback,
    )


def _busy(seconds):
    """Keep the calling thread busy: a query on PostgreSQL, Python on SQLite."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_sleep(%s)", [seconds])
    else:
        threading.Event().wait(seconds)


class _SlowStatement:
    """A Django execute wrapper that makes statements starting with *prefix* slow."""

    def __init__(self, prefix, seconds):
        self.prefix, self.seconds, self.seen = prefix, seconds, []

    def __call__(self, execute, sql, params, many, context):
        kinds = ("SAVEPOINT", "ROLLBACK TO SAVEPOINT", "RELEASE SAVEPOINT")
        self.seen.append(next((k for k in kinds if sql.startswith(k)), "other"))
        if sql.startswith(self.prefix):
            threading.Event().wait(self.seconds)
        return execute(sql, params, many, context)

    def install(self):
        connection.execute_wrappers.append(self)


async def _nested(text):
    async with dualcall.atomic():
        await Question.objects.create(question_text=text)
    return text


async def test_cancelled_while_nested_enter_waits_for_a_busy_thread():
    async with dualcall.atomic():
        await Question.objects.create(question_text="outer")
        before = await sync_to_async(_stacks)()
        # A task of the block keeps the block's thread busy: the nested
        # block's savepoint is queued behind it when the timeout lands.
        sibling = asyncio.create_task(sync_to_async(_busy)(0.3))
        await asyncio.sleep(0.05)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(_nested("inner"), timeout=0.05)
        await sibling
        assert await sync_to_async(_stacks)() == before
        await Question.objects.create(question_text="after")
    assert await atitles() == ["after", "outer"]


async def test_cancelled_while_nested_enter_runs_rolls_the_savepoint_back():
    slow = _SlowStatement("SAVEPOINT", 0.6)
    async with dualcall.atomic():
        await Question.objects.create(question_text="outer")
        before = await sync_to_async(_stacks)()
        await sync_to_async(slow.install)()
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(_nested("inner"), timeout=0.2)
        assert await sync_to_async(_stacks)() == before
        # The savepoint was created, then rolled back (and released).
        assert slow.seen[slow.seen.index("SAVEPOINT") :] == [
            "SAVEPOINT",
            "ROLLBACK TO SAVEPOINT",
            "RELEASE SAVEPOINT",
        ]
        await Question.objects.create(question_text="after")
    assert await atitles() == ["after", "outer"]


async def test_cancelled_while_nested_exit_waits_rolls_the_nested_block_back():
    siblings = []

    async def nested_then_busy_sibling():
        async with dualcall.atomic():
            await Question.objects.create(question_text="inner")
            # A sibling task holds the block's thread when the nested block exits.
            siblings.append(asyncio.create_task(sync_to_async(_busy)(0.3)))
            await asyncio.sleep(0.05)

    async with dualcall.atomic():
        await Question.objects.create(question_text="outer")
        before = await sync_to_async(_stacks)()
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(nested_then_busy_sibling(), timeout=0.1)
        await asyncio.gather(*siblings)
        assert await sync_to_async(_stacks)() == before
    assert await atitles() == ["outer"]


async def test_cancellation_after_the_exit_started_is_too_late_and_the_block_exits_normally():
    slow = _SlowStatement("RELEASE", 0.6)
    async with dualcall.atomic():
        await Question.objects.create(question_text="outer")
        before = await sync_to_async(_stacks)()
        await sync_to_async(slow.install)()
        # The timeout lands while the savepoint is being released: the
        # nested block's work is kept, so it reports success.
        assert await asyncio.wait_for(_nested("inner"), timeout=0.3) == "inner"
        assert await sync_to_async(_stacks)() == before
    assert await atitles() == ["inner", "outer"]


async def test_cancelled_outermost_exit_waiting_for_the_thread_rolls_back():
    ran = []
    children = []

    async def body():
        async with dualcall.atomic():
            await Question.objects.create(question_text="cancelled")
            transaction.on_commit(lambda: ran.append("commit"))
            children.append(asyncio.create_task(sync_to_async(_busy)(0.3)))
            await asyncio.sleep(0.05)

    with pytest.raises(TimeoutError):
        await asyncio.wait_for(body(), timeout=0.1)
    await asyncio.gather(*children)
    assert await Question.objects.count() == 0
    assert ran == []


async def test_cancelled_nested_block_without_savepoint_makes_the_outer_block_fail_loudly():
    async def nested_without_savepoint():
        async with dualcall.atomic(savepoint=False):
            await Question.objects.create(question_text="inner")
            await asyncio.sleep(1)

    with pytest.raises(transaction.TransactionManagementError) as raised:
        async with dualcall.atomic():
            await Question.objects.create(question_text="outer")
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(nested_without_savepoint(), timeout=0.2)
    message = str(raised.value)
    assert message.startswith(
        "The transaction was rolled back: the nested dualcall.atomic block at "
    )
    assert f"{__file__}:" in message
    assert "(cancelled with CancelledError) could not be rolled back to a savepoint" in message
    assert await Question.objects.count() == 0


# -- two tasks of one block ----------------------------------------------------


async def test_gathered_nested_blocks_are_serialized():
    async with dualcall.atomic():
        results = await asyncio.gather(
            write_in_block("failing", fail=True),
            write_in_block("succeeding", delay=0.02),
            return_exceptions=True,
        )
        assert [type(r) for r in results] == [Boom, type(None)]
    assert await atitles() == ["succeeding"]


async def test_tasks_inside_a_nested_block_nest_on_it():
    async def child(i):
        async with dualcall.atomic():
            await Question.objects.create(question_text=f"c{i}")
            if i % 2:
                raise Boom

    async with dualcall.atomic(), dualcall.atomic():
        await asyncio.gather(*[child(i) for i in range(4)], return_exceptions=True)
    assert await atitles() == ["c0", "c2"]


async def test_a_task_that_outlives_its_nested_block_cannot_open_a_block_in_it():
    release = asyncio.Event()

    async def late_child():
        await release.wait()
        async with dualcall.atomic():
            await Question.objects.create(question_text="late")

    async with dualcall.atomic():
        async with dualcall.atomic():
            child = asyncio.create_task(late_child())
        release.set()
        with pytest.raises(transaction.TransactionManagementError) as raised:
            await child
    assert str(raised.value).startswith("dualcall.atomic: the dualcall.atomic block at ")
    assert str(raised.value).endswith(
        "has exited; a task started inside it must finish before it exits."
    )
    assert await Question.objects.count() == 0


# -- canaries: internals dualcall.atomic and dualcall.testing rely on -----------


def test_canary_loop_thread_transaction_is_found_in_the_connection_local():
    """``_loop_thread_in_atomic_block`` reads Django's ``connections._connections``
    (an asgiref thread-critical ``Local``) and its ``_storage`` (a
    ``threading.local``).  If this fails, Django or asgiref moved them: find
    where the sync connections of a thread live now and update the function,
    or pytest-django's transaction is no longer detected under pytest-asyncio
    (blocks would then open their own connection instead of failing loudly).
    """
    from dualcall.transaction import _loop_thread_in_atomic_block

    async def seen_from_a_loop():
        return _loop_thread_in_atomic_block("default")

    assert asyncio.run(seen_from_a_loop()) is False
    with transaction.atomic():
        assert asyncio.run(seen_from_a_loop()) is True


def test_canary_asgiref_thread_sensitive_routing():
    """``dualcall.atomic`` reads ``AsyncToSync.executors.current`` (set while
    ``async_to_sync`` waits: thread-sensitive calls go to that thread) and
    ``dualcall.testing`` lends the test's connection to
    ``SyncToAsync.single_thread_executor`` (where they go from a loop with no
    context).  If this fails, asgiref changed how it picks the thread of a
    thread-sensitive call: re-read ``SyncToAsync.__call__``.
    """
    from asgiref.sync import AsyncToSync, SyncToAsync, async_to_sync

    async def parked_executor():
        return getattr(AsyncToSync.executors, "current", None)

    assert async_to_sync(parked_executor)() is not None
    assert asyncio.run(parked_executor()) is None

    async def worker_thread():
        return await sync_to_async(threading.current_thread)()

    executor = SyncToAsync.single_thread_executor
    assert asyncio.run(worker_thread()) is executor.submit(threading.current_thread).result()


async def test_sibling_plain_write_waits_for_a_nested_block_of_another_task():
    # A task's plain write must not run inside a sibling task's savepoint, to be
    # rolled back with it: it waits until that nested block has exited.
    async with dualcall.atomic():

        async def plain_sibling():
            await asyncio.sleep(0.02)
            await Question.objects.create(question_text="sibling")

        results = await asyncio.gather(
            write_in_block("nested, rolled back", fail=True, delay=0.1),
            plain_sibling(),
            return_exceptions=True,
        )
        assert isinstance(results[0], Boom)
        assert results[1] is None
    assert await atitles() == ["sibling"]


@pytest.mark.parametrize("savepoint", [True, False])
async def test_sync_atomic_in_a_coroutine_inside_a_block_is_refused(savepoint):
    async with dualcall.atomic():
        await Question.objects.create(question_text="outer")
        refused = pytest.raises(
            SynchronousOnlyOperation, match=re.escape("use async with dualcall.atomic")
        )
        with refused, transaction.atomic(savepoint=savepoint):
            pass
    assert await atitles() == ["outer"]
