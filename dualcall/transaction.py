"""``dualcall.atomic``: Django's ``atomic`` for sync code, a real transaction for async code.

Sync code (``with atomic():`` and ``@atomic`` on a ``def``) gets Django's own
``transaction.Atomic``, unchanged.

Async code (``async with atomic():`` and ``@atomic`` on an ``async def``) needs
more, because Django's connections belong to threads and async code runs its
queries in asgiref's thread-sensitive worker thread, shared by every task of
the request (or of the process).  An outermost async block therefore:

1. gives the task a thread of its own: an ``asgiref`` ``ThreadSensitiveContext``
   with a one-thread executor.  Every thread-sensitive ``sync_to_async`` call
   the task makes inside the block (dual calls, Django's ``a``-methods, the
   user's own) runs there, on that thread's connection.  Tasks started before
   or outside the block keep their own thread: they are not part of the
   transaction and never wait for it.  Tasks started inside the block inherit
   it and must finish before it exits (asgiref raises otherwise);
2. runs Django's ``Atomic.__enter__`` / ``__exit__`` in that thread: commit on
   normal exit, rollback on exception or cancellation, ``on_commit`` callbacks
   after commit;
3. closes that thread's connections when it ends, so no connection outlives
   the block.

Nested async blocks run in the same thread as savepoints, exactly as nested
sync blocks do.  Code in the coroutine itself that reaches the connection
without a query (``transaction.on_commit()``, ``set_rollback()``,
``get_rollback()``) is sent to the block's connection: see
:func:`_block_connection`.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, TypeVar, overload

from asgiref.sync import ThreadSensitiveContext, sync_to_async
from django.db import DEFAULT_DB_ALIAS, connections
from django.db import transaction as django_transaction

from .context import loop_running

__all__ = ["Atomic", "atomic"]

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class _Block:
    """An outermost async atomic block: its thread and that thread's connections."""

    executor: ThreadPoolExecutor
    context: ThreadSensitiveContext
    thread: threading.Thread | None = None
    # alias -> the block thread's connection object for that alias.
    connections: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Entry:
    """One ``async with`` entry: the block it runs in, and whether it opened it."""

    block: _Block
    outermost: bool
    token: contextvars.Token[tuple[_Entry, ...]] | None = None


# The async atomic entries of the current task, innermost last.  A context
# variable: each task sees its own, and tasks inherit the entries of the task
# that created them (so their work joins the block's thread).
_entries: contextvars.ContextVar[tuple[_Entry, ...]] = contextvars.ContextVar(
    "dualcall_atomic_entries", default=()
)


def _current_block() -> _Block | None:
    entries = _entries.get()
    return entries[-1].block if entries else None


def _capture(block: _Block) -> None:
    """Run in the block's thread: remember the thread and its connections."""
    block.thread = threading.current_thread()
    block.connections = {alias: connections[alias] for alias in connections}


def _close_thread_connections() -> None:
    """Run in the block's thread: close what it opened (rolls back any leftover)."""
    connections.close_all()


class Atomic(django_transaction.Atomic):  # type: ignore[misc]  # Django is untyped
    """Django's ``Atomic`` that also works with ``async with`` and on ``async def``."""

    def __call__(self, func: F) -> F:
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def inner(*args: Any, **kwargs: Any) -> Any:
                async with self:
                    return await func(*args, **kwargs)

            return inner  # type: ignore[return-value]
        return super().__call__(func)  # type: ignore[no-any-return]

    async def __aenter__(self) -> Atomic:
        block = _current_block()
        outermost = block is None
        if block is None:
            executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dualcall-atomic")
            block = _Block(executor=executor, context=ThreadSensitiveContext(executor=executor))
        entry = _Entry(block=block, outermost=outermost)
        if outermost:
            await block.context.__aenter__()  # type: ignore[no-untyped-call]
        entry.token = _entries.set((*_entries.get(), entry))
        try:
            if outermost:
                await sync_to_async(_capture, thread_sensitive=True)(block)
            await sync_to_async(self.__enter__, thread_sensitive=True)()
        except BaseException:
            await self._leave(entry)
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        entry = _entries.get()[-1]
        try:
            await sync_to_async(self.__exit__, thread_sensitive=True)(
                exc_type, exc_value, traceback
            )
        finally:
            await self._leave(entry)

    @staticmethod
    async def _leave(entry: _Entry) -> None:
        """Pop *entry*; for the outermost one, close the thread's connections and stop it."""
        block = entry.block
        try:
            if entry.outermost:
                await sync_to_async(_close_thread_connections, thread_sensitive=True)()
        finally:
            if entry.token is not None:
                _entries.reset(entry.token)
            if entry.outermost:
                await block.context.__aexit__(None, None, None)  # type: ignore[no-untyped-call]
                block.executor.shutdown(wait=False)


@overload
def atomic(using: F) -> F: ...
@overload
def atomic(using: str | None = None, savepoint: bool = True, durable: bool = False) -> Atomic: ...
def atomic(
    using: str | Callable[..., Any] | None = None, savepoint: bool = True, durable: bool = False
) -> Any:
    """Start a transaction: ``with``/``async with`` block, or decorator of ``def``/``async def``.

    The arguments are Django's (``django.db.transaction.atomic``).  In sync
    code this *is* Django's atomic.  In async code the block gets a thread and
    a connection of its own; see :mod:`dualcall.transaction`.
    """
    if callable(using):
        return Atomic(DEFAULT_DB_ALIAS, savepoint, durable)(using)
    return Atomic(using, savepoint, durable)


def _block_connection(using: str | None = None) -> Any:
    """``django.db.transaction.get_connection``, aware of async atomic blocks.

    Installed by ``patch()``.  Called from the event loop's thread by a task
    inside an async block (the coroutine itself, calling
    ``transaction.on_commit()``), it returns the block's connection, so that
    the callback joins the block's transaction as it would in sync code.
    Anywhere else (the block's thread, other worker threads, sync code) it is
    Django's ``get_connection``.
    """
    block = _current_block()
    if block is not None and loop_running() and block.thread is not threading.current_thread():
        return block.connections[using or DEFAULT_DB_ALIAS]
    return connections[using or DEFAULT_DB_ALIAS]
