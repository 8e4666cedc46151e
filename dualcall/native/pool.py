"""Connections of the native path: one ``psycopg_pool.AsyncConnectionPool`` per loop and alias.

A pool is created lazily, on the event loop, the first time a native call
needs the alias there.  Its connections are made from Django's own
parameters (``DatabaseWrapper.get_connection_params()``: ``OPTIONS``,
Django's psycopg adapters with the connection time zone, ``prepare_threshold``,
``server_side_binding``), then configured as Django configures its own
(``TimeZone``, ``OPTIONS["assume_role"]``, ``OPTIONS["isolation_level"]``) and
left in autocommit mode.

Lifetime: a pool belongs to one event loop.  With its first pool, a loop gets
a guardian task that waits forever; when the loop's runner cancels the tasks
left at the end (``asyncio.run()``, ``asyncio.Runner``, asgiref's
``async_to_sync``, pytest-asyncio and uvicorn all do, before closing the
loop), the guardian closes the loop's pools (which also stops the pool's own
worker tasks: psycopg_pool's workers survive a cancellation that arrives
while they open a connection, and would hang that shutdown).
:func:`close_pools` closes the pools of the running loop at once (ASGI
lifespan shutdown; a loop closed by hand without cancelling its tasks).

Connections are taken by :func:`dualcall.native.run.execute`, the one place
that talks to the pool: for one statement each, or (``kind="cursor"``, an
``async for`` over ``qs.iterator()``) held for the iteration's server-side
cursor and given back when it ends, breaks, raises or is cancelled.

Nothing here ever connects through Django's sync machinery: the server
version a compiler may need is read from the pool's first connection and
given to the wrappers used for compiling (:func:`compile_connection`,
:func:`thread_wrapper`).

The companion setting ``DUALCALL_NATIVE_POOL`` (a dict, or a dict of dicts
keyed by alias) sets ``min_size``, ``max_size``, ``timeout`` (seconds a
call waits for a free connection before :class:`NativePoolTimeout`),
``max_idle``, ``max_lifetime`` and ``max_waiting``.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import threading
import time
import weakref
from typing import Any

from django.conf import settings
from django.db import connections
from django.db.utils import OperationalError

__all__ = [
    "DEFAULT_POOL",
    "NativePoolTimeout",
    "close_pools",
    "compile_connection",
    "get_pool",
    "pool_options",
]

#: Defaults of ``DUALCALL_NATIVE_POOL``: sized for one ASGI server process.
DEFAULT_POOL: dict[str, Any] = {
    # None: as many as max_size, all opened with the pool.  A smaller
    # min_size makes psycopg_pool grow the pool in background tasks; one
    # still connecting when the loop shuts down is left to the garbage
    # collector (its session lingers until then).
    "min_size": None,
    "max_size": 10,
    "timeout": 10.0,
    "max_idle": 600.0,
    "max_lifetime": 3600.0,
    "max_waiting": 0,
}


class NativePoolTimeout(OperationalError):  # type: ignore[misc]
    """No connection of the native pool became free within ``timeout`` seconds."""


def pool_options(alias: str) -> dict[str, Any]:
    """Return the pool options of *alias*: ``DEFAULT_POOL`` updated by ``DUALCALL_NATIVE_POOL``."""
    configured: dict[str, Any] = dict(getattr(settings, "DUALCALL_NATIVE_POOL", None) or {})
    per_alias = configured.get(alias)
    if isinstance(per_alias, dict):
        configured = per_alias
    else:
        configured = {k: v for k, v in configured.items() if not isinstance(v, dict)}
    unknown = set(configured) - set(DEFAULT_POOL)
    if unknown:
        raise ValueError(
            f"DUALCALL_NATIVE_POOL: unknown option(s) {sorted(unknown)}; "
            f"the options are {sorted(DEFAULT_POOL)}."
        )
    return {**DEFAULT_POOL, **configured}


# -- the wrapper used to compile ----------------------------------------------

# alias -> a DatabaseWrapper that is never connected: its ops and features
# compile queries for every loop.  (``connections[alias]`` in a coroutine is
# task-local: one new wrapper per task would cost more than the query.)
_compile_connections: dict[str, Any] = {}
# Per thread: alias -> a never-connected wrapper that tasks of this thread's
# loop share as their ``connections[alias]`` (see run.task_connection).
_thread_wrappers = threading.local()


def thread_wrapper(alias: str) -> Any:
    """This thread's shared, never-connected ``DatabaseWrapper`` for *alias*."""
    wrappers: dict[str, Any] | None = getattr(_thread_wrappers, "wrappers", None)
    if wrappers is None or getattr(_thread_wrappers, "generation", None) != _generation:
        wrappers = _thread_wrappers.wrappers = {}
        _thread_wrappers.generation = _generation
    wrapper = wrappers.get(alias)
    if wrapper is None or wrapper.settings_dict is not connections.settings[alias]:
        wrapper = wrappers[alias] = connections.create_connection(alias)
    return wrapper


# alias -> server version, read from a pool connection.
_server_versions: dict[str, int] = {}


def compile_connection(alias: str) -> Any:
    """Return the never-connected ``DatabaseWrapper`` that compiles native queries of *alias*."""
    wrapper = _compile_connections.get(alias)
    settings_dict = connections.settings[alias]
    if wrapper is None or wrapper.settings_dict is not settings_dict:
        wrapper = connections.create_connection(alias)
        _compile_connections[alias] = wrapper
    if "pg_version" not in wrapper.__dict__ and alias in _server_versions:
        # Django's cached_property would connect (sync) to read it.
        wrapper.__dict__["pg_version"] = _server_versions[alias]
    return wrapper


def server_version_known(alias: str) -> bool:
    """Whether the server version of *alias* was read (a pool connection was made)."""
    return alias in _server_versions


# Bumped when database settings change: pools made before are replaced.
_generation = 0


def reset_compile_connections() -> None:
    """Forget the compile wrappers and retire existing pools (settings changed)."""
    global _generation
    _compile_connections.clear()
    _server_versions.clear()
    _generation += 1


# -- pools ---------------------------------------------------------------------


class _LoopPools:
    """The pools of one event loop, and the async generator that closes them."""

    def __init__(self) -> None:
        self.pools: dict[str, Any] = {}
        self.generation = _generation
        self.creating: dict[str, asyncio.Future[Any]] = {}
        self.guardian: asyncio.Task[None] | None = None

    async def close(self) -> None:
        pools, self.pools = self.pools, {}
        for pool in pools.values():
            await _close_pool(pool)
        if pools:
            # A connection attempt cancelled half-way (psycopg_pool grows the
            # pool in worker tasks, cancelled at loop shutdown) leaves its
            # libpq connection in a reference cycle with the traceback: the
            # cycle collector finishes it now rather than at some later time.
            gc.collect()


async def _close_pool(pool: Any) -> None:
    """Close *pool* and every idle connection, even while the loop cancels its tasks.

    At loop shutdown the pool's worker tasks are cancelled together with
    the guardian, and ``AsyncConnectionPool.close()`` then stops with
    ``CancelledError`` before it closes the idle connections: those are
    taken first (the pool's deque, looked up by feature) and closed here.
    """
    idle = list(getattr(pool, "_pool", ()))
    workers = list(getattr(pool, "_workers", ()))
    with contextlib.suppress(asyncio.CancelledError):
        await pool.close(timeout=1.0)
    # A worker that swallowed the cancellation may still be connecting:
    # wait for each (bounded), so that what it made is closed below.
    pending = [w for w in workers if isinstance(w, asyncio.Future) and not w.done()]
    if pending:
        await asyncio.wait(pending, timeout=2.0)
    # Plus every connection the pool ever configured: one that a worker was
    # still adding when it was cancelled is in no list of the pool's.
    for conn in [*idle, *getattr(pool, "dualcall_connections", ())]:
        if not conn.closed:
            await conn.close()


_loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopPools] = (
    weakref.WeakKeyDictionary()
)


async def _guard(state: _LoopPools) -> None:
    """Wait until cancelled (the loop is shutting down), then close the loop's pools."""
    try:
        await asyncio.get_running_loop().create_future()
    finally:
        await state.close()


def _connection_kwargs(alias: str) -> tuple[dict[str, Any], Any]:
    """Django's connection parameters for *alias*, made async; and the wrapper they came from."""
    import psycopg

    wrapper = compile_connection(alias)
    params = dict(wrapper.get_connection_params())
    params.pop("cursor_factory", None)
    server_side_binding = wrapper.settings_dict["OPTIONS"].get("server_side_binding") is True
    params["cursor_factory"] = (
        psycopg.AsyncCursor if server_side_binding else psycopg.AsyncClientCursor
    )
    params["autocommit"] = True
    return params, wrapper


def _configure(wrapper: Any, made: weakref.WeakSet[Any]) -> Any:
    options = wrapper.settings_dict["OPTIONS"]
    isolation_level = options.get("isolation_level")
    role = options.get("assume_role")
    timezone_name = wrapper.timezone_name

    async def configure(conn: Any) -> None:
        made.add(conn)
        if isolation_level is not None:
            import psycopg

            await conn.set_isolation_level(psycopg.IsolationLevel(isolation_level))
        async with conn.cursor() as cursor:
            if timezone_name and conn.info.parameter_status("TimeZone") != timezone_name:
                await cursor.execute(wrapper.ops.set_time_zone_sql(), [timezone_name])
            if role:
                from psycopg import sql

                await cursor.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(role)))

    return configure


def _tracking_class(made: weakref.WeakSet[Any]) -> Any:
    """An ``AsyncConnection`` subclass that records every connection it makes in *made*."""
    import psycopg

    class Connection(psycopg.AsyncConnection):
        @classmethod
        async def connect(cls, *args: Any, **kwargs: Any) -> Any:
            conn = await super().connect(*args, **kwargs)
            made.add(conn)
            return conn

    return Connection


async def _create_pool(alias: str, state: _LoopPools) -> Any:
    from psycopg_pool import AsyncConnectionPool

    options = pool_options(alias)
    kwargs, wrapper = _connection_kwargs(alias)
    made: weakref.WeakSet[Any] = weakref.WeakSet()
    max_size = options["max_size"]
    min_size = max_size if options["min_size"] is None else min(options["min_size"], max_size)
    pool = AsyncConnectionPool(
        connection_class=_tracking_class(made),
        kwargs=kwargs,
        min_size=min_size,
        max_size=max_size,
        timeout=options["timeout"],
        max_idle=options["max_idle"],
        max_lifetime=options["max_lifetime"],
        max_waiting=options["max_waiting"],
        configure=_configure(wrapper, made),
        name=f"dualcall-native-{alias}",
        open=False,
    )
    pool.dualcall_connections = made  # type: ignore[attr-defined]
    try:
        # Every min_size connection is made now: none is left half-made by
        # a shutdown that cancels the pool's workers.
        await pool.open(wait=True, timeout=options["timeout"])
    except BaseException:
        await _close_pool(pool)
        raise
    if state.guardian is None:
        state.guardian = asyncio.get_running_loop().create_task(
            _guard(state), name="dualcall-native-pools"
        )
    if alias not in _server_versions:
        try:
            async with pool.connection(timeout=options["timeout"]) as conn:
                _server_versions[alias] = conn.info.server_version
        except BaseException:
            await pool.close()
            raise
    compile_connection(alias)
    return pool


def ready_pool(alias: str) -> Any:
    """The pool of *alias* for the running loop if it exists and is current, else ``None``.

    The hot path of every native call: no coroutine (:func:`get_pool` makes it).
    """
    state = _loops.get(asyncio.get_running_loop())
    if state is None or state.generation != _generation:
        return None
    return state.pools.get(alias)


async def get_pool(alias: str) -> Any:
    """Return the pool of *alias* for the running loop, creating it on first use."""
    loop = asyncio.get_running_loop()
    state = _loops.get(loop)
    if state is None:
        state = _loops[loop] = _LoopPools()
    if state.generation != _generation:
        # Settings changed (a test's override_settings): new pools, the old closed.
        old, state.pools = state.pools, {}
        state.generation = _generation
        for stale in old.values():
            await stale.close()
    pool = state.pools.get(alias)
    if pool is not None:
        return pool
    creating = state.creating.get(alias)
    if creating is not None:
        return await asyncio.shield(creating)
    future: asyncio.Future[Any] = loop.create_future()
    state.creating[alias] = future
    try:
        pool = await _create_pool(alias, state)
    except BaseException as exc:
        future.set_exception(exc)
        future.exception()  # retrieved: no "never retrieved" warning
        raise
    finally:
        del state.creating[alias]
    state.pools[alias] = pool
    future.set_result(pool)
    return pool


def loop_pools() -> dict[str, Any]:
    """Return the pools of the running loop, by alias (for tests and introspection)."""
    state = _loops.get(asyncio.get_running_loop())
    return dict(state.pools) if state is not None else {}


async def close_pools() -> None:
    """Close the native pools of the running loop (call it at ASGI lifespan shutdown).

    They are recreated if a native call needs them again.
    """
    state = _loops.get(asyncio.get_running_loop())
    if state is not None:
        await state.close()


def timeout_error(alias: str, exc: BaseException) -> NativePoolTimeout:
    options = pool_options(alias)
    return NativePoolTimeout(
        f"dualcall native path: no connection of the pool for database {alias!r} became free "
        f"within {options['timeout']} s (max_size={options['max_size']}). Raise "
        f"DUALCALL_NATIVE_POOL['max_size'] or ['timeout'], or lower the concurrency. ({exc})"
    )


def now() -> float:
    return time.perf_counter()
