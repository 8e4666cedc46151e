"""Property: any generated queryset gives the same result natively and on the thread path."""

import asyncio
import datetime
import decimal
import uuid

import pytest
from asgiref.sync import sync_to_async
from django.db import connections
from django.db.models import Avg, Count, F, Max, Min, Prefetch, Q, Sum, TextField, Value
from django.db.models.functions import Coalesce, Concat, Lower
from django.test import override_settings
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from dualcall.native import methods as native_methods
from dualcall.native import run as native_run
from tests.helpers import NATIVE_TESTS
from tests.test_native import call
from tests.test_native_reads import snapshot
from tests.testapp.models import NativeGroup, NativeItem

pytestmark = NATIVE_TESTS

EXAMPLES = 300

filters = st.one_of(
    st.integers(-1, 12).map(lambda n: Q(number__lt=n)),
    st.integers(-1, 12).map(lambda n: Q(number__gte=n)),
    st.lists(st.integers(0, 12), max_size=4).map(lambda ns: Q(number__in=ns)),
    st.booleans().map(lambda b: Q(flag=b)),
    st.decimals(0, 12, places=3).map(lambda d: Q(price__lte=d)),
    st.sampled_from(["item", "item1", "x", ""]).map(lambda s: Q(name__startswith=s)),
    st.integers(0, 10).map(lambda n: Q(data__i__gte=n)),
    st.booleans().map(lambda b: Q(ratio__isnull=b)),
    st.booleans().map(lambda b: Q(group__isnull=b)),
    st.integers(0, 3).map(lambda n: Q(group__rank=n)),
    st.integers(0, 23).map(lambda h: Q(created__hour__gte=h)),
    st.sampled_from(["a", "b"]).map(lambda t: Q(data__tags__contains=[t])),
)
conditions = st.lists(st.tuples(filters, st.booleans()), max_size=3)
orderings = st.lists(
    st.sampled_from(["number", "-number", "price", "-created", "name", "group__rank", "ratio"]),
    max_size=2,
)
SHAPES = [
    "models", "select_related", "values", "values_list", "flat", "named", "only", "defer",
    "annotate",
]
METHODS = [
    "await", "count", "exists", "first", "last", "get", "aggregate", "latest", "in_bulk",
    "async_for", "iterator",
]
MODEL_SHAPES = {"models", "select_related", "only", "defer", "annotate"}
# prefetch_related() lookups, for the shapes that give model instances.
PREFETCHES = [
    (),
    ("group",),
    ("group__items",),
    (Prefetch("group__items", queryset=NativeItem.objects.filter(flag=True).order_by("-number")),),
    (Prefetch("group", queryset=NativeGroup.objects.prefetch_related("items"), to_attr="g"),),
]


def build(conds, ordering, shape, sliced, prefetch=()):
    qs = NativeItem.objects.all()
    if prefetch and shape in MODEL_SHAPES:
        qs = qs.prefetch_related(*prefetch)
    for q, negate in conds:
        qs = qs.exclude(q) if negate else qs.filter(q)
    qs = qs.order_by(*ordering, "id")
    if shape == "select_related":
        qs = qs.select_related("group")
    elif shape == "values":
        qs = qs.values("id", "name", "price", "data", "created", "group__name")
    elif shape == "values_list":
        qs = qs.values_list("id", "uid", "duration", "day")
    elif shape == "flat":
        qs = qs.values_list("price", flat=True)
    elif shape == "named":
        qs = qs.values_list("id", "ratio", "big", named=True)
    elif shape == "only":
        qs = qs.only("name", "created")
    elif shape == "defer":
        qs = qs.defer("data", "text")
    elif shape == "annotate":
        qs = qs.annotate(
            double=F("number") * 2,
            label=Concat(Lower("name"), Value("-"), "text", output_field=TextField()),
            safe=Coalesce("ratio", Value(0.0)),
        )
    if sliced is not None:
        qs = qs[sliced[0] : sliced[0] + sliced[1]]
    return qs


def arguments(method):
    if method == "aggregate":
        return (Sum("price"), Avg("ratio"), Max("created"), Min("day")), {"n": Count("id")}
    if method == "latest":
        return ("number",), {}
    return (), {}


async def outcome(queryset, method, args, kwargs):
    """``await queryset`` or ``await queryset.<method>(...)``: the outcome, prefetches included."""
    try:
        return ("ok", snapshot(await call(queryset, method, *args, **kwargs)))
    except Exception as exc:
        return ("raised", type(exc), str(exc))


async def iterated(queryset, method, chunk_size):
    """``async for`` over the queryset, or over ``iterator(chunk_size)``: the outcome."""
    try:
        source = queryset if method == "async_for" else queryset.iterator(chunk_size=chunk_size)
        return ("ok", snapshot([item async for item in source]))
    except Exception as exc:
        return ("raised", type(exc), str(exc))


@pytest.fixture
def dataset(db):
    groups = [NativeGroup.objects.create(name=f"g{i}", rank=i) for i in range(3)]
    base = datetime.datetime(2026, 3, 1, 12, 30, tzinfo=datetime.UTC)
    for i in range(12):
        NativeItem.objects.create(
            group=groups[i % 3] if i % 4 else None,
            name=f"item{i}",
            number=i,
            big=2**40 + i,
            price=decimal.Decimal(i) / 7,
            ratio=None if i % 5 == 0 else i / 4,
            flag=i % 3 == 0,
            created=base + datetime.timedelta(hours=3 * i, microseconds=i),
            day=datetime.date(2025, 12, 20) + datetime.timedelta(days=i),
            duration=datetime.timedelta(minutes=i),
            uid=uuid.UUID(int=i * 1000),
            data={"i": i, "tags": ["a", "b"][: i % 3], "f": i / 2} if i % 6 else None,
            text="t" * (i % 4),
        )


def test_native_equals_thread_path(dataset, settings):
    settings.DUALCALL_NATIVE = ["default"]
    settings.DUALCALL_NATIVE_POOL = {"max_size": 2}
    ran = {"native": 0, "examples": 0}

    with asyncio.Runner() as runner:

        @hsettings(
            max_examples=EXAMPLES,
            deadline=None,
            suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
            database=None,
            derandomize=True,  # the same examples in every run and environment
        )
        @given(
            conds=conditions,
            ordering=orderings,
            shape=st.sampled_from(SHAPES),
            method=st.sampled_from(METHODS),
            sliced=st.one_of(st.none(), st.tuples(st.integers(0, 5), st.integers(1, 6))),
            prefetch=st.sampled_from(range(len(PREFETCHES))),
            chunk_size=st.integers(1, 5),
        )
        def check(conds, ordering, shape, method, sliced, prefetch, chunk_size):
            qs = build(conds, ordering, shape, sliced, PREFETCHES[prefetch])
            if method == "get":
                qs = qs.filter(number=(conds and 3) or 4) if sliced is None else qs
            if method == "in_bulk" and (shape != "models" or sliced is not None):
                method = "await"
            name = None if method == "await" else method
            args, kwargs = arguments(method)

            async def run(queryset):
                if method in ("async_for", "iterator"):
                    return await iterated(queryset, method, chunk_size)
                return await outcome(queryset, name, args, kwargs)

            async def compare():
                before = native_run.statements
                native = await run(qs._chain())
                statements = native_run.statements - before
                with override_settings(DUALCALL_NATIVE=[]):
                    thread = await run(qs._chain())
                return native, thread, statements

            native, thread, statements = runner.run(compare())
            if native != thread:
                raise AssertionError((shape, method, sliced, native, thread))
            # One statement, plus one per prefetch level; an iterator's
            # DECLARE and FETCHes (server-side cursor).
            most = 1 + len(PREFETCHES[prefetch]) * 2 if shape in MODEL_SHAPES else 1
            if shape == "only" and PREFETCHES[prefetch]:
                most += 12  # group_id is deferred: Django loads it row by row (natively too)
            if method == "iterator":
                most = 12 // chunk_size + 3
            assert statements <= most, (statements, native_methods.last_fallback)
            ran["native"] += min(statements, 1)
            ran["examples"] += 1

        check()
        runner.run(sync_to_async(connections.close_all)())
    # Most examples ran natively (the rest: Django raised before any SQL, or
    # the query matched nothing and ran no SQL at all).
    assert ran["examples"] >= EXAMPLES, ran
    assert ran["native"] >= ran["examples"] * 0.7, ran
    print(f"hypothesis: {ran['examples']} examples, {ran['native']} native statements")
