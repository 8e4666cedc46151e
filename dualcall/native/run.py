"""Running a native call: Django's sync code, once, in a greenlet over the async pool.

The idea is SQLAlchemy's asyncio layer (sync ORM code over an async driver),
done for Django's compiler:

* :func:`call` runs Django's own sync method (``QuerySet.get``, the
  iterable class, ``prefetch_related_objects``, a relation's lazy load...)
  **once**, inside a :class:`NativeGreenlet` whose parent is the running
  task, with the task's ``contextvars`` (``gr_context``): Django's
  task-local ``connections`` and dualcall's context variables are the
  task's.
* Every compiler made in that greenlet is a :func:`native compiler
  <native_compiler_class>`: asked to execute, it computes its SQL with
  Django's own ``as_sql()`` and switches to the parent with the coroutine
  :func:`execute` (the only place that talks to the pool); the parent awaits
  it on the event loop and switches back with the rows, or throws the
  exception into the greenlet.  The compiler returns them in the shape
  ``SQLCompiler.execute_sql`` returns for the result type (see
  :meth:`NativeCompiler.execute_sql`), and Django's code carries on: its
  converters, ``from_db()``, caches, ``prefetch_related_objects`` (each of
  its queries native too), its own exceptions.
* The hook is on the ``DatabaseOperations`` of the wrappers a native call
  uses (:func:`task_connection`) and looks at the *current greenlet*: a
  task suspended inside its greenlet changes nothing for another task that
  shares the wrapper, nor for sync code on the loop (Django's guard raises
  as usual), nor for the worker threads of the thread path (their wrappers
  are their own and are never hooked).

Anything that reaches Django's sync connection in the greenlet
(``SynchronousOnlyOperation``: ``connection.cursor()``, ``atomic()``, a
query on a database that is not native) before anything was written raises
:class:`Fallback`: the caller runs the whole call on the thread path.  A
write is only ever made by a call planned as one (``update``, a fast
``delete``); a write request in any other call falls back before it runs.

``connection.execute_wrapper()`` wrappers of the task's connection are
called around each native execution, with Django's signature
``wrapper(execute, sql, params, many, context)``; ``context["cursor"]`` is
a stand-in whose attributes fall back (there is no sync cursor).

Async iteration (``qs.iterator()``, :func:`iterate`): a chunked read
(``chunked_fetch``) inside an iteration opens a server-side cursor
(``DECLARE ... WITH HOLD``, as Django declares its own in autocommit mode,
with client-side binding) on a connection held from the pool for the
iteration; each chunk is ``FETCH``ed when Django's iterable asks for it.
The connection is returned when the iteration ends, breaks, raises or is
cancelled.  While held, it also runs the task's other statements (the body
of the ``async for``, a nested iteration), as the thread path runs them on
the request's one connection: a second connection per iteration could wait
for ever on a pool whose connections are all held that way.
"""

from __future__ import annotations

import asyncio
import contextvars
import itertools
import os
import threading
from collections.abc import AsyncGenerator, Callable, Iterator
from typing import Any

from django.core.exceptions import EmptyResultSet, SynchronousOnlyOperation
from django.db import connections
from django.db.models.sql import compiler as sql_compiler
from django.db.models.sql import constants
from greenlet import GreenletExit, getcurrent, greenlet
from psycopg import OperationalError as PsycopgOperationalError
from psycopg_pool import PoolTimeout

from ..context import set_native_probe
from . import pool as pools

__all__ = [
    "Fallback",
    "NativeGreenlet",
    "call",
    "execute",
    "iterate",
    "task_connection",
]

MULTI = constants.MULTI
SINGLE = constants.SINGLE
CURSOR = constants.CURSOR
NO_RESULTS = constants.NO_RESULTS
# Django 6.1+: update/delete ask for the row count itself (None before).
ROW_COUNT: Any = getattr(constants, "ROW_COUNT", None)
GET_ITERATOR_CHUNK_SIZE = constants.GET_ITERATOR_CHUNK_SIZE

#: How many statements the native path ran (tests and benchmarks read it).
statements = 0


class Fallback(Exception):
    """Raised before anything was written: the call must take the thread path."""


class NativeGreenlet(greenlet):  # type: ignore[misc]
    """A greenlet that runs native calls (one at a time; reused, see :func:`call`).

    Per call: *writes*: whether the call may write (a planned
    ``update``/``delete``); *wrote*: whether it did (then it is never run
    again on the thread path); *session*: the :class:`_Iteration` whose
    server-side cursors chunked reads use, or ``None`` (a chunked read then
    fetches all its rows); *sync_only*: whether Django refused it a
    sync-only operation (:func:`dualcall.native.get_running_loop`), even one
    user code caught.  *running*: a call is under way (when it is not,
    *failed* and *result* say how it ended).
    """

    def __init__(self, parent: Any) -> None:
        super().__init__(_serve, parent)
        self.writes = False
        self.wrote = False
        self.session: Any = None
        self.sync_only = False
        self.running = False
        self.failed = False
        self.result: Any = None


def _serve(func: Any, args: Any, kwargs: Any) -> None:
    """A :class:`NativeGreenlet`'s body: run each call it is given, report, wait for the next."""
    current = getcurrent()
    while True:
        try:
            current.result = func(*args, **kwargs)
            current.failed = False
        except GreenletExit:
            raise  # the greenlet is discarded (garbage collected while suspended)
        except BaseException as exc:
            current.result = exc
            current.failed = True
        current.running = False
        # No reference to the call's function or arguments while idle.
        func = args = kwargs = None
        func, args, kwargs = current.parent.switch(None)


#: Idle native greenlets of this thread, reused: creating one costs a
#: Python data stack (a fresh 16 KB mapping, page-faulted on first use),
#: measured at about 40 us per call after real I/O; a reused one costs
#: two switches.
_idle = threading.local()
#: At most this many idle greenlets are kept per thread.
MAX_IDLE = 64


def _in_native_greenlet() -> bool:
    return type(getcurrent()) is NativeGreenlet


# dualcall's guards treat a native greenlet as a thread without a loop:
# their pre-checks (deferred field, generic foreign key) let the load run,
# and its query is native.
set_native_probe(_in_native_greenlet)


async def call(
    func: Callable[..., Any],
    args: tuple[Any, ...] = (),
    kwargs: dict[str, Any] | None = None,
    *,
    writes: bool = False,
    session: Any = None,
) -> Any:
    """Run ``func(*args, **kwargs)`` once in a :class:`NativeGreenlet`; serve its queries.

    Raise :class:`Fallback` (from Django's ``SynchronousOnlyOperation``) when
    the call reached the sync connection before it wrote anything.
    """
    __tracebackhide__ = True
    parent = getcurrent()
    idle: list[NativeGreenlet] | None = getattr(_idle, "greenlets", None)
    if idle is None:
        idle = _idle.greenlets = []
    child = idle.pop() if idle else None
    if child is None or child.parent is not parent or child.dead:
        child = NativeGreenlet(parent)
    child.writes = writes
    child.wrote = False
    child.sync_only = False
    child.session = session
    child.running = True
    # The task's own context object: contextvars set on either side are seen
    # by the other (Django's task-local connections, dualcall's atomic state).
    child.gr_context = parent.gr_context
    request = child.switch(func, args, kwargs or {})
    while child.running:
        if child.dead:
            # Ended by GreenletExit (raised by the call itself): greenlet
            # hands the exception to the parent as a value.
            return request
        # *request* is a coroutine of execute() (or a cursor's fetch):
        # await it here, on the loop, and hand back its result.
        try:
            value = await request
        except BaseException as exc:
            request = child.throw(exc)
        else:
            request = child.switch(value)
    # The call ended (the greenlet waits for the next one): keep nothing of
    # this task's in it, and give it back.
    result, failed, wrote = child.result, child.failed, child.wrote
    sync_only = child.sync_only
    child.result = child.session = None
    child.gr_context = None
    if len(idle) < MAX_IDLE:
        idle.append(child)
    if not failed:
        if sync_only and not wrote:
            # User code caught Django's refusal and carried on: its result is
            # not the thread path's, where the operation runs.
            refused = SynchronousOnlyOperation(
                "dualcall native path: user code of the call caught Django's "
                "SynchronousOnlyOperation, so the call runs on the thread path (an "
                "iteration that already handed out items cannot, and raises this)."
            )
            raise Fallback(str(refused)) from refused
        return result
    try:
        if not wrote and isinstance(result, SynchronousOnlyOperation):
            raise Fallback(str(result)) from result
        if (
            not wrote
            and isinstance(result, RuntimeError)
            and str(result).startswith(ASYNC_TO_SYNC_REFUSED)
        ):
            # async_to_sync() in user code of the call (a post_init receiver,
            # a from_db() override): asgiref refuses it on the loop's thread,
            # where the greenlet runs; in the thread path's worker thread it
            # works.
            raise Fallback(str(result)) from result
        raise result
    finally:
        del result  # no cycle through the traceback


#: How asgiref's ``AsyncToSync`` refuses to run in a thread with a running
#: loop.  Canary: tests/test_canary_native.py (when it breaks, take the new
#: message's beginning).
ASYNC_TO_SYNC_REFUSED = "You cannot use AsyncToSync in the same thread as an async event loop"


def _refused(message: str) -> SynchronousOnlyOperation:
    """The error of an operation the native greenlet cannot do, remembered by the greenlet.

    Remembered (``sync_only``): should user code catch it, the call still
    takes the thread path (see :func:`call`).
    """
    current = getcurrent()
    if type(current) is NativeGreenlet:
        current.sync_only = True
    return SynchronousOnlyOperation(message)


def _await(coroutine: Any) -> Any:
    """In a native greenlet: have the parent await *coroutine*; its result (or exception)."""
    return getcurrent().parent.switch(coroutine)


# -- the compiler hook ---------------------------------------------------------


class NativeCompiler(sql_compiler.SQLCompiler):  # type: ignore[misc]
    """The base of the native compilers: ``execute_sql`` served by the pool.

    Canary: tests/test_canary_native.py pins what is mirrored here
    (``SQLCompiler.execute_sql``'s signature, result types and shapes,
    ``cursor_iter``).  When it breaks, compare the new ``execute_sql`` with
    this one and mirror the change; until then, remove the alias from
    ``DUALCALL_NATIVE``.
    """

    def execute_sql(
        self,
        result_type: Any = MULTI,
        chunked_fetch: bool = False,
        chunk_size: int = GET_ITERATOR_CHUNK_SIZE,
    ) -> Any:
        current = getcurrent()
        if type(current) is not NativeGreenlet:
            # Made in a native greenlet, executed outside one: Django's own
            # (on the loop its guard raises SynchronousOnlyOperation).
            return super().execute_sql(result_type, chunked_fetch, chunk_size)
        conn = self.connection
        if conn.in_atomic_block or (conn.connection is not None and not conn.autocommit):
            # The connection is in a transaction (user code of the call opened
            # it, Django's guard off): the query must see it; the pool cannot.
            if os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE"):
                return super().execute_sql(result_type, chunked_fetch, chunk_size)
            raise _refused(
                "dualcall native path: a query inside a transaction of the task's connection."
            )
        result_type = result_type or NO_RESULTS
        try:
            sql, params = self.as_sql()
            if not sql:
                raise EmptyResultSet
        except EmptyResultSet:
            if result_type == MULTI:
                return iter([])
            return None
        if result_type == MULTI:
            col_count = self.col_count if self.has_extra_select else None
            if chunked_fetch and current.session is not None:
                held = _run(self, current, sql, params, "cursor")
                current.session.cursors.append(held)
                return _fetch_chunks(held, col_count, chunk_size)
            rows = _run(self, current, sql, params, "all")
            if col_count is not None:
                rows = [row[:col_count] for row in rows]
            if chunked_fetch:
                return iter(_chunked(rows, chunk_size))
            return _chunked(rows, chunk_size)
        if result_type == SINGLE:
            row = _run(self, current, sql, params, "one")
            if row:
                return row[0 : self.col_count]
            return row
        # CURSOR, ROW_COUNT, NO_RESULTS: a statement run for its effect.
        if not current.writes or not isinstance(self, _WRITE_COMPILERS):
            if os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE"):
                # User code's write, Django's guard off: Django's own, on the
                # task's connection (the call is then never run again).
                return super().execute_sql(result_type, chunked_fetch, chunk_size)
            raise _refused(
                f"dualcall native path: a {type(self).__name__} asked for result type "
                f"{result_type!r} in a call that is not a planned write."
            )
        current.wrote = True
        count = _run(self, current, sql, params, "rowcount")
        if result_type == CURSOR:
            return _RowCount(count)
        if result_type == NO_RESULTS:
            return None
        return count  # ROW_COUNT


_WRITE_COMPILERS = (sql_compiler.SQLUpdateCompiler, sql_compiler.SQLDeleteCompiler)


def _chunked(rows: list[Any], size: int) -> list[list[Any]]:
    """Rows as ``list(cursor_iter(...))`` gives them: chunks of *size*, none when empty."""
    if len(rows) <= size:
        return [rows] if rows else []
    return [rows[i : i + size] for i in range(0, len(rows), size)]


def _fetch_chunks(held: Any, col_count: int | None, size: int) -> Iterator[list[Any]]:
    """Django's ``cursor_iter`` over a held server-side cursor: FETCH on demand."""
    while True:
        rows = _await(held.fetch(size))
        if not rows:
            return
        yield rows if col_count is None else [row[:col_count] for row in rows]


class _RowCount:
    """What ``execute_sql(CURSOR)`` of an update or delete is used for (Django < 6.1)."""

    __slots__ = ("rowcount",)

    def __init__(self, rowcount: int) -> None:
        self.rowcount = rowcount

    def close(self) -> None:
        pass

    def __enter__(self) -> _RowCount:
        return self

    def __exit__(self, *exc_info: object) -> None:
        pass


class _NoCursor:
    """``context["cursor"]`` for execute wrappers: the native path has no sync cursor."""

    __slots__ = ()

    def __getattr__(self, name: str) -> Any:
        raise _refused(
            f"dualcall native path: an execute wrapper read cursor.{name}; there is no sync "
            "cursor on the native path (the call runs on the thread path instead)."
        )


_NO_CURSOR = _NoCursor()


def _run(compiler: Any, current: NativeGreenlet, sql: str, params: Any, kind: str) -> Any:
    """Have the parent run *sql*, through the connection's execute wrappers if any."""
    conn = compiler.connection
    alias = conn.alias
    wrappers = conn.execute_wrappers
    if not wrappers:
        return current.parent.switch(execute(alias, sql, params, kind))
    done: list[Any] = []

    def run(sql: str, params: Any, many: bool, context: dict[str, Any]) -> None:
        done.append(current.parent.switch(execute(alias, sql, params, kind)))

    executor: Callable[..., Any] = run
    for wrapper in reversed(wrappers):
        executor = _partial(wrapper, executor)
    executor(sql, params, False, {"connection": conn, "cursor": _NO_CURSOR})
    if not done:
        # A wrapper returned without executing: nothing ran, and what Django
        # makes of that depends on its cursor; the thread path shows it.
        raise _refused(
            "dualcall native path: an execute wrapper did not execute the query."
        )
    return done[-1]


def _partial(wrapper: Callable[..., Any], executor: Callable[..., Any]) -> Callable[..., Any]:
    def wrapped(sql: str, params: Any, many: bool, context: dict[str, Any]) -> Any:
        return wrapper(executor, sql, params, many, context)

    return wrapped


# compiler class -> its native subclass.
_native_classes: dict[type, type] = {}


def native_compiler_class(cls: type) -> type:
    """*cls* with :class:`NativeCompiler`'s ``execute_sql`` as its base's.

    ``class N(cls, NativeCompiler)``: a subclass's own ``execute_sql``
    (``SQLUpdateCompiler``'s) still runs and its ``super()`` reaches the
    native one.  Compilers that do not go through the base ``execute_sql``
    (inserts open ``connection.cursor()`` themselves) fall back.
    """
    native = _native_classes.get(cls)
    if native is None:
        if cls is sql_compiler.SQLCompiler:
            native = NativeCompiler
        else:
            native = type(cls.__name__, (cls, NativeCompiler), {})
            native.__module__ = cls.__module__
        _native_classes[cls] = native
    return native


def _hook(ops: Any) -> None:
    """Make *ops* hand out native compilers inside native greenlets (idempotent)."""
    if "compiler" in vars(ops):
        return
    real = ops.compiler  # the bound method
    get = getcurrent

    def compiler(compiler_name: str) -> Any:
        cls = real(compiler_name)
        if type(get()) is NativeGreenlet:
            return native_compiler_class(cls)
        return cls

    ops.compiler = compiler


def task_connection(alias: str) -> Any:
    """The task's ``connections[alias]``, hooked, told the server version so it never connects.

    In a coroutine, Django's ``connections`` are local to the task: a task
    that has none yet (each task of a ``gather``) would build a new
    ``DatabaseWrapper`` on first use, which costs more than a query.  Such a
    task is given this thread's shared one (never connected: sync database
    access from a coroutine raises ``SynchronousOnlyOperation`` either way).
    """
    local = connections._connections
    conn = getattr(local, alias, None)
    if conn is None and os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE"):
        # With Django's guard off, sync ORM calls of the task may connect the
        # wrapper: the task's own, as Django would make it, never a shared one
        # (one task's transaction would be every task's).
        conn = connections.create_connection(alias)
        setattr(local, alias, conn)
    elif conn is None:
        conn = pools.thread_wrapper(alias)
        if type(conn.execute_wrappers) is list:
            # Shared by unrelated tasks: each task's connection.execute_wrapper()
            # must wrap its own queries only.
            conn.execute_wrappers = _ContextWrappers()
        setattr(local, alias, conn)
    data = conn.__dict__
    if "pg_version" not in data:
        data["pg_version"] = pools._server_versions[alias]
    if "compiler" not in vars(conn.ops):
        _hook(conn.ops)
    return conn


class _ContextWrappers:
    """``execute_wrappers`` of the shared wrapper: a list per context (task).

    ``connection.execute_wrapper()`` appends and pops; a task sees what it
    (or the task that started it, as with Django's own task-local
    connections) installed, never another request's wrappers.
    """

    __slots__ = ("_var",)

    def __init__(self) -> None:
        self._var: contextvars.ContextVar[tuple[Any, ...]] = contextvars.ContextVar(
            "dualcall_execute_wrappers", default=()
        )

    def append(self, wrapper: Any) -> None:
        self._var.set((*self._var.get(), wrapper))

    def pop(self) -> Any:
        wrappers = self._var.get()
        if not wrappers:
            raise IndexError("pop from empty list")
        self._var.set(wrappers[:-1])
        return wrappers[-1]

    def __iter__(self) -> Iterator[Any]:
        return iter(self._var.get())

    def __reversed__(self) -> Iterator[Any]:
        return iter(self._var.get()[::-1])

    def __len__(self) -> int:
        return len(self._var.get())

    def __bool__(self) -> bool:
        return bool(self._var.get())

    def __getitem__(self, index: Any) -> Any:
        return self._var.get()[index]


# -- the pool ------------------------------------------------------------------


async def execute(alias: str, sql: str, params: Any, kind: str) -> Any:
    """Run *sql* on a pooled connection of the running loop.

    *kind*: ``"all"`` (the rows), ``"one"`` (the first row or ``None``),
    ``"rowcount"``, or ``"cursor"``: a :class:`HeldCursor` (a server-side
    cursor declared on a connection held until it is closed).  psycopg's
    errors are raised as Django's (``django.db.utils``).
    """
    global statements
    conn_t = task_connection(alias)
    pool = pools.ready_pool(alias) or await pools.get_pool(alias)
    statements += 1
    logged = conn_t.queries_logged
    held = _held_by_task(alias)
    if kind == "cursor":
        return await _open_cursor(alias, conn_t, pool, sql, params, logged, held)
    if held is not None:
        # The task holds a connection for an iteration (the body of an
        # ``async for`` over ``qs.iterator()``, or a query made while a chunk
        # is read): idle between fetches, it runs this statement too, as the
        # thread path runs both on the request's one connection.  Taking a
        # second one could wait for ever on a pool whose connections are all
        # held that way.
        return await _statement(conn_t, held, sql, params, kind, logged)
    # Nothing is retried: a statement whose connection died while it ran
    # raises Django's OperationalError, as on the thread path (the server may
    # have run it, and a read can have side effects: nextval(), a function).
    # A session the server ended while it sat idle is never handed out
    # (pool.NativePool.getconn checks), so a restart costs no error to the
    # statements that start after it.
    try:
        async with pool.connection() as aconn:
            return await _statement(conn_t, aconn, sql, params, kind, logged)
    except PoolTimeout as exc:
        raise pools.timeout_error(alias, exc) from exc
    except PsycopgOperationalError:
        # Connecting failed (the pool's own error): Django's class.
        with conn_t.wrap_database_errors:
            raise


async def _statement(
    conn_t: Any, aconn: Any, sql: str, params: Any, kind: str, logged: bool
) -> Any:
    """Run *sql* on the connection *aconn*; its result as *kind* says (see :func:`execute`)."""
    with conn_t.wrap_database_errors:
        async with aconn.cursor() as cursor:
            start = pools.now() if logged else 0.0
            await cursor.execute(sql, params)
            if kind == "all":
                result: Any = await cursor.fetchall()
            elif kind == "one":
                result = await cursor.fetchone()
            else:
                result = cursor.rowcount
            if logged:
                _log(conn_t, cursor, sql, params, start)
            return result


_cursor_names = itertools.count(1)


def _server_cursor_class(client_binding: bool) -> Any:
    import psycopg

    if not client_binding:
        return psycopg.AsyncServerCursor
    from psycopg.client_cursor import ClientCursorMixin

    # As Django's ServerSideCursor: the ORM's SQL is not always preparable
    # (Django #20516), so parameters are bound client-side.
    class AsyncClientServerCursor(ClientCursorMixin, psycopg.AsyncServerCursor):  # type: ignore[type-arg]
        pass

    return AsyncClientServerCursor


_cursor_classes: dict[bool, Any] = {}


async def _open_cursor(
    alias: str, conn_t: Any, pool: Any, sql: str, params: Any, logged: bool, shared: Any
) -> HeldCursor:
    client_binding = conn_t.settings_dict["OPTIONS"].get("server_side_binding") is not True
    cursor_class = _cursor_classes.get(client_binding)
    if cursor_class is None:
        cursor_class = _cursor_classes[client_binding] = _server_cursor_class(client_binding)
    if shared is not None:
        # A connection the task already holds (an iteration in the body of
        # another): the cursor is declared there; the connection stays with
        # its owner.
        held = HeldCursor(None, shared, conn_t, alias)
    else:
        try:
            aconn = await pool.getconn()
        except PoolTimeout as exc:
            raise pools.timeout_error(alias, exc) from exc
        except PsycopgOperationalError:
            with conn_t.wrap_database_errors:
                raise
        held = HeldCursor(pool, aconn, conn_t, alias)
        held.previous = _live_held()
        _held.set(held)
    try:
        start = pools.now() if logged else 0.0
        # WITH HOLD: the connection is in autocommit mode, as Django's own
        # server-side cursors there (the result is kept until CLOSE).
        name = f"_dualcall_curs_{next(_cursor_names)}"
        held.cursor = cursor_class(held.aconn, name, withhold=True)
        with conn_t.wrap_database_errors:
            await held.cursor.execute(sql, params)
        if logged:
            _log(conn_t, held.cursor, sql, params, start)
    except BaseException:
        await held.close()
        raise
    return held


class HeldCursor:
    """A server-side cursor on a connection held from the pool until :meth:`close`.

    *pool* ``None``: the connection is another cursor's (only the cursor is
    closed).  While held, the connection also runs the other statements of
    the task that opened it (:func:`_held_by_task`).
    """

    def __init__(self, pool: Any, aconn: Any, conn_t: Any, alias: str) -> None:
        self.pool = pool
        self.aconn: Any = aconn
        self.conn_t = conn_t
        self.alias = alias
        self.cursor: Any = None
        #: The connection the task held before this one (nested iterations).
        self.previous: HeldCursor | None = None

    async def fetch(self, size: int) -> list[Any]:
        """The next *size* rows (``[]`` at the end)."""
        with self.conn_t.wrap_database_errors:
            rows: list[Any] = await self.cursor.fetchmany(size)
        return rows

    async def close(self) -> None:
        """Close the cursor and give the connection back (idempotent; never raises)."""
        aconn, self.aconn = self.aconn, None
        if aconn is None:
            return
        try:
            if self.cursor is not None and not aconn.broken:
                await self.cursor.close()
        except Exception:
            pass
        finally:
            self.cursor = None
            if self.pool is not None:
                # The pool resets or discards a connection left mid-query.
                await self.pool.putconn(aconn)


# The connections the running task holds for its iterations (a chain through
# HeldCursor.previous).  A closed one is skipped: an iteration closed in
# another context (the loop's async generator finalizer) cannot unset it.
_held: contextvars.ContextVar[HeldCursor | None] = contextvars.ContextVar(
    "dualcall_native_held", default=None
)


def _live_held() -> HeldCursor | None:
    """The innermost connection the task still holds (closed ones are left out of the chain)."""
    held = _held.get()
    while held is not None and held.aconn is None:
        held = held.previous
    return held


def _held_by_task(alias: str) -> Any:
    """The idle connection of *alias* this task holds for an iteration, or ``None``."""
    held = _held.get()
    while held is not None:
        aconn = held.aconn
        if aconn is not None and held.alias == alias and held.pool is not None:
            return None if aconn.broken else aconn
        held = held.previous
    return None


def _log(conn_t: Any, cursor: Any, sql: str, params: Any, start: float) -> None:
    duration = pools.now() - start
    mogrify = getattr(cursor, "mogrify", None)
    try:
        text = mogrify(sql, params) if mogrify is not None else f"{sql} {params!r}"
    except Exception:  # a value the client cannot quote
        text = sql
    conn_t.queries_log.append({"sql": text, "time": f"{duration:.3f}"})


# -- async iteration -------------------------------------------------------------


class _Iteration:
    """The server-side cursors one native iteration opened (closed with it)."""

    __slots__ = ("cursors",)

    def __init__(self) -> None:
        self.cursors: list[HeldCursor] = []

    async def close(self) -> None:
        cursors, self.cursors = self.cursors, []
        for held in cursors:
            await held.close()


async def iterate(
    make_iterator: Callable[[], Iterator[Any]], chunk_size: int
) -> AsyncGenerator[Any, None]:
    """Yield what ``make_iterator()`` yields, *chunk_size* items per native greenlet run.

    As Django's ``BaseIterable._async_generator``: the sync iterator is made
    once and each chunk is ``list(islice(iterator, chunk_size))``, here run
    natively; a chunked read opens a server-side cursor held for the
    iteration.  :class:`Fallback` can only come from the first chunk (the
    caller then iterates on the thread path).
    """
    session = _Iteration()
    try:
        # Made on the loop, outside a greenlet, as Django makes it: an
        # iterable whose __iter__ is not a generator (values_list() without
        # annotations) executes here, and raises as Django's aiterator does.
        iterator = make_iterator()

        def next_chunk() -> list[Any]:
            return list(itertools.islice(iterator, chunk_size))

        while True:
            chunk = await call(next_chunk, session=session)
            for item in chunk:
                yield item
            if len(chunk) < chunk_size:
                break
    finally:
        if session.cursors:
            # Shielded: a cancellation arriving now must not keep the
            # connection from going back to the pool.
            await asyncio.shield(session.close())
