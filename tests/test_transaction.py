"""dualcall.atomic: Django's atomic in sync code, a real transaction in async code."""

import asyncio
import re
import threading

import pytest
from asgiref.sync import sync_to_async
from django.db import connection, transaction

import dualcall
from tests.testapp.models import Question

pytestmark = pytest.mark.django_db(transaction=True)


def titles():
    return sorted(Question.objects.values_list("question_text", flat=True))


async def atitles():
    return sorted(await Question.objects.values_list("question_text", flat=True))


class Boom(Exception):
    pass


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
    async def body(text, fail):
        async with dualcall.atomic():
            await Question.objects.create(question_text=text)
            await asyncio.sleep(0.01)
            if fail:
                raise Boom

    results = await asyncio.gather(
        body("a", False), body("b", True), body("c", False), return_exceptions=True
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
        assert await sync_to_async(_server_connections)() <= before
    await asyncio.sleep(0.1)
    lingering = [t for t in threading.enumerate() if t.name.startswith("dualcall-atomic")]
    assert len(lingering) <= 1
