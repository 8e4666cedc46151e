"""Canaries of the native path: the Django (and greenlet) internals dualcall.native.run mirrors.

dualcall.native.run.NativeCompiler.execute_sql re-implements the base
``SQLCompiler.execute_sql`` over the async pool, returning what Django's
returns for each result type.  Each test pins one fact of it on the running
Django version.  When one fails after an upgrade: compare Django's new code
with NativeCompiler.execute_sql (or the function named in the test) and
mirror the change; until then users can leave the alias out of
``DUALCALL_NATIVE`` (everything takes the thread path, which runs Django's
own code).
"""

import contextvars
import inspect
import re

import pytest
from django.db.backends import utils as backend_utils
from django.db.models import QuerySet, query
from django.db.models.sql import compiler, constants

from dualcall.native import run


def _source(function):
    return inspect.getsource(function)


def test_execute_sql_signature_and_result_types():
    # NativeCompiler.execute_sql takes the same arguments, and handles every
    # result type Django has: MULTI, SINGLE, CURSOR, NO_RESULTS and (6.1+)
    # ROW_COUNT.  A new result type must be handled there.
    signature = inspect.signature(compiler.SQLCompiler.execute_sql)
    assert list(signature.parameters) == ["self", "result_type", "chunked_fetch", "chunk_size"]
    assert signature.parameters["result_type"].default == constants.MULTI
    assert signature.parameters["chunked_fetch"].default is False
    assert signature.parameters["chunk_size"].default == constants.GET_ITERATOR_CHUNK_SIZE
    handled = {"MULTI", "SINGLE", "CURSOR", "NO_RESULTS", "ROW_COUNT"}
    compared = set(re.findall(r"result_type == (\w+)", _source(compiler.SQLCompiler.execute_sql)))
    assert compared <= handled, compared - handled
    assert getattr(constants, "ROW_COUNT", None) == run.ROW_COUNT
    assert set(inspect.signature(run.NativeCompiler.execute_sql).parameters) == set(
        signature.parameters
    )


def test_execute_sql_shapes():
    # The steps NativeCompiler.execute_sql mirrors, in Django's words:
    # EmptyResultSet (or no SQL) gives iter([]) for MULTI and None otherwise;
    # SINGLE slices the row to col_count; MULTI is cursor_iter() chunks,
    # trimmed to col_count only with extra selects, a list unless chunked.
    source = _source(compiler.SQLCompiler.execute_sql)
    for fragment in [
        "result_type = result_type or NO_RESULTS",
        "sql, params = self.as_sql()",
        "if not sql:",
        "raise EmptyResultSet",
        "return iter([])",
        "return val[0 : self.col_count]",
        "cursor_iter(",
        "self.col_count if self.has_extra_select else None",
        "if not chunked_fetch or not self.connection.features.can_use_chunked_reads:",
        "return list(result)",
        "self.connection.chunked_cursor()",
    ]:
        assert fragment in source, fragment


def test_cursor_iter_fetches_chunks_until_the_sentinel():
    # dualcall.native.run._fetch_chunks and _chunked give the chunks as
    # cursor_iter does: fetchmany(itersize) until the empty sentinel.
    source = _source(compiler.cursor_iter)
    assert "cursor.fetchmany(itersize)" in source
    assert "yield rows if col_count is None else [r[:col_count] for r in rows]" in source
    assert inspect.signature(compiler.cursor_iter).parameters.keys() == {
        "cursor", "sentinel", "col_count", "itersize"
    }


def test_write_compilers_reach_the_base_execute_sql():
    # native_compiler_class() puts NativeCompiler under each compiler class:
    # an update's own execute_sql must reach the base one through super(),
    # and a delete must have none of its own.  Inserts open
    # connection.cursor() themselves (they fall back: never planned).
    assert "super().execute_sql(result_type)" in _source(
        compiler.SQLUpdateCompiler.execute_sql
    )
    assert "execute_sql" not in vars(compiler.SQLDeleteCompiler)
    native = run.native_compiler_class(compiler.SQLUpdateCompiler)
    assert native.__mro__[1:3] == (compiler.SQLUpdateCompiler, run.NativeCompiler)


def test_compilers_come_from_ops_compiler():
    # The hook (run._hook) replaces DatabaseOperations.compiler on the
    # task's wrapper: every query finds its compiler class there.
    from django.db.models.sql.query import Query

    source = _source(Query.get_compiler)
    assert "connection.ops.compiler(self.compiler)(" in source


def test_execute_wrappers_signature():
    # run._run calls connection.execute_wrappers as Django's CursorWrapper
    # does: innermost last, wrapper(execute, sql, params, many, context),
    # context with "connection" and "cursor".
    source = _source(backend_utils.CursorWrapper._execute_with_wrappers)
    assert 'context = {"connection": self.db, "cursor": self}' in source
    assert "for wrapper in reversed(self.db.execute_wrappers):" in source
    assert "executor = functools.partial(wrapper, executor)" in source
    assert "return executor(sql, params, many, context)" in source


def test_async_iteration_as_mirrored():
    # methods.plan_iterator mirrors QuerySet.aiterator (chunk_size default
    # 2000, DISABLE_SERVER_SIDE_CURSORS, the iterable class with
    # chunked_fetch) and run.iterate mirrors BaseIterable._async_generator
    # (islice chunks; stop at a short chunk); methods._aiter mirrors
    # QuerySet.__aiter__ (fill the cache, then hand out its items).
    aiterator = _source(QuerySet.aiterator)
    assert inspect.signature(QuerySet.aiterator).parameters["chunk_size"].default == 2000
    assert 'settings_dict.get(\n            "DISABLE_SERVER_SIDE_CURSORS"' in aiterator
    assert "self._iterable_class(" in aiterator and "chunked_fetch=use_chunked_fetch" in aiterator
    generator = _source(query.BaseIterable._async_generator)
    assert "list(islice(gen, self.chunk_size))" in generator
    assert "if len(chunk) < self.chunk_size:" in generator
    aiter = _source(vars(QuerySet)["__aiter__"].__wrapped__)
    assert "sync_to_async(self._fetch_all)" in aiter
    assert "for item in self._result_cache:" in aiter


def test_raw_delete_takes_using():
    # methods._delete runs QuerySet._raw_delete(using) for a fast delete.
    assert list(inspect.signature(QuerySet._raw_delete).parameters) == ["self", "using"]


def test_greenlet_shares_the_context_it_is_given():
    # run.call gives its greenlet the task's context object (gr_context):
    # variables set on either side are seen by the other, as Django's
    # task-local connections need.
    from greenlet import getcurrent, greenlet

    var = contextvars.ContextVar("canary")

    def child():
        assert var.get() == "parent"
        var.set("child")
        getcurrent().parent.switch("switched")
        return var.get()

    def main():
        var.set("parent")
        g = greenlet(child, getcurrent())
        g.gr_context = getcurrent().gr_context
        assert g.switch() == "switched"
        assert var.get() == "child"
        var.set("parent again")
        return g.switch()

    assert contextvars.copy_context().run(main) == "parent again"


@pytest.mark.parametrize("name", ["fetchmany", "close"])
def test_async_server_cursor(name):
    # run.HeldCursor: psycopg's AsyncServerCursor (named, withhold) with
    # ClientCursorMixin for client-side binding, as Django's ServerSideCursor.
    import psycopg
    from psycopg.client_cursor import ClientCursorMixin

    assert inspect.iscoroutinefunction(getattr(psycopg.AsyncServerCursor, name))
    assert "withhold" in inspect.signature(psycopg.AsyncServerCursor).parameters
    assert issubclass(run._server_cursor_class(True), ClientCursorMixin)


def test_async_to_sync_refuses_a_running_loop_with_this_message():
    # run.call falls back when user code run in its greenlet calls
    # async_to_sync(), recognized by asgiref's message (run.ASYNC_TO_SYNC_REFUSED).
    # When it breaks: take the new message's beginning.
    import asyncio

    from asgiref.sync import async_to_sync

    async def noop():
        return None

    async def main():
        with pytest.raises(RuntimeError) as info:
            async_to_sync(noop)()
        return str(info.value)

    assert asyncio.run(main()).startswith(run.ASYNC_TO_SYNC_REFUSED)


def test_async_unsafe_looks_up_get_running_loop_in_its_module():
    # dualcall.targets.additions replaces django.utils.asyncio.get_running_loop
    # (dualcall.native.get_running_loop): a native greenlet learns that Django
    # refused it a sync-only operation, even one user code caught.  When it
    # breaks: remove that addition (and the xfail-free test of a swallowed
    # SynchronousOnlyOperation in tests/test_native_review.py fails).
    from django.utils import asyncio as django_asyncio

    import dualcall.native

    def func():
        return None

    inner = django_asyncio.async_unsafe("message")(func)
    assert "get_running_loop" in inner.__code__.co_names
    assert django_asyncio.get_running_loop is dualcall.native.get_running_loop


def test_connection_created_live_receivers_and_contrib_postgres_receiver():
    # dualcall.native.pool.session_receivers reads Signal._live_receivers (a
    # list before Django 5.0, then (sync, async)); _register_postgres_types
    # mirrors django.contrib.postgres' receiver (hstore loaders, citext[]).
    # When it breaks: mirror the change there (or treat Django's receiver as
    # unknown in methods._sessions_set_up_by_receivers: the thread path).
    from django.contrib.postgres import signals
    from django.db.backends.signals import connection_created

    def receiver(**kwargs):
        return None

    connection_created.connect(receiver)
    try:
        live = connection_created._live_receivers(None)
        flat = [*live[0], *live[1]] if isinstance(live, tuple) else list(live)
        assert receiver in flat
    finally:
        connection_created.disconnect(receiver)
    names = set(signals.register_type_handlers.__code__.co_names)
    assert {"get_hstore_oids", "get_citext_oids", "TypeInfo", "register_hstore"} <= names
    source = inspect.getsource(signals.get_type_oids)
    assert "SELECT oid, typarray FROM pg_type WHERE typname = %s" in source


def test_suspended_greenlet_takes_a_new_context():
    # run.call reuses idle native greenlets: each call sets the suspended
    # greenlet's gr_context to the calling task's context, and to None once
    # the call ended.  If greenlet stops allowing that, create a new
    # NativeGreenlet per call in run.call (no reuse).
    from greenlet import getcurrent, greenlet

    var = contextvars.ContextVar("canary", default="unset")

    def worker(_):
        while True:
            getcurrent().parent.switch(var.get())

    g = greenlet(worker, getcurrent())
    first = contextvars.copy_context()
    first.run(var.set, "first")
    g.gr_context = first
    assert g.switch(None) == "first"
    g.gr_context = None
    assert g.gr_context is None
    second = contextvars.copy_context()
    second.run(var.set, "second")
    g.gr_context = second
    assert g.switch(None) == "second"


def test_pool_keeps_idle_connections_in_a_deque():
    # pool._MostRecentFirst replaces psycopg_pool's deque of idle connections
    # (`_pool`): the pool takes from it with popleft() and returns with
    # append().  When this breaks, remove _MostRecentFirst (and its use in
    # pool._create_pool): connections are then used in turn, only slower.
    import collections

    from psycopg_pool import AsyncConnectionPool

    pool = AsyncConnectionPool("", open=False)
    assert type(pool._pool) is collections.deque
    source = inspect.getsource(AsyncConnectionPool)
    assert "self._pool.popleft()" in source
    assert "self._pool.append(conn)" in source
