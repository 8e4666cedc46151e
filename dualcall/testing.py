"""pytest plugin: async tests use pytest-django's test transaction, and fail on forgotten awaits.

Installing dualcall registers it with pytest (a ``pytest11`` entry point).
Without the entry point, enable it with ``-p dualcall.testing`` or, in the
root ``conftest.py``::

    pytest_plugins = ["dualcall.testing"]

``-p no:dualcall.testing`` disables it.

Under pytest-asyncio the test's event loop runs in pytest's main thread, which
holds pytest-django's test transaction (``django_db`` without
``transaction=True``), while thread-sensitive ``sync_to_async`` calls (every
dual call, Django's ``a``-methods) run in asgiref's shared worker thread, on
that thread's own connection.  Without help, async code neither sees the
test's data nor is rolled back with it: its writes are committed for real and
outlive the test (plain Django behaves the same).

With this plugin, for the duration of each test whose database access is a
transaction rolled back at the end, the worker thread uses the main thread's
connection objects (shared as Django's ``LiveServerTestCase`` shares them,
with ``inc_thread_sharing()``).  Async code then runs inside the test's
transaction: it sees fixtures made by sync and async fixtures, and its writes
(and ``dualcall.atomic`` blocks, which join the transaction as savepoints) are
rolled back with the test.  Tests with ``transaction=True`` are left alone.

A test marked ``@pytest.mark.dualcall_separate_connection`` opts out.

Each test is also a scope of strict mode (see :mod:`dualcall.awaitables`): a
dual call made in the test, or in a task it started, that is never awaited
fails the test with :class:`~dualcall.awaitables.NotAwaitedError`, even when
the test makes no dual call after it.  Strict mode is on in tests unless the
``DUALCALL_STRICT`` setting is ``False``.
Without the plugin, ``async with dualcall.atomic()`` in such a test raises
``TransactionManagementError`` rather than commit rows that would leak.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import pytest
from asgiref.sync import SyncToAsync
from django.db import connections

from .awaitables import check_scope, close_scope, open_scope

__all__ = ["pytest_configure", "pytest_fixture_setup", "pytest_runtest_call"]

# pytest-django's fixture that sets up the test's database access (its
# transaction, for django_db without transaction=True).  Private, but the
# one fixture every way of requesting the database goes through.
_DB_FIXTURE = "_django_db_helper"


def pytest_configure(config: pytest.Config) -> None:
    """Register the opt-out marker."""
    config.addinivalue_line(
        "markers",
        "dualcall_separate_connection: async code of this test keeps asgiref's worker thread's "
        "own database connection instead of the test's transaction (dualcall.testing).",
    )


@pytest.hookimpl(wrapper=True)
def pytest_fixture_setup(
    fixturedef: Any, request: pytest.FixtureRequest
) -> Generator[None, Any, Any]:
    """Once pytest-django opened the test's transaction, share it with the worker thread."""
    result = yield
    if fixturedef.argname == _DB_FIXTURE and not request.node.get_closest_marker(
        "dualcall_separate_connection"
    ):
        undo = _share_test_connections()
        if undo is not None:
            # Runs before pytest-django's own teardown (finalizers run last
            # in, first out), so the transaction is rolled back in the main
            # thread with the worker thread already back on its connection.
            fixturedef.addfinalizer(undo)
    return result


def _share_test_connections() -> Any:
    """Make the worker thread use this thread's connections that are in a transaction.

    Return the function that undoes it, or ``None`` when there is nothing to
    share (a transactional test) or asgiref has no shared worker thread.
    """
    executor = getattr(SyncToAsync, "single_thread_executor", None)
    shared = {alias: connections[alias] for alias in connections}
    shared = {alias: conn for alias, conn in shared.items() if conn.in_atomic_block}
    if executor is None or not shared:
        return None

    def install() -> dict[str, Any]:
        previous = {alias: connections[alias] for alias in shared}
        for alias, conn in shared.items():
            connections[alias] = conn
        return previous

    for conn in shared.values():
        conn.inc_thread_sharing()
    previous = executor.submit(install).result()

    def undo() -> None:
        def restore() -> None:
            for alias, conn in previous.items():
                connections[alias] = conn
                # The worker's own connection, idle during the test: closed,
                # so that it does not outlive the test database.
                if not conn.in_atomic_block:
                    conn.close()

        try:
            executor.submit(restore).result()
        finally:
            for conn in shared.values():
                conn.dec_thread_sharing()

    return undo


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, Any, Any]:
    """Run the test in a strict-mode scope; fail it if a dual call in it was never awaited."""
    token = open_scope()
    try:
        result = yield
    except BaseException:
        close_scope(token)
        raise
    check_scope(token)
    return result
