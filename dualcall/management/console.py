"""The engine of ``manage.py ashell``: a console with top-level ``await``.

Input is compiled with ``ast.PyCF_ALLOW_TOP_LEVEL_AWAIT``, one top-level
statement at a time.  A statement that contains ``await`` (or ``async for`` /
``async with``) compiles to a coroutine; any other statement compiles to plain
code.  :class:`Runner` runs the two kinds in different places:

* coroutine statements run as a task on one persistent event loop, in a
  background thread (so tasks and loop-bound objects survive from one prompt
  to the next).  They are coroutine frames with a loop running, so a dual
  call in them returns an awaitable: ``await Question.objects.count()``.
* plain statements run through ``sync_to_async(thread_sensitive=True)`` in
  asgiref's thread-sensitive worker thread, where no loop runs, so a dual call
  in them is a plain synchronous Django call: ``Question.objects.count()``.

The awaitables of the first kind run in that same worker thread, so both
kinds use one thread and one database connection.  The main thread only
reads input (readline works as usual) and waits; Ctrl-C cancels a running
``await`` (a synchronous statement that is running finishes first).
"""

from __future__ import annotations

import ast
import asyncio
import builtins
import code
import concurrent.futures
import inspect
import sys
import threading
import traceback
import types
from collections.abc import Coroutine
from typing import Any

from asgiref.sync import sync_to_async

__all__ = ["AsyncConsole", "Runner", "compile_statements", "new_namespace", "run_source"]

#: Compiler flag for top-level ``await``.
FLAGS = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT

_Outcome = tuple[bool, Any]


def _call_sync(func: types.FunctionType) -> _Outcome:
    """Call *func* in the worker thread; capture any exception, ``SystemExit`` included."""
    try:
        return True, func()
    except BaseException as exc:
        return False, exc


async def _await_captured(awaitable: Coroutine[Any, Any, Any]) -> _Outcome:
    # SystemExit and KeyboardInterrupt escaping a task would stop the loop
    # itself; capture everything and re-raise it in the main thread.
    try:
        return True, await awaitable
    except BaseException as exc:
        return False, exc


async def _run_sync(func: types.FunctionType) -> _Outcome:
    return await sync_to_async(_call_sync, thread_sensitive=True)(func)


def _trim_traceback(exc: BaseException, code_object: types.CodeType) -> BaseException:
    """Start *exc*'s traceback at the user's statement: drop the runner's frames."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code is not code_object:
        tb = tb.tb_next
    if tb is not None:
        exc.__traceback__ = tb
    return exc


class Runner:
    """Run compiled statements: coroutine code on a persistent loop, plain code off it.

    The event loop runs in a daemon thread from construction until
    :meth:`close`.
    """

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._serve, name="ashell-event-loop", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def run(self, code_object: types.CodeType, namespace: dict[str, Any]) -> Any:
        """Run one compiled statement in *namespace* and return its value or raise its exception.

        On ``KeyboardInterrupt`` while waiting, the statement's task is
        cancelled and ``KeyboardInterrupt`` is raised.
        """
        func = types.FunctionType(code_object, namespace)
        if code_object.co_flags & inspect.CO_COROUTINE:
            job = _await_captured(func())
        else:
            job = _run_sync(func)
        future = asyncio.run_coroutine_threadsafe(job, self.loop)
        try:
            ok, value = future.result()
        except KeyboardInterrupt:
            future.cancel()
            raise
        except concurrent.futures.CancelledError:
            raise KeyboardInterrupt from None
        if ok:
            return value
        raise _trim_traceback(value, code_object)

    def close(self) -> None:
        """Close the worker thread's database connections, cancel leftover tasks, stop the loop."""
        if self.loop.is_closed():
            return
        from django.db import connections

        async def shutdown() -> None:
            await sync_to_async(connections.close_all, thread_sensitive=True)()
            current = asyncio.current_task()
            tasks = [task for task in asyncio.all_tasks() if task is not current]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.loop.shutdown_asyncgens()

        try:
            asyncio.run_coroutine_threadsafe(shutdown(), self.loop).result(timeout=30)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=30)
            if not self._thread.is_alive():
                self.loop.close()

    def __enter__(self) -> Runner:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def compile_statements(source: str, filename: str) -> list[types.CodeType]:
    """Compile *source* into one code object per top-level statement (top-level ``await`` allowed).

    Raises ``SyntaxError`` before anything runs.
    """
    module = ast.parse(source, filename, "exec")
    return [
        compile(ast.Module(body=[statement], type_ignores=[]), filename, "exec", flags=FLAGS)
        for statement in module.body
    ]


def run_source(runner: Runner, source: str, namespace: dict[str, Any], filename: str) -> None:
    """Run a script statement by statement, as if typed at the prompt.

    Stops at the first exception, which propagates.
    """
    for code_object in compile_statements(source, filename):
        runner.run(code_object, namespace)


def new_namespace(imported: dict[str, Any]) -> dict[str, Any]:
    """Return the globals the shell's code runs in: a ``__main__`` module plus *imported*."""
    namespace: dict[str, Any] = {"__name__": "__main__", "__doc__": None, "__builtins__": builtins}
    namespace.update(imported)
    return namespace


class AsyncConsole(code.InteractiveConsole):
    """An interactive console with top-level ``await``, running code through a :class:`Runner`."""

    def __init__(
        self, runner: Runner, namespace: dict[str, Any], filename: str = "<console>"
    ) -> None:
        super().__init__(namespace, filename)
        self.compile.compiler.flags |= FLAGS
        self.runner = runner

    def runcode(self, code: types.CodeType) -> None:
        """Run one compiled input; show its exception, if any, as the plain REPL would."""
        try:
            self.runner.run(code, self.locals)
        except SystemExit:
            raise
        except KeyboardInterrupt:
            self.write("\nKeyboardInterrupt\n")
        except BaseException as exc:
            self.show_exception(exc)

    def show_exception(self, exc: BaseException) -> None:
        """Print *exc* with its traceback from the user's statement on."""
        sys.last_type, sys.last_value, sys.last_traceback = type(exc), exc, exc.__traceback__
        if sys.excepthook is sys.__excepthook__:
            self.write("".join(traceback.format_exception(exc)))
        else:
            sys.excepthook(type(exc), exc, exc.__traceback__)
