"""The native path's transaction rules: whenever a transaction could be open, the thread path."""

import asyncio
import datetime

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.db import transaction
from django.test import TestCase

import dualcall
from dualcall.native import run as native_run
from tests.helpers import POSTGRES_ONLY
from tests.testapp.models import NativeItem

pytestmark = POSTGRES_ONLY

NOW = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)


def make(number):
    return NativeItem(name=f"n{number}", number=number, price=1, created=NOW)


@pytest.mark.django_db(transaction=True)
async def test_inside_dualcall_atomic_takes_the_thread_path(native):
    before = native_run.statements
    async with dualcall.atomic():
        await NativeItem.objects.bulk_create([make(1), make(2)])
        # Uncommitted: only the block's connection sees the rows.
        assert await NativeItem.objects.count() == 2
        assert [i.number async for i in NativeItem.objects.order_by("number")] == [1, 2]
        assert (await NativeItem.objects.get(number=2)).name == "n2"

        async def child():  # a task started inside the block is part of it
            return await NativeItem.objects.filter(number=1).exists()

        assert await asyncio.create_task(child())
    assert native_run.statements == before
    # After the commit, outside the block: native, and it sees the rows.
    assert await NativeItem.objects.count() == 2
    assert native_run.statements == before + 1


@pytest.mark.django_db(transaction=True)
async def test_a_task_outside_the_block_stays_native_and_sees_only_commits(native):
    started = asyncio.Event()
    release = asyncio.Event()

    async def writer():
        async with dualcall.atomic():
            await NativeItem.objects.bulk_create([make(7)])
            started.set()
            await release.wait()

    task = asyncio.create_task(writer())
    await started.wait()
    before = native_run.statements
    assert await NativeItem.objects.filter(number=7).count() == 0  # not committed yet
    assert native_run.statements == before + 1
    release.set()
    await task
    assert await NativeItem.objects.filter(number=7).count() == 1


@pytest.mark.django_db  # the test's transaction, shared by dualcall.testing
async def test_pytest_django_transaction_takes_the_thread_path(native):
    await NativeItem.objects.bulk_create([make(3)])
    before = native_run.statements
    assert await NativeItem.objects.count() == 1
    assert await NativeItem.objects.filter(number=3).exists()
    assert native_run.statements == before


@pytest.mark.django_db
@pytest.mark.dualcall_separate_connection
def test_loop_thread_in_atomic_block_takes_the_thread_path(native):
    # Sync code in a transaction running a coroutine in this thread.
    with transaction.atomic():
        NativeItem.objects.create(name="x", number=4, price=1, created=NOW)

        async def read():
            before = native_run.statements
            await NativeItem.objects.count()
            return native_run.statements - before

        assert asyncio.run(read()) == 0
    # The thread path ran in asgiref's worker thread: close its connection.
    asyncio.run(sync_to_async(_close_this_threads_connection)())


def _close_this_threads_connection():
    from django.db import connections

    connections["default"].close()


@pytest.mark.django_db(transaction=True)
def test_async_to_sync_from_a_transaction_takes_the_thread_path(native):
    with transaction.atomic():
        NativeItem.objects.create(name="x", number=5, price=1, created=NOW)

        async def read():
            before = native_run.statements
            count = await NativeItem.objects.count()
            return count, native_run.statements - before

        # The coroutine's thread-sensitive calls come back to this thread and
        # its transaction: it sees the uncommitted row.
        assert async_to_sync(read)() == (1, 0)
    NativeItem.objects.all().delete()


@pytest.mark.django_db(transaction=True)
async def test_thread_path_write_then_native_read_in_autocommit(native):
    for number in range(3):
        await NativeItem.objects.create(name="w", number=number, price=1, created=NOW)
        assert await NativeItem.objects.filter(number=number).exists()
        await NativeItem.objects.filter(number=number).update(name="u")  # native
        obj = await sync_to_async(NativeItem.objects.get)(number=number)  # thread
        assert obj.name == "u"


class TestCaseTransaction(TestCase):
    """Django's TestCase runs ``async def`` tests with async_to_sync inside its transaction."""

    @classmethod
    def setUpTestData(cls):
        NativeItem.objects.create(name="fixture", number=1, price=1, created=NOW)

    async def test_sees_fixtures_on_the_thread_path(self):
        with self.settings(DUALCALL_NATIVE=["default"]):
            before = native_run.statements
            self.assertEqual(await NativeItem.objects.count(), 1)
            self.assertEqual((await NativeItem.objects.get(number=1)).name, "fixture")
            self.assertEqual(native_run.statements, before)
