"""The one place where a sync ORM call becomes an awaitable.

Every awaitable dualcall hands out is made by :func:`run_sync`, with the same
semantics as Django's own ``a``-methods: the sync callable runs off the event
loop through ``asgiref.sync.sync_to_async(thread_sensitive=True)``, so it runs
in the same thread, on the same connection and in the same transaction as
every other thread-sensitive call of the task.

This is deliberately a single small function: a native async execution path
(PostgreSQL) plugs in here without touching the descriptors.
"""

from __future__ import annotations

from collections.abc import Callable
from types import CoroutineType
from typing import Any, TypeVar, cast

from asgiref.sync import sync_to_async

__all__ = ["run_sync"]

T = TypeVar("T")


def run_sync(
    func: Callable[..., T],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    name: str,
) -> CoroutineType[Any, Any, T]:
    """Return a coroutine that runs ``func(*args, **kwargs)`` off the event loop.

    *name* (for example ``"QuerySet.count"``) becomes the coroutine's
    ``__qualname__``, so that the ``RuntimeWarning`` Python emits for a
    coroutine that is never awaited names the method that was not run.
    """
    coroutine = cast(
        "CoroutineType[Any, Any, T]", sync_to_async(func, thread_sensitive=True)(*args, **kwargs)
    )
    coroutine.__qualname__ = name
    return coroutine
