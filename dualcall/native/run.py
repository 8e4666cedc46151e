"""Running one native call: compile with Django, execute on the pool, materialize with Django.

Django's sync code builds and compiles every query and turns the rows into
results; only the driver call is replaced.  Two instance-level hooks on the
task's ``DatabaseWrapper.ops.compiler`` (set and removed within one
synchronous stretch on the loop, so no other task can see them) do it:

* **capture**: Django's own method (``Query.get_count``, ``Query.has_results``,
  ``QuerySet.aggregate``, ``QuerySet.update``, ``QuerySet._raw_delete``, the
  queryset's iterable class) runs until it asks its compiler to execute; the
  compiler is captured there and the method stops, before any SQL ran;
* **replay** (iterables): the iterable class runs again and gets the same,
  already compiled compiler, whose ``execute_sql`` now returns the rows the
  pool fetched; the iterable applies Django's converters, ``from_db()``,
  ``select_related`` caches, known related objects, ``values()`` shapes.

Anything that would reach the connection in sync code on the loop (Django's
``SynchronousOnlyOperation``) before SQL ran makes the call fall back to the
thread path.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.core.exceptions import EmptyResultSet, SynchronousOnlyOperation
from django.db import connections
from django.db.models.sql.constants import CURSOR, MULTI, SINGLE

from . import pool as pools

__all__ = ["Fallback", "aggregate_tail", "capture", "execute", "materialize", "task_connection"]


#: How many statements the native path ran (tests and benchmarks read it).
statements = 0


class Fallback(Exception):
    """Raised before any SQL ran: the call must take the thread path."""


class _Captured(BaseException):
    """A compiler asked to execute: carries it (a BaseException: Django's handlers let it by)."""

    def __init__(self, compiler: Any, result_type: Any) -> None:
        self.compiler = compiler
        compiler.dualcall_result_type = result_type


def _raise_captured(self: Any, result_type: Any = MULTI, *args: Any, **kwargs: Any) -> Any:
    raise _Captured(self, result_type)


_capturing_classes: dict[type, type] = {}


def _capturing_class(cls: type) -> type:
    capturing = _capturing_classes.get(cls)
    if capturing is None:
        capturing = type(cls.__name__, (cls,), {"execute_sql": _raise_captured})
        capturing.__module__ = cls.__module__
        _capturing_classes[cls] = capturing
    return capturing


def task_connection(alias: str) -> Any:
    """The task's ``connections[alias]``, told the server version so it never connects to ask.

    In a coroutine, Django's ``connections`` are local to the task: a task
    that has none yet (each task of a ``gather``) would build a new
    ``DatabaseWrapper`` on first use, which costs more than a query.  Such a
    task is given this thread's shared one (never connected: sync database
    access from a coroutine raises ``SynchronousOnlyOperation`` either way).
    """
    local = connections._connections
    conn = getattr(local, alias, None)
    if conn is None:
        conn = pools.thread_wrapper(alias)
        setattr(local, alias, conn)
    if "pg_version" not in conn.__dict__:
        conn.__dict__["pg_version"] = pools._server_versions[alias]
    return conn


def capture(conn: Any, call: Callable[[], Any]) -> tuple[bool, Any]:
    """Run *call* until its first compiler executes.

    Return ``(False, compiler)`` when a compiler was captured (its SQL not
    run), ``(True, result)`` when *call* returned without one (a cached
    result).  ``SynchronousOnlyOperation`` becomes :class:`Fallback`.
    """
    ops = conn.ops
    real = type(ops).compiler

    def compiler(name: str) -> Any:
        return _capturing_class(real(ops, name))

    ops.compiler = compiler
    try:
        return True, call()
    except _Captured as captured:
        return False, captured.compiler
    except SynchronousOnlyOperation as exc:
        raise Fallback from exc
    finally:
        del ops.compiler


def compile_sql(compiler: Any) -> tuple[str, Any] | None:
    """``compiler.as_sql()``; ``None`` for a query that matches nothing (``EmptyResultSet``)."""
    try:
        sql, params = compiler.as_sql()
    except EmptyResultSet:
        return None
    except SynchronousOnlyOperation as exc:
        raise Fallback from exc
    if not sql:
        return None
    return sql, params


async def execute(alias: str, sql: str, params: Any, kind: str, retry: bool) -> Any:
    """Run *sql* on a pooled connection of the running loop.

    *kind*: ``"all"`` (the rows), ``"one"`` (the first row or ``None``) or
    ``"rowcount"``.  psycopg's errors are raised as Django's
    (``django.db.utils``).  A read (*retry*) that fails because the server
    closed the connection (a killed backend, a restart) runs once more on a
    new connection; the pool discards the broken one.
    """
    import psycopg
    from psycopg_pool import PoolTimeout

    global statements
    conn_t = task_connection(alias)
    pool = await pools.get_pool(alias)
    statements += 1
    logged = conn_t.queries_logged
    attempts = 2 if retry else 1
    for attempt in range(attempts):
        start = pools.now() if logged else 0.0
        broken = False
        try:
            async with pool.connection() as aconn:
                try:
                    with conn_t.wrap_database_errors:
                        async with aconn.cursor() as cursor:
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
                except Exception as exc:
                    if attempt + 1 < attempts and aconn.broken and _is_disconnect(exc):
                        broken = True
                    else:
                        raise
            if broken:
                # The server went away (restart, killed backends): the other
                # idle connections are likely dead too.  Check them all once,
                # then retry on a good or a new connection.
                await pool.check()
                continue
        except PoolTimeout as exc:
            raise pools.timeout_error(alias, exc) from exc
        except psycopg.OperationalError:
            # Connecting failed (the pool's own error): Django's class.
            with conn_t.wrap_database_errors:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def _is_disconnect(exc: BaseException) -> bool:
    from django.db.utils import InterfaceError, OperationalError

    return isinstance(exc, (OperationalError, InterfaceError))


def _log(conn_t: Any, cursor: Any, sql: str, params: Any, start: float) -> None:
    duration = pools.now() - start
    mogrify = getattr(cursor, "mogrify", None)
    try:
        text = mogrify(sql, params) if mogrify is not None else f"{sql} {params!r}"
    except Exception:  # a value the client cannot quote
        text = sql
    conn_t.queries_log.append({"sql": text, "time": f"{duration:.3f}"})


async def materialize(queryset: Any, alias: str) -> list[Any]:
    """Evaluate *queryset* natively with its own iterable class; return the list.

    Does not touch ``queryset._result_cache``: the caller decides.
    """
    conn = task_connection(alias)
    iterable_class = queryset._iterable_class
    done, compiler = capture(conn, lambda: list(iterable_class(queryset)))
    if done:  # an iterable that did not need SQL
        return list(compiler)
    compiled = compile_sql(compiler)
    if compiled is None:
        rows: list[Any] = []
    else:
        rows = await execute(alias, compiled[0], compiled[1], "all", retry=True)
        if compiler.has_extra_select:
            count = compiler.col_count
            rows = [row[0:count] for row in rows]

    def replay_execute_sql(result_type: Any = MULTI, *args: Any, **kwargs: Any) -> Any:
        if result_type != MULTI:
            raise Fallback(f"iterable asked for result type {result_type!r}")
        return [rows]

    compiler.execute_sql = replay_execute_sql
    ops = conn.ops
    ops.compiler = lambda name: (lambda *args, **kwargs: compiler)
    try:
        return list(iterable_class(queryset))
    finally:
        del ops.compiler


async def single(conn: Any, alias: str, call: Callable[[], Any]) -> tuple[bool, Any, Any]:
    """Capture the compiler of *call* and fetch its one row.

    Return ``(True, result, None)`` when *call* finished without SQL, else
    ``(False, row or None, compiler)``.
    """
    done, compiler = capture(conn, call)
    if done:
        return True, compiler, None
    compiled = compile_sql(compiler)
    if compiled is None:
        return False, None, compiler
    row = await execute(alias, compiled[0], compiled[1], "one", retry=True)
    if row is not None:
        row = row[0 : compiler.col_count]
    return False, row, compiler


async def rowcount(conn: Any, alias: str, call: Callable[[], Any]) -> tuple[bool, Any]:
    """Capture the compiler of the write *call* and run its one statement; the row count."""
    done, compiler = capture(conn, call)
    if done:
        return True, compiler
    if getattr(compiler.query, "related_updates", None):
        raise Fallback("an update of parent models' fields runs several statements")
    compiled = compile_sql(compiler)
    if compiled is None:
        return False, 0
    return False, await execute(alias, compiled[0], compiled[1], "rowcount", retry=False)


def aggregate_tail(compiler: Any, row: Any) -> dict[str, Any]:
    """What ``Query.get_aggregation()`` makes of its one row (or of no row)."""
    query = compiler.query
    columns = query.annotation_select.values()
    if row is None:
        values: Any = [expression.empty_result_set_value for expression in columns]
    else:
        converters = compiler.get_converters(columns)
        rows: Any = compiler.apply_converters((row,), converters)
        has_composite = getattr(compiler, "has_composite_fields", None)
        if has_composite is not None and has_composite(columns):
            rows = compiler.composite_fields_to_tuples(rows, columns)
        values = next(iter(rows))
    return dict(zip(query.annotation_select, values, strict=False))


__all__ += ["CURSOR", "SINGLE", "compile_sql", "rowcount", "single"]


async def replayed(conn: Any, alias: str, call: Callable[[], Any]) -> Any:
    """Run the read *call* natively: capture its compiler, fetch, run *call* again with the rows.

    The second run repeats the Python that builds the query (not the
    compilation: it gets the compiled compiler back) and then does exactly
    what Django does with rows: converters, ``from_db()``, caches, the
    method's own checks and exceptions (``DoesNotExist``...).  A second
    query in the second run (a method that was not a single query after all)
    falls back to the thread path; nothing was written.
    """
    done, compiler = capture(conn, call)
    if done:
        return compiler
    result_type = compiler.dualcall_result_type
    if result_type not in (MULTI, SINGLE):
        raise Fallback(f"a read that asks for result type {result_type!r}")
    compiled = compile_sql(compiler)
    if compiled is None:
        rows: Any = [] if result_type == MULTI else None
    elif result_type == MULTI:
        rows = await execute(alias, compiled[0], compiled[1], "all", retry=True)
        if compiler.has_extra_select:
            count = compiler.col_count
            rows = [row[0:count] for row in rows]
    else:
        rows = await execute(alias, compiled[0], compiled[1], "one", retry=True)
        if rows is not None:
            rows = rows[0 : compiler.col_count]

    def replay_execute_sql(result_type_: Any = MULTI, *args: Any, **kwargs: Any) -> Any:
        if result_type_ != result_type:
            raise Fallback(f"the second run asked for result type {result_type_!r}")
        if result_type == MULTI:
            return [rows] if compiled is not None else iter([])
        return rows

    compiler.execute_sql = replay_execute_sql
    ops = conn.ops
    handed: list[bool] = []

    def compiler_factory(name: str) -> Any:
        def make(*args: Any, **kwargs: Any) -> Any:
            if handed:
                raise Fallback("a second query")
            handed.append(True)
            return compiler

        return make

    ops.compiler = compiler_factory
    try:
        return call()
    except SynchronousOnlyOperation as exc:
        raise Fallback from exc
    finally:
        del ops.compiler
