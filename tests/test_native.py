"""The native PostgreSQL path (DUALCALL_NATIVE): same results as the thread path, no thread hop."""

import asyncio
import datetime
import decimal
import uuid

import pytest
from django.core.exceptions import SynchronousOnlyOperation
from django.db import connection
from django.test import override_settings

from dualcall.exceptions import UnprefetchedRelatedModelAccessError
from dualcall.native import methods
from dualcall.native import run as native_run
from tests.helpers import NATIVE_TESTS
from tests.test_native_ops import _terminate
from tests.testapp.models import NativeGroup, NativeItem

pytestmark = NATIVE_TESTS


@pytest.fixture
def rows(db):
    g1 = NativeGroup.objects.create(name="one", rank=1)
    g2 = NativeGroup.objects.create(name="two", rank=2)
    base = datetime.datetime(2026, 3, 1, 12, 30, tzinfo=datetime.UTC)
    for i in range(6):
        NativeItem.objects.create(
            group=g1 if i % 2 else g2,
            name=f"item{i}",
            number=i,
            big=10**12 + i,
            price=decimal.Decimal(f"{i}.125"),
            ratio=i / 3 if i else None,
            flag=bool(i % 3),
            created=base + datetime.timedelta(hours=i),
            day=datetime.date(2026, 1, 1 + i),
            duration=datetime.timedelta(seconds=i),
            uid=uuid.UUID(int=i),
            data={"i": i, "tags": ["a", "b"][: i % 3]},
            text="x" * i,
        )
    return g1, g2


def snapshot(value):
    """A comparable picture of a result: model instances with their state and caches."""
    from django.db.models import Model

    if isinstance(value, Model):
        return (
            type(value).__name__,
            {k: v for k, v in vars(value).items() if k != "_state"},
            value._state.db,
            value._state.adding,
            {k: snapshot(v) for k, v in value._state.fields_cache.items()},
        )
    if isinstance(value, dict):
        return {k: snapshot(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value).__name__, [snapshot(v) for v in value]
    return type(value).__name__, value


def statements_for(queryset):
    """1, or 0 for a queryset Django knows matches nothing (no SQL is run)."""
    from django.core.exceptions import EmptyResultSet

    try:
        str(queryset.query)
    except EmptyResultSet:
        return 0
    return 1


def C(queryset, method=None, *args, **kwargs):
    return queryset, method, args, kwargs


async def call(queryset, method=None, *args, **kwargs):
    """``await queryset`` or ``await queryset.<method>(...)``, called from this coroutine."""
    if method is None:
        return await queryset
    return await getattr(queryset, method)(*args, **kwargs)


async def outcome(queryset, method, args, kwargs):
    try:
        return ("ok", snapshot(await call(queryset, method, *args, **kwargs)))
    except Exception as exc:
        return ("raised", type(exc), str(exc))


async def both(queryset, method=None, *args, **kwargs):
    """Run the call natively and on the thread path: (native, thread, statements run natively)."""
    before = native_run.statements
    native_result = await outcome(queryset._chain(), method, args, kwargs)
    ran = native_run.statements - before
    with override_settings(DUALCALL_NATIVE=[]):
        thread_result = await outcome(queryset._chain(), method, args, kwargs)
    assert native_run.statements - before == ran  # the thread path ran none
    assert native_result[0] == "ok" or native_result[1] not in (
        SynchronousOnlyOperation, UnprefetchedRelatedModelAccessError
    ), native_result
    return native_result, thread_result, ran


async def test_await_queryset(native, rows):
    native_result, thread_result, ran = await both(NativeItem.objects.filter(number__gte=2))
    assert native_result == thread_result
    assert ran == 1


async def test_get_first_count_exists(native, rows):
    for make in [
        C(NativeItem.objects.all(), "get", number=3),
        C(NativeItem.objects.filter(flag=True), "first"),
        C(NativeItem.objects.all(), "count"),
        C(NativeItem.objects.filter(number=99), "exists"),
        C(NativeItem.objects.all(), "exists"),
        C(NativeItem.objects.all(), "get", number=99),
        C(NativeItem.objects.all(), "get", flag=True),
        C(NativeItem.objects.select_related("group"), "get", number=1),
        C(NativeItem.objects.values("name", "data"), "last"),
        C(NativeItem.objects.filter(number__in=[]), "count"),
    ]:
        native_result, thread_result, ran = await both(*make[:2], *make[2], **make[3])
        assert native_result == thread_result
        assert ran == statements_for(make[0]), (make[1:], native_result, methods.last_fallback)


async def test_remaining_reads(native, rows):
    from django.db.models import Avg, Count, F, Max, Q, Sum

    item = await NativeItem.objects.get(number=2)
    for make in [
        C(NativeItem.objects.all(), "earliest"),
        C(NativeItem.objects.all(), "latest", "number"),
        C(NativeItem.objects.filter(number__gt=10), "latest"),
        C(NativeItem.objects.all(), "in_bulk", [1, 2, 3]),
        C(NativeItem.objects.all(), "in_bulk"),
        C(NativeItem.objects.all(), "in_bulk", ["item1"], field_name="name"),
        C(NativeItem.objects.filter(number__lt=3), "contains", item),
        C(NativeItem.objects.filter(number__gt=3), "contains", item),
        C(NativeItem.objects.all(), "aggregate", Sum("price"), Avg("ratio"), m=Max("created")),
        C(NativeItem.objects.filter(number__gt=100), "aggregate", Sum("price"), c=Count("id")),
        C(NativeItem.objects.values("group__name").annotate(n=Count("id")).order_by("group__name")),
        C(NativeItem.objects.values_list("number", flat=True).order_by("-number")),
        C(NativeItem.objects.values_list("name", "price", named=True).order_by("name")),
        C(NativeItem.objects.annotate(double=F("number") * 2).filter(Q(flag=True) | Q(number=0))),
        C(NativeItem.objects.order_by("number")[2:4]),
        C(NativeGroup.objects.annotate(n=Count("items")).order_by("rank")),
        C(NativeItem.objects.only("name").order_by("number")),
        C(NativeItem.objects.defer("data", "text").select_related("group").order_by("-number")),
        C(NativeItem.objects.filter(data__i__gte=3).order_by("number")),
        C(NativeItem.objects.distinct("group").order_by("group", "number")),
    ]:
        native_result, thread_result, ran = await both(*make[:2], *make[2], **make[3])
        assert native_result == thread_result, make[1:]
        assert ran == 1 or (ran == 0 and native_result[0] == "raised"), (
            make[1:], methods.last_fallback
        )


async def test_explain(native, rows):
    native_result, thread_result, ran = await both(NativeItem.objects.filter(number=1), "explain")
    assert native_result[0] == thread_result[0] == "ok", (native_result, thread_result)
    assert ran == 1
    assert "Scan" in native_result[1][1]


async def test_update_and_delete(native, rows):
    g1, _g2 = rows
    before = native_run.statements
    assert await NativeItem.objects.filter(number__lt=3).update(text="updated") == 3
    assert await NativeItem.objects.filter(number=99).update(text="none") == 0
    assert native_run.statements - before == 2
    assert await NativeItem.objects.filter(text="updated").count() == 3
    # NativeItem has no signal receivers and nothing cascades to it: one statement.
    before = native_run.statements
    assert await NativeItem.objects.filter(number__gte=4).delete() == (2, {"testapp.NativeItem": 2})
    assert await NativeItem.objects.filter(number__gte=4).delete() == (0, {})
    assert native_run.statements - before == 2
    # Deleting groups cascades in Python (Collector): the thread path.
    before = native_run.statements
    deleted = await NativeGroup.objects.filter(pk=g1.pk).delete()
    assert deleted[0] >= 1
    assert native_run.statements == before


async def test_database_errors_are_djangos(native, rows):
    from django.db import utils

    with pytest.raises(utils.IntegrityError):
        await NativeItem.objects.filter(number=1).update(number=None)
    with pytest.raises(utils.DataError) as native_error:
        await NativeItem.objects.filter(number=1).update(name="x" * 200)
    with override_settings(DUALCALL_NATIVE=[]), pytest.raises(utils.DataError) as thread_error:
        await NativeItem.objects.filter(number=1).update(name="x" * 200)
    assert str(native_error.value) == str(thread_error.value)
    with pytest.raises(utils.ProgrammingError):
        await NativeItem.objects.extra(where=["no_such_column = 1"]).count()


async def test_does_not_exist_and_multiple(native, rows):
    with pytest.raises(NativeItem.DoesNotExist, match="NativeItem matching query does not exist"):
        await NativeItem.objects.get(number=1000)
    with pytest.raises(NativeItem.MultipleObjectsReturned, match="it returned 4"):
        await NativeItem.objects.get(flag=True)


@pytest.mark.parametrize("use_tz", [True, False])
async def test_time_zones(native, rows, settings, use_tz):
    from asgiref.sync import sync_to_async
    from django.test.signals import update_connections_time_zone

    settings.TIME_ZONE = "Asia/Kathmandu"
    settings.USE_TZ = use_tz
    # The thread path's worker thread keeps its own connection object, which
    # Django's setting_changed receiver (run in this thread) does not reach.
    await sync_to_async(update_connections_time_zone)(setting="TIME_ZONE", value="Asia/Kathmandu")
    try:
        await _compare_time_zones()
    finally:
        # ...nor the restore after the test: forget what it cached.
        await sync_to_async(_forget_time_zone)()


def _forget_time_zone():
    from django.db import connections

    for conn in connections.all(initialized_only=True):
        conn.close()
        for name in ("timezone", "timezone_name"):
            conn.__dict__.pop(name, None)


async def _compare_time_zones():
    for make in [
        C(NativeItem.objects.order_by("number").values_list("created", "day", flat=False)),
        C(NativeItem.objects.filter(created__hour=14).order_by("number")),
        C(NativeItem.objects.dates("created", "day")),
        C(NativeItem.objects.datetimes("created", "hour")),
    ]:
        native_result, thread_result, ran = await both(*make[:2], *make[2], **make[3])
        assert native_result == thread_result
        assert ran == 1


async def test_debug_queries_log(native, rows, settings):
    from django.db import connections, reset_queries

    settings.DEBUG = True
    reset_queries()
    await NativeItem.objects.filter(number=4).count()
    queries = connections["default"].queries
    assert len(queries) == 1
    assert "COUNT(*)" in queries[0]["sql"] and "= 4" in queries[0]["sql"]


async def test_read_your_writes_across_paths(native, rows):
    # create() runs save() on the thread path, in autocommit: committed at once.
    before = native_run.statements
    await NativeItem.objects.create(
        name="new", number=50, price=1, created=datetime.datetime.now(datetime.UTC)
    )
    assert native_run.statements == before
    assert await NativeItem.objects.filter(number=50).count() == 1
    assert native_run.statements == before + 1


async def test_gather_runs_concurrently(native, rows, settings):
    from django.db.models.expressions import RawSQL

    settings.DUALCALL_NATIVE_POOL = {"max_size": 8}
    await NativeItem.objects.count()  # the pool exists
    slow = NativeItem.objects.annotate(s=RawSQL("pg_sleep(0.2)", ())).filter(number=1)
    start = asyncio.get_running_loop().time()
    results = await asyncio.gather(*[call(slow._chain()) for _ in range(8)])
    elapsed = asyncio.get_running_loop().time() - start
    assert [len(r) for r in results] == [1] * 8
    assert elapsed < 0.2 * 8 / 2, elapsed  # sequential would be 1.6 s


async def test_consecutive_reads_use_the_same_session(native, rows):
    # The pool hands out the connection used last: one task's reads, one
    # after another, run on one server session (its caches warm).
    from django.db.models.expressions import RawSQL

    before = native_run.statements
    pids = [
        await NativeGroup.objects.annotate(pid=RawSQL("pg_backend_pid()", ()))
        .values_list("pid", flat=True)
        .first()
        for _ in range(5)
    ]
    assert native_run.statements - before == 5
    assert len(set(pids)) == 1


async def test_pool_exhausted(native, rows, settings):
    from django.db.models.expressions import RawSQL

    from dualcall.native import NativePoolTimeout

    settings.DUALCALL_NATIVE_POOL = {"max_size": 1, "timeout": 0.2}
    slow = NativeItem.objects.annotate(s=RawSQL("pg_sleep(0.6)", ())).filter(number=1)
    results = await asyncio.gather(call(slow._chain()), call(slow._chain()), return_exceptions=True)
    errors = [r for r in results if isinstance(r, Exception)]
    assert len(errors) == 1 and isinstance(errors[0], NativePoolTimeout), results
    assert "max_size=1" in str(errors[0]) and "DUALCALL_NATIVE_POOL" in str(errors[0])
    from django.db.utils import OperationalError

    assert isinstance(errors[0], OperationalError)


def _backends(expected=None):
    """The pids of the other sessions on the test database (waiting up to 3 s for *expected*).

    Asked on a plain psycopg connection of its own, closed at once, so that
    it works from a coroutine too and is never one of the sessions counted.
    """
    import time

    deadline = time.monotonic() + 3
    while True:
        rows = _admin(
            "SELECT pid FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        pids = {row[0] for row in rows}
        if expected is None or pids == expected or time.monotonic() > deadline:
            return pids
        time.sleep(0.05)


def _admin(sql, params=()):
    import psycopg

    params_ = dict(connection.get_connection_params())
    for key in ("cursor_factory", "context", "prepare_threshold"):
        params_.pop(key, None)
    with psycopg.connect(**params_, autocommit=True) as conn:
        return conn.execute(sql, params).fetchall()


def test_pool_closed_with_its_loop(native, rows, settings):
    settings.DUALCALL_NATIVE_POOL = {"max_size": 6}
    from dualcall.native.pool import loop_pools

    before = _backends()

    async def work():
        counts = await asyncio.gather(
            *[NativeItem.objects.filter(number=i).count() for i in range(12)]
        )
        assert counts == [1] * 6 + [0] * 6
        pool = loop_pools()["default"]
        return pool.get_stats()["pool_size"]

    for _ in range(3):  # a new loop (and pool) each time
        size = asyncio.run(work())
        assert size == 6
        after = _backends(expected=before)
        assert after == before, _admin(
            "SELECT pid, state, query, backend_start FROM pg_stat_activity WHERE pid = ANY(%s)",
            [list(after - before)],
        )  # every pool connection is gone


def test_recovery_after_killed_backend(native, rows, settings):
    settings.DUALCALL_NATIVE_POOL = {"max_size": 2}
    before = _backends()

    async def work():
        assert await NativeItem.objects.count() == 6
        killed = _backends() - before  # the pool's connections, from this thread
        assert killed
        _terminate(killed)
        # The dead idle sessions are never used: a new connection answers.
        assert await NativeItem.objects.count() == 6
        assert await NativeItem.objects.get(number=1)
        assert await NativeItem.objects.filter(number=1).update(text="after") == 1

    asyncio.run(work())
    after = _backends(expected=before)
    assert after == before, _admin(
        "SELECT pid, state, query, backend_start FROM pg_stat_activity WHERE pid = ANY(%s)",
        [list(after - before)],
    )


def test_a_statement_whose_connection_dies_is_not_run_again(native, rows, settings):
    """As on the thread path: the error, not a second run (the server may have run it)."""
    import psycopg
    from django.db.models.expressions import RawSQL
    from django.db.utils import OperationalError

    settings.DUALCALL_NATIVE_POOL = {"max_size": 1}
    params = dict(connection.get_connection_params())
    for key in ("cursor_factory", "context", "prepare_threshold"):
        params.pop(key, None)
    with psycopg.connect(**params, autocommit=True) as admin:
        admin.execute("CREATE SEQUENCE dualcall_side_effect")
    # nextval() runs, then the read sleeps until its backend is terminated.
    side_effect = RawSQL(
        "nextval('dualcall_side_effect') + (SELECT 0 FROM pg_sleep(30))", ()
    )

    async def work():
        read = asyncio.ensure_future(
            NativeItem.objects.filter(number=1).annotate(n=side_effect).values_list("n", flat=True)
        )
        pids = []
        for _ in range(200):
            await asyncio.sleep(0.05)
            pids = await asyncio.to_thread(
                _admin,
                "SELECT pid FROM pg_stat_activity WHERE query LIKE %s AND pid <> pg_backend_pid()",
                ["%dualcall_side_effect%pg_sleep%"],
            )
            if pids:
                break
        assert pids, "the read never started"
        await asyncio.to_thread(_terminate, {row[0] for row in pids})
        with pytest.raises(OperationalError):
            await read
        assert await NativeItem.objects.count() == 6  # the next statement gets a live session

    try:
        asyncio.run(work())
        assert _admin("SELECT last_value FROM dualcall_side_effect") == [(1,)]
    finally:
        with psycopg.connect(**params, autocommit=True) as admin:
            admin.execute("DROP SEQUENCE IF EXISTS dualcall_side_effect")


def test_connection_created_receivers_are_named_at_startup(native):
    """W002: a receiver that sets up the alias' sessions sends it to the thread path."""
    from django.core import checks
    from django.db.backends.signals import connection_created
    from django.db.backends.sqlite3.base import DatabaseWrapper as SQLiteWrapper

    def pragmas(sender, connection, **kwargs):
        return None

    async def count():
        from asgiref.sync import sync_to_async
        from django.db import connections

        try:
            return await NativeItem.objects.count()
        finally:  # the thread path's session, in asgiref's worker thread
            await sync_to_async(connections.close_all)()

    def native_statements():
        before = native_run.statements
        assert asyncio.run(count()) == 0
        return native_run.statements - before

    connection_created.connect(pragmas)
    try:
        [warning] = [m for m in checks.run_checks() if m.id == "dualcall.W002"]
        assert warning.msg == (
            "DUALCALL_NATIVE lists the database 'default', but connection_created receivers "
            "set up its sessions (tests.test_native.test_connection_created_receivers_are_"
            "named_at_startup.<locals>.pragmas); the native pool's sessions never run them, "
            "so every call on it takes the thread path."
        )
        assert native_statements() == 0
    finally:
        connection_created.disconnect(pragmas)
    # Meant for SQLite only, and said so with sender=: PostgreSQL stays native.
    connection_created.connect(pragmas, sender=SQLiteWrapper)
    try:
        assert [m for m in checks.run_checks() if m.id == "dualcall.W002"] == []
        assert native_statements() == 1
    finally:
        connection_created.disconnect(pragmas, sender=SQLiteWrapper)
