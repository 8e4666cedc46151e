"""Connections of the native path: one ``psycopg_pool.AsyncConnectionPool`` per loop and alias.

A pool is created lazily, on the event loop, the first time a native call
needs the alias there.  Its connections are made from Django's own
parameters (``DatabaseWrapper.get_connection_params()``: ``OPTIONS``,
Django's psycopg adapters with the connection time zone, ``prepare_threshold``,
``server_side_binding``), then configured as Django configures its own
(``TimeZone``, ``OPTIONS["assume_role"]``, ``OPTIONS["isolation_level"]``) and
left in autocommit mode.  Their ``application_name`` is ``dualcall-native``
unless ``OPTIONS`` (or libpq's ``PGAPPNAME``) sets one, so that
``pg_stat_activity`` tells them apart from Django's own sessions.

Lifetime: a pool belongs to one event loop.  With its first pool, a loop gets
a guardian task that waits forever; when the loop's runner cancels the tasks
left at the end (``asyncio.run()``, ``asyncio.Runner``, asgiref's
``async_to_sync``, pytest-asyncio and uvicorn all do, before closing the
loop), the guardian closes the loop's pools (which also stops the pool's own
worker tasks: psycopg_pool's workers survive a cancellation that arrives
while they open a connection, and would hang that shutdown).
:func:`close_pools` closes the pools of the running loop at once (ASGI
lifespan shutdown: :func:`dualcall.native.asgi.lifespan`; a loop closed by
hand without cancelling its tasks).

Health (what Django's ``CONN_HEALTH_CHECKS`` does for its persistent
connections): every connection the pool hands out is checked first, always,
at no cost in round trips: an idle connection in autocommit mode receives
nothing until it sends a query, so a readable socket means the server ended
the session (a restart, ``pg_terminate_backend``, ``idle_session_timeout``,
a proxy that closed it).  Such a connection is closed, the pool makes a new
one, and the call takes the next connection, within its ``timeout``.  So
neither reads nor writes run on a session the server already ended, and
``CONN_HEALTH_CHECKS`` is not consulted: a round trip would catch nothing
more, except a silently broken network path, where it would hang as the
query does.  A statement whose connection dies while it runs (the server
stops mid-query) raises Django's ``OperationalError``, as on the thread
path: nothing is retried (``run.execute``).

While the server is down, calls wait up to ``timeout`` (the pool tries to
connect again about every :data:`RECONNECT` seconds while calls wait, not
with psycopg_pool's backoff of up to minutes), then raise
:class:`NativePoolTimeout` saying the pool could not connect; once the
server is back, calls succeed again with no action.
:class:`NativePoolTimeout` says instead that every connection is in use
when that is the cause (the pool is exhausted).

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
``max_idle``, ``max_lifetime`` and ``max_waiting``.  It is checked at
startup (dualcall's ``AppConfig.ready()``, :func:`check_pool_setting`): an
unknown option or alias, a value of the wrong type, a ``min_size`` above
``max_size`` raise ``ImproperlyConfigured``.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import gc
import os
import select
import sys
import threading
import time
import weakref
from typing import Any

from django.conf import settings
from django.db import connections
from django.db.utils import OperationalError

__all__ = [
    "DEFAULT_APPLICATION_NAME",
    "DEFAULT_POOL",
    "NativePoolTimeout",
    "check_pool_setting",
    "close_pools",
    "compile_connection",
    "get_pool",
    "pool_options",
    "session_ended",
]

#: The ``application_name`` of native pool sessions, unless ``OPTIONS`` or
#: ``PGAPPNAME`` sets one.
DEFAULT_APPLICATION_NAME = "dualcall-native"

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
    configured = check_pool_setting()
    per_alias = configured.get(alias)
    if isinstance(per_alias, dict):
        own = per_alias
    else:
        own = {k: v for k, v in configured.items() if not isinstance(v, dict)}
    options = {**DEFAULT_POOL, **own}
    return options


# option -> (accepts None, smallest value, is an int, what the message says it must be)
_RULES: dict[str, tuple[bool, float, bool, str]] = {
    "min_size": (True, 0, True, "None or an int >= 0"),
    "max_size": (False, 1, True, "an int >= 1"),
    "timeout": (False, 0, False, "a number > 0 (seconds)"),
    "max_idle": (False, 0, False, "a number > 0 (seconds)"),
    "max_lifetime": (False, 0, False, "a number > 0 (seconds)"),
    "max_waiting": (False, 0, True, "an int >= 0 (0: no limit)"),
}


def check_pool_setting() -> dict[str, Any]:
    """Return ``DUALCALL_NATIVE_POOL`` (``{}`` when unset), or raise ``ImproperlyConfigured``.

    Run by dualcall's ``AppConfig.ready()``, so that a mistake fails at
    startup, and again whenever pool options are read (a test's
    ``override_settings``).
    """
    from django.core.exceptions import ImproperlyConfigured

    value = getattr(settings, "DUALCALL_NATIVE_POOL", None)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ImproperlyConfigured(
            "DUALCALL_NATIVE_POOL must be a dict of pool options, or of such dicts by "
            f"database alias, not {value!r}."
        )
    for key, item in value.items():
        if isinstance(item, dict) and key not in DEFAULT_POOL:
            if key not in connections.settings:
                raise ImproperlyConfigured(
                    f"DUALCALL_NATIVE_POOL names the database {key!r}, which is not in DATABASES."
                )
            _check_options(item, f"DUALCALL_NATIVE_POOL[{key!r}]")
    _check_options(
        {k: v for k, v in value.items() if not isinstance(v, dict) or k in DEFAULT_POOL},
        "DUALCALL_NATIVE_POOL",
    )
    return value


def _check_options(options: dict[str, Any], where: str) -> None:
    from django.core.exceptions import ImproperlyConfigured

    for name, option in options.items():
        rule = _RULES.get(name)
        if rule is None:
            raise ImproperlyConfigured(
                f"{where}: unknown option {name!r}; the options are "
                f"{', '.join(sorted(DEFAULT_POOL))}."
            )
        accepts_none, smallest, integer, must = rule
        if option is None and accepts_none:
            continue
        kinds = (int,) if integer else (int, float)
        if (
            isinstance(option, bool)
            or not isinstance(option, kinds)
            or option < smallest
            or (option == smallest and not integer)
        ):
            raise ImproperlyConfigured(f"{where}[{name!r}] must be {must}, not {option!r}.")
    min_size, max_size = options.get("min_size"), options.get("max_size", DEFAULT_POOL["max_size"])
    if min_size is not None and min_size > max_size:
        raise ImproperlyConfigured(
            f"{where}: min_size ({min_size}) is larger than max_size ({max_size})."
        )


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
    made = getattr(pool, "dualcall_made", None)
    for conn in [*idle, *(made.connections if made is not None else ())]:
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
    if "application_name" not in params and "PGAPPNAME" not in os.environ:
        # Sessions of the native pools are told apart in pg_stat_activity.
        params["application_name"] = DEFAULT_APPLICATION_NAME
    return params, wrapper


def _configure(wrapper: Any, made: _Made) -> Any:
    options = wrapper.settings_dict["OPTIONS"]
    isolation_level = options.get("isolation_level")
    role = options.get("assume_role")
    timezone_name = wrapper.timezone_name

    async def configure(conn: Any) -> None:
        made.connections.add(conn)
        if isolation_level is not None:
            import psycopg

            await conn.set_isolation_level(psycopg.IsolationLevel(isolation_level))
        async with conn.cursor() as cursor:
            if timezone_name and conn.info.parameter_status("TimeZone") != timezone_name:
                await cursor.execute(wrapper.ops.set_time_zone_sql(), [timezone_name])
            if role:
                from psycopg import sql

                await cursor.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(role)))
            if contrib_postgres_receiver() in session_receivers(wrapper.alias):
                await _register_postgres_types(conn, cursor)

    return configure


# -- connection_created ----------------------------------------------------------


def session_receivers(alias: str) -> list[Any]:
    """The ``connection_created`` receivers Django's sessions of *alias* run when made.

    Canary: tests/test_canary_native.py (``Signal._live_receivers``: a list
    before Django 5.0, then a pair of lists, sync and async).
    """
    from django.db.backends.signals import connection_created

    if not connection_created.receivers:
        return []
    live = connection_created._live_receivers(type(thread_wrapper(alias)))
    if isinstance(live, tuple):
        return [*live[0], *live[1]]
    return list(live)


def contrib_postgres_receiver() -> Any:
    """``django.contrib.postgres``' receiver (hstore and citext[] loaders), if imported."""
    module = sys.modules.get("django.contrib.postgres.signals")
    return getattr(module, "register_type_handlers", None)


async def _register_postgres_types(conn: Any, cursor: Any) -> None:
    """What ``django.contrib.postgres.signals.register_type_handlers`` does, on *conn*.

    Canary: tests/test_canary_native.py (when Django's receiver changes,
    mirror it here).
    """
    from psycopg.types import TypeInfo, hstore

    for name in ("hstore", "citext"):
        await cursor.execute("SELECT oid, typarray FROM pg_type WHERE typname = %s", (name,))
        for oid, array_oid in await cursor.fetchall():
            if name == "hstore":
                hstore.register_hstore(TypeInfo("hstore", oid, array_oid), conn)
            else:
                TypeInfo("citext", 0, array_oid).register(conn)


class _Made:
    """What a pool's connection class saw: every connection made, the last failure to connect."""

    def __init__(self) -> None:
        self.connections: weakref.WeakSet[Any] = weakref.WeakSet()
        self.error: BaseException | None = None
        self.failed_at = -float("inf")  # time.monotonic() of the last failure
        self.made_at = -float("inf")  # time.monotonic() of the last success

    def failed_within(self, seconds: float) -> bool:
        """Whether an attempt to connect failed in the last *seconds*."""
        return time.monotonic() - self.failed_at <= seconds

    def cannot_connect(self, seconds: float) -> bool:
        """Whether the last attempt to connect failed, within the last *seconds*."""
        return self.failed_at > self.made_at and self.failed_within(seconds)


def _tracking_class(made: _Made) -> Any:
    """An ``AsyncConnection`` subclass that records what it makes (and fails to) in *made*."""
    import psycopg

    class Connection(psycopg.AsyncConnection):
        @classmethod
        async def connect(cls, *args: Any, **kwargs: Any) -> Any:
            try:
                conn = await super().connect(*args, **kwargs)
            except BaseException as exc:
                if isinstance(exc, Exception):
                    made.error, made.failed_at = exc, time.monotonic()
                # The traceback holds the half-made libpq connection (in
                # psycopg's connect generator): whoever keeps the exception
                # (psycopg_pool logs it: a handler that stores records, as
                # pytest's does) would keep that session open, typically
                # when the loop's shutdown cancels a worker that connects.
                # Without its traceback the connection is finished at once.
                raise exc.with_traceback(None)  # noqa: B904 (the same exception)
            made.connections.add(conn)
            made.made_at = time.monotonic()
            return conn

    return Connection


def session_ended(conn: Any) -> bool:
    """Whether the server ended the session of the idle connection *conn*.

    An idle connection in autocommit mode receives nothing until it sends a
    query: if its socket is readable, the server sent the ``FATAL`` message
    of a terminated session (a restart, ``pg_terminate_backend``,
    ``idle_session_timeout``) or closed the socket.  A poll with a zero
    timeout: no round trip.
    """
    if conn.closed or conn.broken:
        return True
    try:
        fd = conn.fileno()
    except Exception:
        return True
    poll = getattr(select, "poll", None)
    if poll is not None:  # any descriptor number (select() is limited to FD_SETSIZE)
        poller = poll()
        poller.register(fd, select.POLLIN)
        return bool(poller.poll(0))
    readable, _, _ = select.select([fd], [], [], 0)
    return bool(readable)


_pool_class: Any = None

#: Seconds psycopg_pool keeps trying to reconnect a connection slot (its
#: ``reconnect_timeout``, 300 by default, with a backoff doubling from 1 s:
#: a server back after a minute would be found only tens of seconds later).
#: Past it the slot is given up, and a call waiting for a connection starts
#: a new attempt at once (``NativePool.getconn``).
RECONNECT = 1.0


def _native_pool_class() -> Any:
    """``AsyncConnectionPool``, checking each connection it hands out with :func:`session_ended`.

    Done in ``getconn()`` (public API, which ``connection()`` calls) rather
    than with the pool's ``check`` callback: a failed check makes
    psycopg_pool sleep (a backoff of 1 s and more) before the next attempt,
    and after a server restart every idle connection fails it.  Here a dead
    connection is closed and given back (the pool replaces it), and the next
    one is taken at once, within the same deadline.
    """
    global _pool_class
    if _pool_class is None:
        from psycopg_pool import AsyncConnectionPool, PoolTimeout

        class NativePool(AsyncConnectionPool):
            dualcall_made: _Made

            async def getconn(self, timeout: float | None = None) -> Any:
                if timeout is None:
                    timeout = self.timeout
                deadline = time.monotonic() + timeout
                remaining = timeout
                while True:
                    # Connecting failed lately (the server is or was down)?
                    reconnecting = self.dualcall_made.failed_within(timeout)
                    try:
                        conn = await super().getconn(
                            timeout=min(remaining, RECONNECT) if reconnecting else remaining
                        )
                    except PoolTimeout:
                        remaining = deadline - time.monotonic()
                        if not reconnecting or remaining <= 0:
                            raise
                        # Connecting fails (the server is down): the pool gave
                        # up the slots whose reconnection lasted RECONNECT s;
                        # check() makes it try again now, so a server that is
                        # back is found within about RECONNECT s.
                        await self.check()
                        continue
                    if not session_ended(conn):
                        return conn
                    try:
                        await conn.close()
                    finally:
                        await self.putconn(conn)  # closed: the pool makes a new one
                    remaining = deadline - time.monotonic()

        _pool_class = NativePool
    return _pool_class


class _MostRecentFirst(collections.deque):  # type: ignore[type-arg]
    """The idle connections of a native pool, handed out most recently used first.

    psycopg_pool keeps them in a deque, returns them with ``append()`` and
    takes them with ``popleft()``: in turn, so a process doing one query at
    a time goes through every connection (and every server process) of the
    pool, their caches cold each time.  Taken from the same end they are
    returned to, the connection just used (and its server process) is used
    again: measured at about 70 us less per awaited ``get`` at low
    concurrency.  Which idle connection is taken changes nothing else (each
    is checked before use, expired ones are closed when returned).

    Canary: tests/test_canary_native.py pins psycopg_pool's ``_pool`` deque
    and its ``popleft()``/``append()``; when it breaks, remove this class
    (the pool then hands connections out in turn, which is only slower).
    """

    def popleft(self) -> Any:
        return self.pop()


async def _create_pool(alias: str, state: _LoopPools) -> Any:
    from psycopg_pool import PoolTimeout

    options = pool_options(alias)
    kwargs, wrapper = _connection_kwargs(alias)
    made = _Made()
    max_size = options["max_size"]
    min_size = max_size if options["min_size"] is None else options["min_size"]
    pool = _native_pool_class()(
        connection_class=_tracking_class(made),
        kwargs=kwargs,
        min_size=min_size,
        max_size=max_size,
        timeout=options["timeout"],
        max_idle=options["max_idle"],
        max_lifetime=options["max_lifetime"],
        max_waiting=options["max_waiting"],
        reconnect_timeout=RECONNECT,
        configure=_configure(wrapper, made),
        name=f"dualcall-native-{alias}",
        open=False,
    )
    pool.dualcall_made = made
    if type(getattr(pool, "_pool", None)) is collections.deque and not pool._pool:
        # The most recently used idle connection first (see _MostRecentFirst).
        pool._pool = _MostRecentFirst()
    try:
        # Every min_size connection is made now: none is left half-made by
        # a shutdown that cancels the pool's workers.
        await pool.open(wait=True, timeout=options["timeout"])
    except BaseException as exc:
        await _close_pool(pool)
        if isinstance(exc, PoolTimeout):
            raise timeout_error(alias, exc, pool) from exc
        raise
    if state.guardian is None:
        state.guardian = asyncio.get_running_loop().create_task(
            _guard(state), name="dualcall-native-pools"
        )
    if alias not in _server_versions:
        try:
            async with pool.connection(timeout=options["timeout"]) as conn:
                _server_versions[alias] = conn.info.server_version
        except BaseException as exc:
            await _close_pool(pool)
            if isinstance(exc, PoolTimeout):
                raise timeout_error(alias, exc, pool) from exc
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


def timeout_error(alias: str, exc: BaseException, pool: Any = None) -> NativePoolTimeout:
    """The :class:`NativePoolTimeout` for a call on *alias* that got no connection in time.

    Two causes, two messages: every connection of the pool is in use (the
    fix is the setting), or the pool cannot connect (the server is down or
    refuses: the last attempt to connect failed, within the call's
    ``timeout`` and the pool's wait between attempts).
    """
    if pool is None:
        state = _loops.get(asyncio.get_running_loop())
        pool = state.pools.get(alias) if state is not None else None
    options = pool_options(alias)
    made: _Made | None = getattr(pool, "dualcall_made", None)
    error = made.error if made is not None else None
    # The last attempt failed, during this call's wait or shortly before it
    # (psycopg_pool waits between attempts; RECONNECT bounds that wait).
    window = options["timeout"] + 2 * RECONNECT
    if made is not None and error is not None and made.cannot_connect(window):
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        return NativePoolTimeout(
            f"dualcall native path: no connection to database {alias!r} could be made within "
            f"{options['timeout']} s (max_size={options['max_size']}): {reason}. The pool "
            "keeps reconnecting; check that the server is up."
        )
    return NativePoolTimeout(
        f"dualcall native path: no connection of the pool for database {alias!r} became free "
        f"within {options['timeout']} s: all its connections (max_size={options['max_size']}) "
        "are in use. Raise DUALCALL_NATIVE_POOL['max_size'] or ['timeout'], or run fewer "
        "queries at once."
    )


def now() -> float:
    return time.perf_counter()
