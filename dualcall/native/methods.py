"""Which awaited calls run natively, and how each one runs.

:func:`plan_call` looks at the call (a QuerySet method, a manager proxy, or
``await qs``), decides, and returns the coroutine.  The decision is made
when the call is made; the transaction rules are checked again when the
coroutine starts, since a block may open in between.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from asgiref.sync import sync_to_async

from ..awaitables import at_caller
from . import thread_path_required
from .run import (
    Fallback,
    capture,
    compile_sql,
    execute,
    materialize,
    replayed,
    task_connection,
)

__all__ = ["plan_call"]

#: Reads: run twice, first to capture the compiler, then with its rows.
READS = frozenset(
    {"get", "first", "last", "earliest", "latest", "count", "exists", "contains",
     "aggregate", "in_bulk", "explain"}
)
#: Reads that return model instances or rows: the iterable class matters.
EVALUATING = frozenset({"get", "first", "last", "earliest", "latest", "in_bulk", "__await__"})
WRITES = frozenset({"update", "delete"})

#: Why the last native call fell back to the thread path (for tests and debugging).
last_fallback: BaseException | None = None

_originals: dict[str, Any] | None = None
_iterables: frozenset[type] | None = None
_proxy_code: Any = None
# (QuerySet class, name) -> whether the name is Django's own method there.
_own: dict[tuple[type, str], bool] = {}


def _setup() -> None:
    global _originals, _iterables, _proxy_code
    from django.db.models import query
    from django.db.models.manager import BaseManager

    originals = {}
    for name in READS | WRITES:
        value = vars(query.QuerySet)[name]
        originals[name] = getattr(value, "__wrapped__", value)
    _iterables = frozenset(
        cls
        for cls in (
            getattr(query, name, None)
            for name in (
                "ModelIterable", "ValuesIterable", "ValuesListIterable",
                "FlatValuesListIterable", "NamedValuesListIterable",
            )
        )
        if cls is not None
    )
    _proxy_code = BaseManager._get_queryset_methods(query.QuerySet)["count"].__code__
    _originals = originals


def _is_django_own(queryset_class: type, name: str) -> bool:
    key = (queryset_class, name)
    own = _own.get(key)
    if own is None:
        assert _originals is not None
        own = False
        for klass in queryset_class.__mro__:
            if name in vars(klass):
                value = vars(klass)[name]
                own = getattr(value, "__wrapped__", value) is _originals[name]
                break
        _own[key] = own
    return own


def _queryset_of(func: Callable[..., Any], args: tuple[Any, ...]) -> tuple[Any, str] | None:
    """The queryset the call works on and the method's name, or ``None`` (thread path)."""
    from django.core.exceptions import SynchronousOnlyOperation
    from django.db.models import QuerySet
    from django.db.models.manager import BaseManager

    if getattr(func, "dualcall_native", None) == "evaluate":
        queryset = args[0] if args else None
        return (queryset, "__await__") if isinstance(queryset, QuerySet) else None
    function = getattr(func, "__func__", None)
    owner = getattr(func, "__self__", None)
    name = getattr(function, "__name__", None)
    if function is None or (name not in READS and name not in WRITES):
        return None
    if _originals is None:
        _setup()
    if isinstance(owner, QuerySet):
        if not _is_django_own(type(owner), name):
            return None
        return owner, name
    if isinstance(owner, BaseManager):
        if function.__code__ is not _proxy_code or "instance" in vars(owner):
            return None  # a custom method, or a related manager
        try:
            queryset = owner.get_queryset()
        except SynchronousOnlyOperation:
            return None
        if not isinstance(queryset, QuerySet) or not _is_django_own(type(queryset), name):
            return None
        return queryset, name
    return None


def _alias(queryset: Any, name: str) -> str:
    if name in WRITES:
        from django.db import router

        return str(queryset._db or router.db_for_write(queryset.model, **queryset._hints))
    return str(queryset.db)


def _eligible(queryset: Any, name: str) -> bool:
    query = queryset.query
    if query.combinator or query.select_for_update:
        return False
    if name in EVALUATING or name == "contains":
        if queryset._prefetch_related_lookups:
            return False
        if _iterables is None:
            _setup()
        if queryset._iterable_class not in (_iterables or ()):
            return False
    if name == "update" and queryset.model._meta.parents:
        return False
    if name == "delete":
        if query.is_sliced or query.distinct or query.distinct_fields:
            return False
        if queryset._fields is not None:
            return False
    return True


def plan_call(
    func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], at: Any = None
) -> Coroutine[Any, Any, Any] | None:
    """Return the native coroutine of this call, or ``None`` for the thread path."""
    from . import enabled_aliases

    target = _queryset_of(func, args)
    if target is None:
        return None
    queryset, name = target
    alias = _alias(queryset, name)
    if alias not in enabled_aliases() or thread_path_required(alias):
        return None
    if not _eligible(queryset, name):
        return None
    return _run(at_caller(func, at), args, kwargs, queryset, name, alias)


async def _run(
    func: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    queryset: Any,
    name: str,
    alias: str,
) -> Any:
    from .pool import get_pool

    __tracebackhide__ = True
    await get_pool(alias)  # first use on this loop: creates it, learns the server version
    if thread_path_required(alias):
        return await _thread(func, args, kwargs)
    conn = task_connection(alias)
    try:
        if name == "update":
            rows = await _update(conn, alias, func, args, kwargs)
            queryset._result_cache = None
            return rows
        if name == "delete":
            return await _delete(conn, alias, queryset, func, args, kwargs)
        if name == "get":
            return await _get(alias, queryset, args, kwargs)
        if name in ("first", "last") and not args and not kwargs:
            return await _first_or_last(alias, queryset, name)
        return await replayed(conn, alias, lambda: func(*args, **kwargs))
    except Fallback as exc:
        global last_fallback
        last_fallback = exc
        return await _thread(func, args, kwargs)


async def _thread(func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    return await sync_to_async(func, thread_sensitive=True)(*args, **kwargs)


async def _update(
    conn: Any, alias: str, func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    done, compiler = capture(conn, lambda: func(*args, **kwargs))
    if done:
        return compiler
    if compiler.query.related_updates:
        raise Fallback("an update of parent models' fields runs several statements")
    compiled = compile_sql(compiler)
    if compiled is None:
        return 0
    return await execute(alias, compiled[0], compiled[1], "rowcount", retry=False)


async def _delete(
    conn: Any,
    alias: str,
    queryset: Any,
    func: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> Any:
    from django.db.models.deletion import Collector

    if args or kwargs:
        raise Fallback("delete() takes no arguments: Django raises")
    del_query = queryset._chain()
    del_query._for_write = True
    del_query.query.select_for_update = False
    del_query.query.select_related = False
    del_query.query.clear_ordering(force=True)
    collector = Collector(using=del_query.db, origin=queryset)
    if not collector.can_fast_delete(del_query):
        raise Fallback("signals or a cascade in Python: Django's collector deletes")
    done, compiler = capture(conn, lambda: del_query._raw_delete(using=del_query.db))
    if done:
        count = compiler
    else:
        compiled = compile_sql(compiler)
        count = (
            0
            if compiled is None
            else await execute(alias, compiled[0], compiled[1], "rowcount", retry=False)
        )
    queryset._result_cache = None
    label = queryset.model._meta.label
    return count, ({label: count} if count else {})


# get(), first() and last() are the hottest reads: built here as Django builds
# them (query.py; the same in Django 4.2 to 6.1), so that the filter is built
# and compiled once.  Every other read runs Django's own method twice
# (run.replayed).


async def _get(alias: str, queryset: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    from django.db.models.query import MAX_GET_RESULTS

    clone = queryset.filter(*args, **kwargs)
    if queryset.query.can_filter() and not queryset.query.distinct_fields:
        clone = clone.order_by()
    clone.query.set_limits(high=MAX_GET_RESULTS)
    rows = await materialize(clone, alias)
    num = len(rows)
    model = queryset.model
    if num == 1:
        return rows[0]
    if not num:
        raise model.DoesNotExist(f"{model._meta.object_name} matching query does not exist.")
    raise model.MultipleObjectsReturned(
        "get() returned more than one {} -- it returned {}!".format(
            model._meta.object_name,
            num if num < MAX_GET_RESULTS else "more than %s" % (MAX_GET_RESULTS - 1),
        )
    )


async def _first_or_last(alias: str, queryset: Any, name: str) -> Any:
    if queryset.ordered:
        ordered = queryset if name == "first" else queryset.reverse()
    else:
        check = getattr(queryset, "_check_ordering_first_last_queryset_aggregation", None)
        if check is not None:
            check(method=name)
        ordered = queryset.order_by("pk" if name == "first" else "-pk")
    sliced = ordered[:1]
    if isinstance(sliced, list):  # an evaluated queryset slices its cache
        return sliced[0] if sliced else None
    rows = await materialize(sliced, alias)
    return rows[0] if rows else None
