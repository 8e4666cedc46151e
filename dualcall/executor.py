"""The one place where a sync ORM call becomes an awaitable.

Every awaitable dualcall hands out is made by :func:`run_sync`, with the same
semantics as Django's own ``a``-methods: the sync callable runs off the event
loop through ``asgiref.sync.sync_to_async(thread_sensitive=True)``, so it runs
in the same thread, on the same connection and in the same transaction as
every other thread-sensitive call of the task.

With ``DUALCALL_NATIVE`` set, :func:`dualcall.native.plan` is asked first: an
awaited read on a listed PostgreSQL alias then runs on a psycopg async pool on
the event loop instead, with no thread hop (see :mod:`dualcall.native`).
Everything it declines takes the thread path, unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from asgiref.sync import sync_to_async

from .awaitables import DualAwaitable, Where, at_caller
from .native import plan as native_plan
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
    coroutine: Any = native_plan(func, args, kwargs, at)
    if coroutine is None:
        call = sync_to_async(at_caller(func, at), thread_sensitive=True)
        coroutine = _in_turn(call, args, kwargs) if in_async_block() else call(*args, **kwargs)
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
