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
from typing import Any, TypeVar

from asgiref.sync import sync_to_async

from .awaitables import DualAwaitable, Where, at_caller
from .transaction import in_async_block, turn

__all__ = ["run_sync"]

T = TypeVar("T")


def run_sync(
    func: Callable[..., T],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    name: str,
    at: Where | None = None,
) -> DualAwaitable[T]:
    """Return an awaitable that runs ``func(*args, **kwargs)`` off the event loop.

    *name* (for example ``"QuerySet.count"``) and *at* (the caller's
    ``file:line``, see :func:`dualcall.awaitables.where`) are what a misuse of
    the awaitable reports (:class:`~dualcall.awaitables.DualAwaitable`);
    warnings that *func* raises about its own caller name *at*.
    """
    call = sync_to_async(at_caller(func, at), thread_sensitive=True)
    coroutine: Any = _in_turn(call, args, kwargs) if in_async_block() else call(*args, **kwargs)
    # Named too: should the garbage collector finalize it before the wrapper
    # (a cycle through a traceback), Python's own warning names the method.
    coroutine.__qualname__ = name
    return DualAwaitable(coroutine, name, at)


async def _in_turn(call: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """Inside ``dualcall.atomic``: wait while a sibling task's nested block is open."""
    wait = turn()
    if wait is not None:
        await wait
    return await call(*args, **kwargs)
