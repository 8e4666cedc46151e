"""Adversarial review of the native path: each test is a defect that was found, then fixed."""

import asyncio
import datetime

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.db import connections, transaction
from django.db.backends.signals import connection_created
from django.db.models import CharField
from django.db.models.expressions import RawSQL
from django.db.models.signals import post_init
from django.test import override_settings

from dualcall.native import methods
from dualcall.native import run as native_run
from tests.helpers import NATIVE_TESTS
from tests.testapp.models import NativeGroup, NativeItem

pytestmark = NATIVE_TESTS

NOW = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)


def _close_thread_connections():
    for conn in connections.all(initialized_only=True):
        conn.close()


def _set_tenant(sender, connection, **kwargs):
    # What a multi-tenant or row-level-security setup does for each session.
    with connection.cursor() as cursor:
        cursor.execute("SELECT set_config('app.tenant', 'tenant-7', false)")


async def test_connection_created_receivers_set_up_the_session(native):
    await sync_to_async(NativeItem.objects.create)(name="x", number=1, price=1, created=NOW)
    tenant = NativeItem.objects.annotate(
        tenant=RawSQL("current_setting('app.tenant', true)", (), output_field=CharField())
    ).values_list("tenant", flat=True)
    connection_created.connect(_set_tenant)
    try:
        # Django's own connection (the thread path) runs the receiver when it connects.
        await sync_to_async(_close_thread_connections)()
        with override_settings(DUALCALL_NATIVE=[]):
            assert await tenant.first() == "tenant-7"
        # The native pool's sessions never ran it: the call takes the thread path.
        before = native_run.statements
        assert await tenant.first() == "tenant-7"
        assert native_run.statements == before
    finally:
        connection_created.disconnect(_set_tenant)
        await sync_to_async(_close_thread_connections)()
    before = native_run.statements
    assert await tenant.first() in ("", None)
    assert native_run.statements == before + 1


# -- user code run inside the native greenlet --------------------------------


async def _coroutine_result():
    return "from-coroutine"


def _calls_async_to_sync(sender, instance, **kwargs):
    instance.probe = async_to_sync(_coroutine_result)()


def _swallows_a_sync_only_error(sender, instance, **kwargs):
    # Best-effort user code: on the thread path the query runs.
    try:
        with connections["default"].cursor() as cursor:
            cursor.execute("SELECT 1")
            instance.probe = cursor.fetchone()[0]
    except Exception:
        instance.probe = None


def _swallows_a_refused_write(sender, instance, **kwargs):
    # A write in a read: the native path refuses it (its own error).
    try:
        instance.probe = NativeGroup.objects.filter(rank=0).update(name="never")
    except Exception:
        instance.probe = None


def _queries_synchronously(sender, instance, **kwargs):
    instance.probe = NativeGroup.objects.count()


def _opens_atomic(sender, instance, **kwargs):
    with transaction.atomic():
        instance.probe = NativeGroup.objects.count()


async def _probe(receiver):
    """``NativeGroup.objects.get()`` with *receiver* on post_init: (native, thread) outcomes."""
    await sync_to_async(NativeGroup.objects.create)(name="g", rank=1)
    outcomes = []
    post_init.connect(receiver, sender=NativeGroup)
    try:
        for aliases in (["default"], []):
            with override_settings(DUALCALL_NATIVE=aliases):
                try:
                    outcomes.append(("ok", (await NativeGroup.objects.get(rank=1)).probe))
                except Exception as exc:
                    outcomes.append(("raised", type(exc), str(exc)))
    finally:
        post_init.disconnect(receiver, sender=NativeGroup)
    return outcomes


async def test_async_to_sync_in_user_code_of_a_native_call(native):
    native_outcome, thread_outcome = await _probe(_calls_async_to_sync)
    assert thread_outcome == ("ok", "from-coroutine")
    assert native_outcome == thread_outcome, methods.last_fallback


@pytest.mark.parametrize("receiver", [_queries_synchronously, _opens_atomic])
async def test_sync_queries_and_atomic_in_user_code_of_a_native_call(native, receiver):
    native_outcome, thread_outcome = await _probe(receiver)
    assert thread_outcome == ("ok", 1)
    assert native_outcome == thread_outcome, methods.last_fallback


@pytest.mark.parametrize(
    "receiver, value", [(_swallows_a_sync_only_error, 1), (_swallows_a_refused_write, 0)]
)
async def test_sync_only_error_swallowed_by_user_code_of_a_native_call(native, receiver, value):
    native_outcome, thread_outcome = await _probe(receiver)
    assert thread_outcome == ("ok", value)
    assert native_outcome == thread_outcome, methods.last_fallback


# -- connections held by an iteration -------------------------------------------


async def test_queries_in_the_body_of_a_native_iteration(native, settings):
    # The iteration holds a pool connection for its server-side cursor; the
    # body's own queries need one more.  On the thread path both use the
    # request's one connection.
    settings.DUALCALL_NATIVE_POOL = {"max_size": 1, "timeout": 0.5}
    await sync_to_async(NativeGroup.objects.create)(name="g", rank=1)
    await sync_to_async(NativeGroup.objects.create)(name="h", rank=2)
    before = native_run.statements
    seen = []
    async for group in NativeGroup.objects.order_by("rank").iterator(chunk_size=1):
        below = NativeGroup.objects.filter(rank__lte=group.rank)
        count, names = await asyncio.gather(below.count(), below.values_list("name", flat=True))
        inner = [g.rank async for g in NativeGroup.objects.order_by("-rank").iterator(chunk_size=1)]
        seen.append((group.name, count, names, inner))
    assert seen == [("g", 1, ["g"], [2, 1]), ("h", 2, ["g", "h"], [2, 1])]
    assert native_run.statements > before + 6
    # Every connection went back: the pool's one connection serves the next call.
    assert await NativeGroup.objects.count() == 2
    # A task iterating again and again holds at most what it iterates.
    for _ in range(3):
        async for _group in NativeGroup.objects.all().iterator(chunk_size=1):
            pass
    async for _group in NativeGroup.objects.all().iterator(chunk_size=1):
        chain = []
        held = native_run._held.get()
        while held is not None:
            chain.append(held.aconn is not None)
            held = held.previous
        assert chain == [True]


# -- what a call runs when it is made -------------------------------------------


class QueryingRouter:
    """A router that reads the database to decide (a tenant's database, say)."""

    def db_for_read(self, model, **hints):
        NativeItem.objects.using("default").exists()
        return "default"

    db_for_write = db_for_read


async def test_router_code_runs_where_the_thread_path_runs_it(native):
    await sync_to_async(NativeGroup.objects.create)(name="g", rank=1)
    with override_settings(DATABASE_ROUTERS=[f"{__name__}.QueryingRouter"]):
        assert await NativeGroup.objects.count() == 1
        assert await NativeGroup.objects.filter(rank=1).count() == 1
        assert await NativeGroup.objects.filter(rank=1).update(name="h") == 1
        assert [g.name async for g in NativeGroup.objects.all()] == ["h"]
        assert await NativeGroup.objects.filter(rank=2).delete() == (0, {})


async def test_a_related_manager_of_an_unsaved_instance_raises_when_awaited(native):
    group = NativeGroup(name="unsaved")
    awaitable = group.items.count()  # the thread path: nothing runs yet
    with pytest.raises(ValueError, match="primary key value"):
        await awaitable


def _create_hstore():
    with connections["default"].cursor() as cursor:
        cursor.execute("CREATE EXTENSION IF NOT EXISTS hstore")


async def test_contrib_postgres_type_loaders_on_native_sessions(native):
    # django.contrib.postgres (when installed) connects register_type_handlers
    # to connection_created: hstore values load as dicts, citext[] as lists.
    from django.contrib.postgres.fields import ArrayField, HStoreField
    from django.contrib.postgres.signals import get_hstore_oids, register_type_handlers

    await sync_to_async(_create_hstore)()
    await sync_to_async(NativeItem.objects.create)(name="x", number=1, price=1, created=NOW)
    get_hstore_oids.cache_clear()
    values = NativeItem.objects.annotate(
        h=RawSQL("'a=>1, b=>NULL'::hstore", (), output_field=HStoreField()),
        t=RawSQL("ARRAY['x', 'y']::text[]", (), output_field=ArrayField(CharField())),
    ).values_list("h", "t")
    connection_created.connect(register_type_handlers)
    try:
        await sync_to_async(_close_thread_connections)()
        with override_settings(DUALCALL_NATIVE=[]):
            thread = await values.first()
        before = native_run.statements
        assert await values.first() == thread == ({"a": "1", "b": None}, ["x", "y"])
        assert native_run.statements == before + 1, methods.last_fallback
    finally:
        connection_created.disconnect(register_type_handlers)
        await sync_to_async(_close_thread_connections)()


# -- DJANGO_ALLOW_ASYNC_UNSAFE: sync ORM calls in coroutines --------------------


def _create_group(name):
    NativeGroup.objects.create(name=name, rank=1)


def _count_groups():
    return NativeGroup.objects.count()


async def test_unsafe_sync_calls_of_two_tasks_use_their_own_connections(native, monkeypatch):
    # With the guard off, sync ORM calls in a coroutine use the task's own
    # connection (Django's connections are task-local there): a transaction
    # of one task is not another's.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    opened, done = asyncio.Event(), asyncio.Event()

    async def writer():
        await NativeGroup.objects.count()  # native
        with transaction.atomic():
            _create_group("uncommitted")  # sync, the guard off
            opened.set()
            await done.wait()
            transaction.set_rollback(True)
        connections["default"].close()

    async def reader():
        await opened.wait()
        await NativeGroup.objects.count()  # native
        try:
            return _count_groups()  # sync, the guard off
        finally:
            done.set()
            connections["default"].close()

    _, seen = await asyncio.gather(writer(), reader())
    assert seen == 0
    assert await NativeGroup.objects.count() == 0


def _writes_then_reads_in_atomic(sender, instance, **kwargs):
    with transaction.atomic():
        NativeItem.objects.create(name="in-atomic", number=1, price=1, created=NOW)
        instance.probe = NativeItem.objects.filter(name="in-atomic").count()
        transaction.set_rollback(True)


async def test_unsafe_atomic_in_user_code_of_a_native_call(native, monkeypatch):
    # The guard off, user code of the call opens a transaction on the task's
    # connection: its reads must see its own writes.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    try:
        native_outcome, thread_outcome = await _probe(_writes_then_reads_in_atomic)
    finally:
        connections["default"].close()
    assert thread_outcome == ("ok", 1)
    assert native_outcome == thread_outcome, methods.last_fallback


def _logs_and_updates(sender, instance, **kwargs):
    NativeItem.objects.create(name="log", number=instance.rank, price=1, created=NOW)
    instance.probe = NativeItem.objects.filter(name="log").update(text="seen")


async def test_unsafe_writes_in_user_code_of_a_native_call_run_once(native, monkeypatch):
    # The guard off, user code of a read writes through Django's sync
    # connection: the call must never run again on the thread path.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    try:
        native_outcome, thread_outcome = await _probe(_logs_and_updates)
        logs = await NativeItem.objects.filter(name="log").count()
    finally:
        connections["default"].close()
    assert (native_outcome, thread_outcome, logs) == (("ok", 1), ("ok", 2), 2)
