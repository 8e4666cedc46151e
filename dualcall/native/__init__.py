"""The native PostgreSQL path: awaited reads run on a psycopg async pool, on the event loop.

Enabled per database alias by the setting ``DUALCALL_NATIVE`` (a list of
aliases; empty by default).  :func:`plan` is the entry point for every
awaitable :func:`dualcall.executor.run_sync` makes (:func:`plan_iterator`
for ``qs.iterator()`` in a coroutine, :func:`plan_aiter` for ``async for``):
it returns a coroutine (or async iterator) that runs the call natively, or
``None`` for the thread path.

How (:mod:`dualcall.native.run`): Django's own sync method runs **once**, in
a greenlet on the event loop's thread; each query it makes is compiled by
Django (``as_sql()``) and awaited on the pool, and Django does the rest
(converters, ``from_db()``, caches, prefetches, its exceptions).

What runs natively (the method must be Django's own, not a user override):

===============================  ============================================
call                             natively when
===============================  ============================================
``await qs``, ``async for x in   the iterable class is Django's (models,
qs``                             ``values()``, ``values_list()``, ``flat``,
                                 ``named``); with ``prefetch_related()``
                                 (each prefetch query native: ``Prefetch``
                                 objects, ``to_attr``, nested lookups,
                                 generic foreign keys)
``get first last earliest``      same
``latest in_bulk contains``
``count exists aggregate``       always (Django's own methods)
``explain``
``qs.iterator(chunk_size=...)``  same, without ``prefetch_related()``;
in a coroutine                   fetched from a server-side cursor (below)
related-manager reads            reverse FK, M2M (both directions), generic
(``q.choice_set.count()``...)    relations: the read methods above, Django's
                                 own (the manager's proxy, or the method
                                 Django's related manager defines); a
                                 prefetched relation is read from its cache
                                 exactly as Django reads it
``await instance.a.<name>``      every kind of relation and deferred field,
                                 and the peers' batch (:mod:`dualcall.peers`)
``update``                       the model has no parents (multi-table
                                 inheritance updates several tables)
``delete``                       Django would delete in one statement: no
                                 signal receivers, no cascade in Python
                                 (``Collector.can_fast_delete``)
===============================  ============================================

``qs.iterator()``: the iterable class runs with ``chunked_fetch`` unless
``DISABLE_SERVER_SIDE_CURSORS``, as Django's ``aiterator()``; its query is
declared as a server-side cursor (``WITH HOLD``, client-side binding, as
Django's own in autocommit mode) on a connection held from the pool for
the iteration, and each chunk is fetched when the iteration needs it.  The
connection goes back to the pool when the iteration ends, breaks (the loop
closes the async generator), raises or is cancelled.  With
``DISABLE_SERVER_SIDE_CURSORS``: one query, its rows fetched at once.

Fallback: anything that reaches Django's sync connection inside the greenlet
(``SynchronousOnlyOperation``: a query on a database that is not native,
``atomic()``, an execute wrapper that reads the cursor...) before anything
was written makes the whole call run again on the thread path
(``methods.last_fallback`` says why).  A call that wrote is never run
again: the error stands.  An iteration falls back only before its first
item.

Never natively (the thread path decides, sees and does exactly what it
always did):

* inside ``dualcall.atomic`` (any task whose context is in a block);
* when the event loop's thread has a connection for the alias inside an
  atomic block, or outside autocommit (a test transaction: pytest-django's
  ``django_db`` under pytest-asyncio, with or without
  :mod:`dualcall.testing`);
* when the loop was started by ``async_to_sync`` from a sync thread (Django's
  ``TestCase`` and ``TransactionTestCase`` run ``async def`` tests that
  way; sync code inside ``transaction.atomic()`` calling ``async_to_sync``):
  thread-sensitive calls go to that thread, whose transaction state cannot
  be read from the loop;
* when ``connection_created`` has receivers for the alias's backend: they
  set up Django's sessions (``SET search_path``, ``set_config()``), never
  the pool's (``django.contrib.postgres``' own, hstore and ``citext[]``
  loaders, is mirrored on the pool's sessions);
* ``select_for_update()``, ``union()``/``intersection()``/``difference()``,
  raw querysets, custom iterable classes, user overrides of the method,
  ``iterator()`` after ``prefetch_related()``, related-manager writes and
  every other write that runs user code.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

from django.core.exceptions import ImproperlyConfigured

from .pool import NativePoolTimeout, close_pools

__all__ = [
    "NativePoolTimeout",
    "close_pools",
    "enabled_aliases",
    "plan",
    "plan_aiter",
    "plan_iterator",
    "thread_path_required",
]

_enabled: frozenset[str] | None = None


def enabled_aliases() -> frozenset[str]:
    """The aliases of ``DUALCALL_NATIVE``, checked (PostgreSQL, psycopg 3, psycopg_pool)."""
    global _enabled
    if _enabled is None:
        from django.conf import settings

        if not settings.configured:
            return frozenset()
        value = getattr(settings, "DUALCALL_NATIVE", None) or ()
        # A string would be read as a list of one-letter aliases.
        if not isinstance(value, (list, tuple)) or not all(isinstance(a, str) for a in value):
            raise ImproperlyConfigured(
                f"DUALCALL_NATIVE must be a list of database aliases, not {value!r}."
            )
        aliases = list(value)
        if aliases:
            _check(aliases)
        _enabled = frozenset(aliases)
    return _enabled


def _check(aliases: list[str]) -> None:
    from django.db import connections

    for alias in aliases:
        if alias not in connections.settings:
            raise ImproperlyConfigured(
                f"DUALCALL_NATIVE names the database {alias!r}, which is not in DATABASES."
            )
        engine = connections.settings[alias]["ENGINE"]
        if engine != "django.db.backends.postgresql":
            raise ImproperlyConfigured(
                f"DUALCALL_NATIVE: the database {alias!r} uses {engine!r}; the native path "
                "needs django.db.backends.postgresql."
            )
    try:
        import greenlet  # noqa: F401
        import psycopg  # noqa: F401
        import psycopg_pool  # noqa: F401
    except ImportError as exc:
        raise ImproperlyConfigured(
            "DUALCALL_NATIVE needs psycopg 3, psycopg_pool and greenlet: pip install "
            f"'dualcall[native]' ({exc})."
        ) from exc


def _settings_changed(*, setting: str, **kwargs: Any) -> None:
    global _enabled
    if setting == "DUALCALL_NATIVE":
        _enabled = None
    elif setting in ("DATABASES", "TIME_ZONE", "USE_TZ", "DUALCALL_NATIVE_POOL"):
        _enabled = None
        from .pool import reset_compile_connections

        reset_compile_connections()


def _connect_signals() -> None:
    from django.core.signals import setting_changed

    setting_changed.connect(_settings_changed, dispatch_uid="dualcall.native")


_connect_signals()


def thread_path_required(alias: str) -> bool:
    """Whether a call on *alias* must take the thread path to see the right transaction."""
    if _checks is None:
        _load_checks()
    entries, executors, loop_thread_in_atomic_block, local = _checks  # type: ignore[misc]
    if entries.get():
        return True  # inside dualcall.atomic
    if getattr(executors, "current", None) is not None:
        return True  # thread-sensitive calls go to a sync thread we cannot inspect
    if loop_thread_in_atomic_block(alias):
        return True  # the loop thread's sync connection: a test transaction
    # The task's own connection object, if it has one (not created here: in a
    # coroutine that would build a DatabaseWrapper per task).
    conn = getattr(local, alias, None)
    if conn is None:
        return False
    return bool(conn.in_atomic_block or (conn.connection is not None and not conn.autocommit))


# What thread_path_required() reads, looked up once (it runs twice per call).
_checks: tuple[Any, Any, Any, Any] | None = None


def _load_checks() -> None:
    global _checks
    from asgiref.sync import AsyncToSync
    from django.db import connections

    from ..transaction import _entries, _loop_thread_in_atomic_block

    _checks = (
        _entries,
        AsyncToSync.executors,
        _loop_thread_in_atomic_block,
        connections._connections,
    )


try:
    from greenlet import getcurrent as _getcurrent
except ImportError:  # the native extra is not installed: no native greenlet
    _getcurrent = None


def get_running_loop() -> Any:
    """``django.utils.asyncio.get_running_loop`` while dualcall is installed (``async_unsafe``).

    asyncio's own, which also tells a native greenlet (:mod:`.run`) that
    Django refused it a sync-only operation: should user code of the call
    catch that ``SynchronousOnlyOperation`` (a best-effort ``try``), the call
    still takes the thread path, where the operation runs.  With
    ``DJANGO_ALLOW_ASYNC_UNSAFE``, Django runs the operation instead: the
    greenlet counts it as a write (never run again).  Canary:
    tests/test_canary_native.py (``async_unsafe`` looks the name up in its
    module at each call; when that changes, remove this from
    ``dualcall.targets.additions``).
    """
    loop = asyncio.get_running_loop()
    if _getcurrent is not None:
        current = _getcurrent()
        if getattr(current, "sync_only", None) is not None:  # a native greenlet
            if os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE"):
                # The guard is off: Django's sync connection is used, and may
                # write.  The call is never run again on the thread path.
                current.wrote = True
            else:
                current.sync_only = True
    return loop


def plan(
    func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], at: Any = None
) -> Coroutine[Any, Any, Any] | None:
    """A coroutine running ``func(*args, **kwargs)`` natively, or ``None`` for the thread path."""
    if not enabled_aliases():
        return None
    from .methods import plan_call

    return plan_call(func, args, kwargs, at)


def plan_iterator(
    queryset: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> AsyncIterator[Any] | None:
    """``queryset.iterator(*args, **kwargs)`` in a coroutine, natively; or ``None``."""
    if not enabled_aliases():
        return None
    from .methods import plan_iterator as plan

    return plan(queryset, args, kwargs)  # type: ignore[no-any-return]


def plan_aiter(queryset: Any) -> AsyncIterator[Any] | None:
    """``async for item in queryset``, natively; or ``None`` (Django's ``__aiter__``)."""
    if not enabled_aliases():
        return None
    from .methods import plan_aiter as plan

    return plan(queryset)
