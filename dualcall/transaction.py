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
   it and must finish before it exits (asgiref raises otherwise, and work they
   had queued but not started is cancelled);
2. runs Django's ``Atomic.__enter__`` / ``__exit__`` in that thread: commit on
   normal exit, rollback on exception or cancellation, ``on_commit`` callbacks
   after commit;
3. closes that thread's connections when it ends, so no connection outlives
   the block.

**Joining a transaction that is already open.**  When the thread the task's
thread-sensitive calls go to already holds an atomic block on the block's
connection (a Django ``TestCase`` running an ``async def`` test through
``async_to_sync``; sync code in a transaction calling ``async_to_sync``;
pytest-django's ``django_db`` with :mod:`dualcall.testing`), the outermost
async block joins it instead: it is a savepoint on that thread and connection,
exactly as a nested sync ``atomic`` would be.  When the event loop's own
thread holds the transaction but the task's calls go to another thread and
connection (pytest-asyncio with pytest-django's ``django_db`` and no
:mod:`dualcall.testing`), the block refuses to start: it would neither see
that transaction's data nor be rolled back with it.

**Nested blocks** run in the block's thread as savepoints, exactly as nested
sync blocks do.  Django keeps one savepoint stack per connection, last in
first out, so two tasks of one block must not interleave nested blocks.
dualcall serializes them: a task enters a nested block only when the block it
is in (the innermost block of its context) is the innermost open block of the
connection; otherwise it waits until the sibling's nested block has exited.
A task that, inside a nested block, awaits a sibling that was started outside
that nested block and wants a nested block of its own therefore deadlocks,
as two threads taking two locks in opposite orders would.  A block's exit
likewise waits for nested blocks that tasks started inside it still have open.

**Cancellation is all or nothing.**  The thread work of entering and leaving
a block is never abandoned half-way: when the awaiting task is cancelled (or
a ``wait_for`` times out) while it runs or is queued, the task waits for it
and then compensates.  A cancelled entry that had already created the
savepoint (or begun the transaction) leaves it again by rolling back; a
cancellation that arrives before the thread starts an exit turns the exit
into a rollback; one that arrives after the thread started a normal exit is
too late: the commit (or savepoint release) stands and the block exits
normally, as ``wait_for`` returns the result of an awaitable that finished
first.  Either way ``CancelledError`` is raised exactly when the block's work
was rolled back, and Django's atomic stacks are as before the block.  When a
nested block that has no savepoint (``savepoint=False``) fails or is
cancelled, and the outer block then exits normally, Django would roll back
silently: dualcall raises ``TransactionManagementError`` naming the nested
block instead, so that no block exits normally having committed nothing.

Code in the coroutine itself that reaches the connection without a query
(``transaction.on_commit()``, ``set_rollback()``, ``get_rollback()``) is sent
to the block's connection: see :func:`_block_connection`.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import sys
import threading
import weakref
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from types import FrameType, TracebackType
from typing import Any, TypeVar, overload

from asgiref.sync import AsyncToSync, ThreadSensitiveContext, sync_to_async
from django.core.exceptions import SynchronousOnlyOperation
from django.db import DEFAULT_DB_ALIAS, connections
from django.db import transaction as django_transaction

from .context import loop_running

__all__ = ["Atomic", "atomic"]

F = TypeVar("F", bound=Callable[..., Any])

_TEST_TRANSACTION_ON_LOOP_THREAD = (
    "dualcall.atomic: the connection %r of the event loop's thread is inside an atomic block "
    "(a test transaction, such as pytest-django's django_db without transaction=True under "
    "pytest-asyncio), but async code runs its queries on another thread and connection: the "
    "block would not see that transaction's data and its writes would outlive it. Enable "
    "dualcall's pytest plugin ('-p dualcall.testing', or pytest_plugins = ['dualcall.testing'] "
    "in conftest.py) so that async code uses the test's connection, or use "
    "django_db(transaction=True)."
)


@dataclass(eq=False)
class _Block:
    """The thread an outermost async block runs in, and its open entries.

    *executor* and *context* are the block's own thread; both are ``None``
    when the block joined a transaction already open on the task's
    thread-sensitive thread.
    """

    executor: ThreadPoolExecutor | None
    context: ThreadSensitiveContext | None
    thread: threading.Thread | None = None
    # alias -> the block thread's connection object for that alias.
    connections: dict[str, Any] = field(default_factory=dict)
    # The entries open on the connection, outermost first: mirrors Django's
    # savepoint stack, and decides which task may push the next savepoint.
    stack: list[_Entry] = field(default_factory=list)
    # Tasks waiting for ``stack`` to change.
    waiters: list[asyncio.Future[None]] = field(default_factory=list)
    # Set in the block's thread: why the outermost block must fail if it
    # exits normally (a nested block without a savepoint failed).
    doomed: str | None = None


@dataclass(eq=False)
class _Entry:
    """One ``async with`` entry of one task."""

    atomic: Atomic
    block: _Block
    parent: _Entry | None
    where: str
    token: contextvars.Token[tuple[_Entry, ...]] | None = None
    # Hand-over between the event loop and the block's thread, under ``lock``:
    # whether the thread started the enter (exit) job, and whether the task
    # was cancelled before it did (then the job does nothing, or rolls back).
    lock: threading.Lock = field(default_factory=threading.Lock)
    enter_started: bool = False
    enter_cancelled: bool = False
    exit_started: bool = False
    exit_cancelled: bool = False

    @property
    def owns_thread(self) -> bool:
        return self.parent is None and self.block.executor is not None

    @property
    def alias(self) -> str:
        return self.atomic.using or DEFAULT_DB_ALIAS  # type: ignore[no-any-return]

    def cancel_enter(self) -> None:
        with self.lock:
            if not self.enter_started:
                self.enter_cancelled = True

    def cancel_exit(self) -> None:
        with self.lock:
            if not self.exit_started:
                self.exit_cancelled = True


# The async atomic entries of the current task, innermost last.  A context
# variable: each task sees its own, and tasks inherit the entries of the task
# that created them (so their work joins the block's thread).
_entries: contextvars.ContextVar[tuple[_Entry, ...]] = contextvars.ContextVar(
    "dualcall_atomic_entries", default=()
)


# Connection -> the block of the async blocks that joined its transaction.
_joined_blocks: weakref.WeakKeyDictionary[Any, _Block] = weakref.WeakKeyDictionary()


def in_async_block() -> bool:
    """Whether the current task is inside an ``async with dualcall.atomic()`` block."""
    return bool(_entries.get())


def _current_block() -> _Block | None:
    entries = _entries.get()
    return entries[-1].block if entries else None


def _describe(frame: FrameType | None) -> str:
    """Name a block by the user's line: the first frame outside this module."""
    while frame is not None and frame.f_code.co_filename == __file__:
        frame = frame.f_back
    if frame is None:
        return "dualcall.atomic block"
    return f"dualcall.atomic block at {frame.f_code.co_filename}:{frame.f_lineno}"


def _loop_thread_in_atomic_block(alias: str) -> bool:
    """Whether this (event loop) thread's sync connection for *alias* is in an atomic block.

    With a loop running, Django's ``connections`` are local to the task
    (asgiref's thread-critical ``Local``), so ``connections[alias]`` here is
    not the connection that sync code of this thread opened before the loop
    started (pytest-django's test transaction, under pytest-asyncio): that
    one is in the ``Local``'s plain thread-local storage.  Looked up by
    feature; ``False`` where the storage is not found.
    """
    storage = getattr(getattr(connections, "_connections", None), "_storage", None)
    if not isinstance(storage, threading.local):
        return False
    return bool(getattr(getattr(storage, alias, None), "in_atomic_block", False))


# -- work done in the block's thread ------------------------------------------


def _connection_in_atomic_block(alias: str) -> Any:
    """This thread's connection for *alias* if it is in an atomic block, else ``None``."""
    conn = connections[alias]
    return conn if conn.in_atomic_block else None


def _capture(block: _Block) -> None:
    """Remember the block's thread and its connections."""
    block.thread = threading.current_thread()
    block.connections = {alias: connections[alias] for alias in connections}


def _enter_in_thread(entry: _Entry, join: bool) -> bool:
    """Enter *entry*'s Django atomic block; return whether it was entered.

    With *join*, enter only if the thread's connection is already in an
    atomic block.  Does nothing when the task was cancelled before this ran.
    """
    with entry.lock:
        if entry.enter_cancelled:
            return False
        entry.enter_started = True
    if join and not connections[entry.alias].in_atomic_block:
        return False
    if entry.parent is None:
        _capture(entry.block)
    try:
        entry.atomic.__enter__()
    except BaseException:
        if entry.owns_thread:
            connections.close_all()
        raise
    return True


def _exit_in_thread(
    entry: _Entry,
    exc_type: type[BaseException] | None,
    exc_value: BaseException | None,
    traceback: TracebackType | None,
) -> bool:
    """Leave *entry*'s Django atomic block; return whether it rolled back for a cancellation.

    The outermost entry of a block with its own thread also closes the
    thread's connections and stops the thread, cancelling work that tasks of
    the block queued but that has not started: it would otherwise run
    outside the transaction, in autocommit mode.
    """
    with entry.lock:
        entry.exit_started = True
        cancelled = entry.exit_cancelled and exc_type is None
    if cancelled:
        exc_value = asyncio.CancelledError()
        exc_type, traceback = type(exc_value), None
    block = entry.block
    connection = connections[entry.alias]
    failure: BaseException | None = None
    try:
        if (
            entry.parent is None
            and exc_type is None
            and block.doomed is not None
            and connection.needs_rollback
        ):
            failure = django_transaction.TransactionManagementError(block.doomed)
            exc_type, exc_value, traceback = type(failure), failure, None
        try:
            entry.atomic.__exit__(exc_type, exc_value, traceback)
        finally:
            if (
                entry.parent is not None
                and exc_type is not None
                and connection.in_atomic_block
                and connection.needs_rollback
                and block.doomed is None
            ):
                block.doomed = (
                    f"The transaction was rolled back: the nested {entry.where} "
                    f"({'cancelled' if issubclass(exc_type, asyncio.CancelledError) else 'failed'}"
                    f" with {exc_type.__name__}) could not be rolled back to a savepoint, "
                    "so the whole block was marked for rollback."
                )
        if failure is not None:
            raise failure
    finally:
        if entry.parent is None:
            block.doomed = None  # a joined block's stack outlives its outermost entry
        if entry.owns_thread:
            try:
                connections.close_all()
            finally:
                assert block.executor is not None
                block.executor.shutdown(wait=False, cancel_futures=True)
    return cancelled


# -- the event loop side --------------------------------------------------------


def _notify(block: _Block) -> None:
    for waiter in block.waiters:
        if not waiter.done():
            waiter.set_result(None)
    block.waiters.clear()


async def _wait_for_change(block: _Block) -> None:
    waiter = asyncio.get_running_loop().create_future()
    block.waiters.append(waiter)
    try:
        await waiter
    finally:
        if waiter in block.waiters:
            block.waiters.remove(waiter)


async def _run_to_end(job: asyncio.Future[Any], on_cancel: Callable[[], None]) -> bool:
    """Wait for *job* even if this task is cancelled; return whether it was.

    *on_cancel* runs at the first cancellation, at once (the job may not
    have started yet).
    """
    cancelled = False
    while not job.done():
        try:
            await asyncio.wait((job,))
        except asyncio.CancelledError:
            if not cancelled:
                cancelled = True
                on_cancel()
    return cancelled


def _in_thread(func: Callable[..., Any], *args: Any) -> asyncio.Future[Any]:
    """Start ``func(*args)`` on the task's thread-sensitive thread, as its own task.

    The job is a separate task so that cancelling the caller cannot cancel
    it: asgiref abandons a thread call whose awaiting task is cancelled,
    while the thread goes on running it.
    """
    return asyncio.ensure_future(sync_to_async(func, thread_sensitive=True)(*args))


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
        where = _describe(sys._getframe(1))
        entries = _entries.get()
        if entries:
            entry = await self._enter_nested(entries[-1], where)
        else:
            entry = await self._enter_outermost(where)
        entry.token = _entries.set((*entries, entry))
        return self

    async def _enter_nested(self, parent: _Entry, where: str) -> _Entry:
        block = parent.block
        # Serialize nested blocks of sibling tasks: push a savepoint only on
        # top of this task's own innermost block.
        while not block.stack or block.stack[-1] is not parent:
            if parent not in block.stack:
                raise django_transaction.TransactionManagementError(
                    f"dualcall.atomic: the {parent.where} has exited; a task started inside it "
                    "must finish before it exits."
                )
            await _wait_for_change(block)
        entry = _Entry(atomic=self, block=block, parent=parent, where=where)
        block.stack.append(entry)
        try:
            await self._enter(entry, join=False)
        except BaseException:
            block.stack.pop()
            _notify(block)
            raise
        return entry

    async def _enter_outermost(self, where: str) -> _Entry:
        alias = self.using or DEFAULT_DB_ALIAS
        # Thread-sensitive calls go to a sync thread parked in async_to_sync
        # (a TestCase's async test), or the loop's thread holds a transaction
        # (pytest-django): join the transaction of the task's thread if it
        # has one.  Elsewhere (ASGI) neither holds and no thread hop is spent.
        in_loop_thread = _loop_thread_in_atomic_block(alias)
        if getattr(AsyncToSync.executors, "current", None) is not None or in_loop_thread:
            joined = await sync_to_async(_connection_in_atomic_block, thread_sensitive=True)(alias)
            if joined is not None:
                # Every block that joins this connection's transaction shares
                # one stack: outermost blocks of sibling tasks are savepoints
                # of one connection too, so they are serialized as well.
                block = _joined_blocks.get(joined)
                if block is None:
                    block = _joined_blocks[joined] = _Block(executor=None, context=None)
                while block.stack:
                    await _wait_for_change(block)
                entry = _Entry(atomic=self, block=block, parent=None, where=where)
                block.stack.append(entry)
                try:
                    entered = await self._enter(entry, join=True)
                except BaseException:
                    block.stack.remove(entry)
                    _notify(block)
                    raise
                if entered:
                    return entry
                block.stack.remove(entry)
                _notify(block)
            if in_loop_thread:
                raise django_transaction.TransactionManagementError(
                    _TEST_TRANSACTION_ON_LOOP_THREAD % alias
                )
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dualcall-atomic")
        block = _Block(executor=executor, context=ThreadSensitiveContext(executor=executor))
        entry = _Entry(atomic=self, block=block, parent=None, where=where)
        block.stack.append(entry)
        context = block.context
        assert context is not None
        await context.__aenter__()  # type: ignore[no-untyped-call]
        try:
            await self._enter(entry, join=False)
        except BaseException:
            await context.__aexit__(None, None, None)  # type: ignore[no-untyped-call]
            executor.shutdown(wait=False, cancel_futures=True)
            raise
        return entry

    @staticmethod
    async def _enter(entry: _Entry, join: bool) -> bool:
        """Run the enter job to its end; on cancellation leave again, then raise."""
        job = _in_thread(_enter_in_thread, entry, join)
        cancelled = await _run_to_end(job, entry.cancel_enter)
        entered: bool = job.result()
        if cancelled:
            if entered:
                # The savepoint (or transaction) exists: roll it back, so the
                # stacks are as before.  Further cancellations are ignored.
                error = asyncio.CancelledError()
                undo = _in_thread(_exit_in_thread, entry, type(error), error, None)
                await _run_to_end(undo, lambda: None)
                undo.result()
            raise asyncio.CancelledError()
        return entered

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        entry = _entries.get()[-1]
        block = entry.block
        cancelled = False
        try:
            # Tasks started inside this block may still have nested blocks
            # open above it: wait for them, the savepoint stack is LIFO.
            while block.stack[-1] is not entry:
                try:
                    await _wait_for_change(block)
                except asyncio.CancelledError:
                    cancelled = True
                    entry.cancel_exit()
            job = _in_thread(_exit_in_thread, entry, exc_type, exc_value, traceback)
            cancelled = await _run_to_end(job, entry.cancel_exit) or cancelled
        finally:
            block.stack.remove(entry)
            _notify(block)
            if entry.token is not None:
                _entries.reset(entry.token)
            if entry.owns_thread:
                assert block.context is not None
                await block.context.__aexit__(None, None, None)  # type: ignore[no-untyped-call]
        rolled_back_for_cancel: bool = job.result()
        if cancelled:
            if exc_type is None and not rolled_back_for_cancel:
                # Too late: the thread had started a normal exit, which
                # committed (or released the savepoint).  Report what
                # happened, and withdraw the cancellation request.
                # The request is withdrawn, not delivered later: a task whose
                # next step is to return would end cancelled, and its caller
                # (wait_for, a TaskGroup) would see a CancelledError or
                # TimeoutError for work that was committed, and might redo it.
                task = asyncio.current_task()
                if task is not None:
                    task.uncancel()
                return
            raise asyncio.CancelledError()


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
        if sys._getframe(1).f_code in _SYNC_ATOMIC_CODES:
            # A sync ``with transaction.atomic():`` written in the coroutine:
            # Django's Atomic would push onto the block's savepoint stack from
            # the wrong thread.  Refuse, as Django does outside a block.
            raise SynchronousOnlyOperation(
                "transaction.atomic() cannot be used as a sync block in async code: use "
                "async with dualcall.atomic() instead."
            )
        return block.connections[using or DEFAULT_DB_ALIAS]
    return connections[using or DEFAULT_DB_ALIAS]


_SYNC_ATOMIC_CODES = frozenset(
    {django_transaction.Atomic.__enter__.__code__, django_transaction.Atomic.__exit__.__code__}
)


def turn() -> Awaitable[None] | None:
    """What a call of this task must wait for before it runs on its block's connection.

    Inside an async block, the connection's savepoint stack is shared by the
    block's tasks.  While a sibling task's nested block is open on top of it,
    this task's queries would run inside that savepoint, and be rolled back
    with it; so they wait until the sibling's nested block has exited
    (``None``: nothing to wait for).  Used by :func:`dualcall.executor.run_sync`.
    """
    entries = _entries.get()
    if not entries:
        return None
    entry = entries[-1]
    if entry.block.stack and entry.block.stack[-1] is entry:
        return None
    return _wait_for_turn(entry)


async def _wait_for_turn(entry: _Entry) -> None:
    block = entry.block
    while block.stack and block.stack[-1] is not entry:
        if entry not in block.stack:
            raise django_transaction.TransactionManagementError(
                f"dualcall.atomic: the {entry.where} has exited; a task started inside it must "
                "finish before it exits."
            )
        await _wait_for_change(block)
