import asyncio

import pytest
from asgiref.sync import sync_to_async
from django.db import connections

# Async tests with pytest-django's (non-transactional) django_db run in the
# test's transaction: see dualcall.testing.
pytest_plugins = ["dualcall.testing"]


@pytest.fixture(autouse=True)
def _close_worker_connections(request):
    """Close the connections opened by awaited calls in asgiref's worker thread.

    Awaitables run in the thread-sensitive worker thread, which has its own
    database connection; left open, it would outlive the test (and block the
    test database from being dropped on PostgreSQL).
    """
    yield
    if request.node.get_closest_marker("django_db") and asyncio.iscoroutinefunction(
        getattr(request.node, "function", None)
    ):
        asyncio.run(sync_to_async(_close_own_connections)())


def _close_own_connections():
    # A connection shared with this thread (dualcall.testing lends it the
    # test's transaction until the end of the test) is not its to close.
    for conn in connections.all(initialized_only=True):
        if not conn.allow_thread_sharing:
            conn.close()


@pytest.fixture
def native(settings):
    """``DUALCALL_NATIVE = ["default"]`` for the test (and no fallback recorded yet)."""
    from dualcall.native import methods

    settings.DUALCALL_NATIVE = ["default"]
    methods.last_fallback = None
    yield
