import asyncio

import pytest
from asgiref.sync import sync_to_async
from django.db import connections


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
        asyncio.run(sync_to_async(connections.close_all)())
