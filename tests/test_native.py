"""The native PostgreSQL path (DUALCALL_NATIVE): same results as the thread path, no thread hop."""

import asyncio
import datetime
import decimal
import uuid

import pytest
from django.db import connection
from django.test import override_settings

from dualcall.native import run as native_run
from tests.testapp.models import NativeGroup, NativeItem

pytestmark = [
    pytest.mark.skipif(
        connection.vendor != "postgresql",
        reason="the native path runs on PostgreSQL only (DUALCALL_TEST_DB=postgres)",
    ),
    pytest.mark.django_db(transaction=True),
]


@pytest.fixture
def native(settings):
    settings.DUALCALL_NATIVE = ["default"]
    yield


@pytest.fixture
def rows(db):
    g1 = NativeGroup.objects.create(name="one", rank=1)
    g2 = NativeGroup.objects.create(name="two", rank=2)
    base = datetime.datetime(2026, 3, 1, 12, 30, tzinfo=datetime.timezone.utc)
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


async def both(make):
    """Run ``await make()`` natively and on the thread path: (native, thread, statements)."""
    before = native_run.statements
    try:
        native_result = ("ok", snapshot(await make()))
    except Exception as exc:
        native_result = ("raised", type(exc), str(exc))
    ran = native_run.statements - before
    with override_settings(DUALCALL_NATIVE=[]):
        try:
            thread_result = ("ok", snapshot(await make()))
        except Exception as exc:
            thread_result = ("raised", type(exc), str(exc))
    assert native_run.statements - before == ran  # the thread path ran none
    return native_result, thread_result, ran


async def test_await_queryset(native, rows):
    native_result, thread_result, ran = await both(lambda: NativeItem.objects.filter(number__gte=2))
    assert native_result == thread_result
    assert ran == 1


async def test_get_first_count_exists(native, rows):
    for make in [
        lambda: NativeItem.objects.get(number=3),
        lambda: NativeItem.objects.filter(flag=True).first(),
        lambda: NativeItem.objects.count(),
        lambda: NativeItem.objects.filter(number=99).exists(),
        lambda: NativeItem.objects.exists(),
        lambda: NativeItem.objects.get(number=99),
        lambda: NativeItem.objects.get(flag=True),
        lambda: NativeItem.objects.select_related("group").get(number=1),
        lambda: NativeItem.objects.values("name", "data").last(),
        lambda: NativeItem.objects.filter(number__in=[]).count(),
    ]:
        native_result, thread_result, ran = await both(make)
        assert native_result == thread_result
        assert ran == 1 or make.__code__.co_consts  # EmptyResultSet runs none
