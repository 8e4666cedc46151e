"""The native PostgreSQL path: awaited reads run on a psycopg async pool, on the event loop.

Enabled per database alias by the setting ``DUALCALL_NATIVE`` (a list of
aliases; empty by default).  :func:`plan` is the one entry point, called by
:func:`dualcall.executor.run_sync` for every awaitable it makes: it returns a
coroutine that runs the call natively, or ``None`` for the thread path.

What runs natively (on a QuerySet, or on a model's manager whose method is
Django's proxy; not on related managers):

============================  ===============================================
call                          natively when
============================  ===============================================
``await qs``                  the iterable class is Django's (models,
                              ``values()``, ``values_list()``, ``flat``,
                              ``named``) and there is no
                              ``prefetch_related()``
``get first last earliest``   same, and Django's own method (not a
``latest in_bulk contains``   QuerySet subclass override)
``count exists aggregate``    always (on Django's own methods)
``explain``
``update``                    the model has no parents (multi-table
                              inheritance updates several tables)
``delete``                    Django would delete in one statement: no
                              signal receivers, no cascade in Python
                              (``Collector.can_fast_delete``)
============================  ===============================================

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
* ``select_for_update()``, ``union()``/``intersection()``/``difference()``,
  ``prefetch_related()``, raw querysets, custom iterable classes, user
  overrides of the method.
"""

from __future__ import annotations

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
        aliases = list(getattr(settings, "DUALCALL_NATIVE", None) or ())
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

    _checks = (_entries, AsyncToSync.executors, _loop_thread_in_atomic_block, connections._connections)


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
