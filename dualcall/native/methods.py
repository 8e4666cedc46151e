"""Which awaited calls run natively, and how each one runs.

:func:`plan_call` looks at the call (a QuerySet method, a manager proxy, a
related manager's read, ``await qs``, an ``.a`` load), decides, and returns
the coroutine; :func:`plan_iterator` and :func:`plan_aiter` do the same for
``qs.iterator()`` and ``async for``.  The decision is made when the call is
made; the transaction rules are checked again when the coroutine starts,
since a block may open in between.  Each native call runs Django's own
method once, in a greenlet (:func:`dualcall.native.run.call`).
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

from asgiref.sync import sync_to_async

from ..awaitables import at_caller
from . import pool as pools
from . import thread_path_required
from .pool import get_pool, ready_pool
from .run import Fallback, call, iterate, task_connection

__all__ = ["plan_aiter", "plan_call", "plan_iterator"]

#: Reads: Django's own method, run once in a greenlet.
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
# (class, name) -> whether the name is Django's own method there.
_own: dict[tuple[type, str], bool] = {}
# Where Django defines related managers (their own count()/exists() on some versions).
_RELATED_MODULES = frozenset(
    {"django.db.models.fields.related_descriptors", "django.contrib.contenttypes.fields"}
)


def _setup() -> None:
    global _originals, _iterables, _proxy_code
    from django.db.models import query
    from django.db.models.manager import BaseManager

    originals = {}
    for name in READS | WRITES | {"iterator", "aiterator", "__aiter__"}:
        value = vars(query.QuerySet)[name]
        originals[name] = _unwrap(value)
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


def _unwrap(value: Any) -> Any:
    # dualcall's DualMethod, SyncGuard and patched dunders keep the original
    # as __wrapped__.
    return getattr(value, "__wrapped__", value)


def _defining(cls: type, name: str) -> Any:
    for klass in cls.__mro__:
        if name in vars(klass):
            return _unwrap(vars(klass)[name])
    return None


def _is_django_own(queryset_class: type, name: str) -> bool:
    key = (queryset_class, name)
    own = _own.get(key)
    if own is None:
        if _originals is None:
            _setup()
        assert _originals is not None
        own = _defining(queryset_class, name) is _originals[name]
        _own[key] = own
    return own


def _related_read_is_django_own(manager_class: type, name: str) -> bool | None:
    """For a related manager: ``True`` (Django's own method), ``None`` (the proxy), ``False``."""
    key = (manager_class, name)
    own = _own.get(key)
    if own is None:
        function = _defining(manager_class, name)
        code = getattr(function, "__code__", None)
        if code is not None and code is _proxy_code:
            _own[key] = own = True  # the queryset decides; see below
        else:
            own = getattr(function, "__module__", None) in _RELATED_MODULES
            _own[key] = own
    return own


def _queryset_of(func: Callable[..., Any], args: tuple[Any, ...]) -> tuple[Any, str] | None:
    """The queryset the call works on and the method's name, or ``None`` (thread path)."""
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
        related = "instance" in vars(owner)
        if related:
            # A related manager: reads only, Django's own (its proxy to the
            # queryset, or a method Django's related manager defines).
            if name not in READS or not _related_read_is_django_own(type(owner), name):
                return None
        elif function.__code__ is not _proxy_code:
            return None  # a custom method
        try:
            queryset = owner.get_queryset()
        except Exception:
            # User code (a custom get_queryset(), Django's check of an unsaved
            # instance): the thread path runs it again and raises where
            # Django raises, when the call is awaited.
            return None
        if not isinstance(queryset, QuerySet):
            return None
        if function.__code__ is _proxy_code and not _is_django_own(type(queryset), name):
            return None
        return queryset, name
    return None


_base_get_queryset: Any = None
# manager class -> whether its get_queryset() is Django's own.
_plain_managers: dict[type, bool] = {}


def _plain_manager_read(func: Callable[..., Any]) -> str | None:
    """The alias of a read through a model manager whose queryset is Django's default.

    The hot path (``await Model.objects.get(...)``): a manager whose
    ``get_queryset()`` is Django's own makes a fresh ``_queryset_class(model,
    using=_db, hints=_hints)``, always eligible for a read, on ``manager.db``:
    nothing to build to decide.  ``None``: decide the long way.
    """
    global _base_get_queryset
    from django.db.models.manager import BaseManager

    owner = getattr(func, "__self__", None)
    if not isinstance(owner, BaseManager):
        return None
    function = getattr(func, "__func__", None)
    name = getattr(function, "__name__", None)
    code = getattr(function, "__code__", None)
    if name not in READS or _proxy_code is None or code is not _proxy_code:
        return None
    manager_class = type(owner)
    plain = _plain_managers.get(manager_class)
    if plain is None:
        if _base_get_queryset is None:
            _base_get_queryset = vars(BaseManager)["get_queryset"]
        plain = _defining(manager_class, "get_queryset") is _base_get_queryset
        _plain_managers[manager_class] = plain
    if not plain or "instance" in vars(owner):
        return None
    if not _is_django_own(owner._queryset_class, name):
        return None
    return _routed(lambda: owner.db)


def _alias(queryset: Any, name: str) -> str:
    if name in WRITES:
        from django.db import router

        return str(queryset._db or router.db_for_write(queryset.model, **queryset._hints))
    return str(queryset.db)


def _routed(alias: Callable[[], Any]) -> str | None:
    """The alias ``alias()`` gives (routers run), or ``None`` when their code raised.

    A router runs here on the loop's thread, when the call is made: one that
    reads the database raises ``SynchronousOnlyOperation`` where the thread
    path runs it (and raises anything else when the call is awaited).
    """
    try:
        return str(alias())
    except Exception:
        return None


def _eligible(queryset: Any, name: str) -> bool:
    query = queryset.query
    if query.combinator or query.select_for_update:
        return False
    if name in EVALUATING or name == "contains":
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


def _native_ready(alias: str) -> bool:
    from . import enabled_aliases

    return (
        alias in enabled_aliases()
        and not thread_path_required(alias)
        and not _sessions_set_up_by_receivers(alias)
    )


def _sessions_set_up_by_receivers(alias: str) -> bool:
    """Whether ``connection_created`` receivers set up Django's sessions of *alias*.

    Django sends ``connection_created`` with each new connection (a ``SET
    search_path``, ``set_config()`` for row-level security): the native
    pool's sessions never ran them, so their results could differ.  The
    thread path then.  ``django.contrib.postgres``' own receiver (hstore and
    citext[] loaders) is done on the pool's sessions too (:mod:`.pool`).
    """
    from django.db.backends.signals import connection_created

    if not connection_created.receivers:
        return False
    known = pools.contrib_postgres_receiver()
    return any(receiver is not known for receiver in pools.session_receivers(alias))


def plan_call(
    func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], at: Any = None
) -> Coroutine[Any, Any, Any] | None:
    """Return the native coroutine of this call, or ``None`` for the thread path."""
    if getattr(func, "dualcall_native", None) == "load":
        alias = _instance_alias(args[0])
        if alias is None or not _native_ready(alias):
            return None
        return _run(at_caller(func, at), args, kwargs, alias, None, "load")
    alias = _plain_manager_read(func)
    if alias is not None:
        if not _native_ready(alias):
            return None
        # What the manager's proxy does, without looking the QuerySet's dual
        # method up again in the greenlet: Django's own method on a fresh queryset.
        manager = func.__self__  # type: ignore[attr-defined]
        assert _originals is not None
        method = _originals[func.__name__]

        def read(*args: Any, **kwargs: Any) -> Any:
            return method(manager.get_queryset(), *args, **kwargs)

        return _run(at_caller(read, at), args, kwargs, alias, None, "read")
    target = _queryset_of(func, args)
    if target is None:
        return None
    queryset, name = target
    alias = _routed(lambda: _alias(queryset, name))
    if alias is None or not _native_ready(alias) or not _eligible(queryset, name):
        return None
    return _run(at_caller(func, at), args, kwargs, alias, queryset, name)


def _instance_alias(instance: Any) -> str | None:
    """The database an ``.a`` load of *instance* reads (its own, as Django's routers say)."""
    from django.db import router

    try:
        return str(router.db_for_read(type(instance), instance=instance))
    except Exception:
        return None


async def _run(
    func: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    alias: str,
    queryset: Any,
    name: str,
) -> Any:
    __tracebackhide__ = True
    if ready_pool(alias) is None:
        await get_pool(alias)  # first use on this loop: creates it, learns the server version
    if thread_path_required(alias):
        return await _thread(func, args, kwargs)
    task_connection(alias)
    try:
        if name == "delete":
            return await _delete(queryset, func, args, kwargs)
        return await call(func, args, kwargs, writes=name == "update")
    except Fallback as exc:
        global last_fallback
        last_fallback = exc
        return await _thread(func, args, kwargs)


async def _thread(func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    return await sync_to_async(func, thread_sensitive=True)(*args, **kwargs)


async def _delete(
    queryset: Any, func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    # Django's delete() opens atomic() around its collector, which needs the
    # sync connection: when the collector would delete in one statement,
    # that statement is QuerySet._raw_delete(), run here as Django's
    # delete() would run it (Django 4.2 to 6.1).
    from django.db.models.deletion import Collector

    if args or kwargs:
        raise Fallback("delete() takes no arguments: Django raises")
    del_query = queryset._chain()
    del_query._for_write = True
    del_query.query.select_for_update = False
    del_query.query.select_related = False
    del_query.query.clear_ordering(force=True)
    using = _routed(lambda: del_query.db)
    if using is None:
        raise Fallback("a router raised: the thread path runs it")
    collector = Collector(using=using, origin=queryset)
    if not collector.can_fast_delete(del_query):
        raise Fallback("signals or a cascade in Python: Django's collector deletes")
    count = await call(del_query._raw_delete, (using,), writes=True)
    queryset._result_cache = None
    label = queryset.model._meta.label
    return count, ({label: count} if count else {})


# -- async iteration -------------------------------------------------------------

_aiterator_signature: inspect.Signature | None = None


def _plain_manager_queryset(manager: Any, name: str) -> Any:
    """``manager.get_queryset()`` when *name* on *manager* is Django's proxy; else ``None``.

    Not for related managers (their querysets are filtered by an instance
    and may come from a prefetch cache): those take the thread path.
    """
    from django.core.exceptions import SynchronousOnlyOperation
    from django.db.models import QuerySet
    from django.db.models.manager import BaseManager

    if not isinstance(manager, BaseManager) or "instance" in vars(manager):
        return None
    if _originals is None:
        _setup()
    function = getattr(type(manager), name, None)
    if getattr(function, "__code__", None) is not _proxy_code:
        return None
    try:
        queryset = manager.get_queryset()
    except SynchronousOnlyOperation:
        return None
    return queryset if isinstance(queryset, QuerySet) else None


def plan_iterator(queryset: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """``qs.iterator(...)`` in a coroutine: a native async iterator, or ``None``.

    What Django's ``aiterator(chunk_size=2000)`` does, natively: the
    queryset's iterable class with ``chunked_fetch`` unless
    ``DISABLE_SERVER_SIDE_CURSORS``, fetched *chunk_size* rows at a time from
    a server-side cursor.  With ``prefetch_related()``, invalid arguments, a
    queryset that is not eligible: ``None`` (Django's ``aiterator`` on the
    thread path decides, raises or iterates).
    """
    global _aiterator_signature
    from django.db import connections
    from django.db.models import QuerySet

    from . import enabled_aliases

    if not enabled_aliases():
        return None
    if not isinstance(queryset, QuerySet):
        # ``Model.objects.iterator()``: what the manager's proxy does.
        queryset = _plain_manager_queryset(queryset, "iterator")
        if queryset is None:
            return None
    if not (_is_django_own(type(queryset), "iterator")
            and _is_django_own(type(queryset), "aiterator")):
        return None
    if queryset._prefetch_related_lookups or not _eligible(queryset, "__await__"):
        return None
    if _aiterator_signature is None:
        assert _originals is not None
        _aiterator_signature = inspect.signature(_originals["aiterator"])
    try:
        bound = _aiterator_signature.bind(queryset, *args, **kwargs)
    except TypeError:
        return None
    bound.apply_defaults()
    chunk_size = bound.arguments.get("chunk_size")
    if type(chunk_size) is not int or chunk_size <= 0:
        return None
    alias = _routed(lambda: queryset.db)
    if alias is None or not _native_ready(alias):
        return None
    chunked = not connections.settings[alias].get("DISABLE_SERVER_SIDE_CURSORS")

    def make_iterator() -> Any:
        iterable = queryset._iterable_class(
            queryset, chunked_fetch=chunked, chunk_size=chunk_size
        )
        return iter(iterable)

    return _iterate(alias, make_iterator, chunk_size, lambda: queryset.aiterator(*args, **kwargs))


def plan_aiter(queryset: Any) -> AsyncIterator[Any] | None:
    """``async for x in qs``: a native async iterator, or ``None`` (Django's ``__aiter__``)."""
    from . import enabled_aliases

    if not enabled_aliases():
        return None
    if _originals is None:
        _setup()
    if not _is_django_own(type(queryset), "__aiter__") or not _eligible(queryset, "__await__"):
        return None
    alias = _routed(lambda: queryset.db)
    if alias is None or not _native_ready(alias):
        return None
    return _aiter(alias, queryset)


async def _aiter(alias: str, queryset: Any) -> AsyncIterator[Any]:
    # As Django's QuerySet.__aiter__: fill the cache (with prefetches), then
    # hand out its items.
    await _run(queryset._fetch_all, (), {}, alias, queryset, "__aiter__")
    for item in queryset._result_cache:
        yield item


async def _iterate(
    alias: str,
    make_iterator: Callable[[], Any],
    chunk_size: int,
    thread: Callable[[], AsyncIterator[Any]],
) -> AsyncIterator[Any]:
    if ready_pool(alias) is None:
        await get_pool(alias)
    if thread_path_required(alias):
        async for item in thread():
            yield item
        return
    task_connection(alias)
    iterator = iterate(make_iterator, chunk_size)
    started = False
    try:
        async for item in iterator:
            started = True
            yield item
    except Fallback as exc:
        if started:
            # Items were handed out: nothing to start again from.  Django's
            # own error stands (a sync access in the middle of an iteration).
            raise (exc.__cause__ or exc) from None
        global last_fallback
        last_fallback = exc
        async for item in thread():
            yield item
    finally:
        await iterator.aclose()
