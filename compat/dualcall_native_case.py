"""The base class of Django's async tests as ``compat/async_rewrite.py`` rewrites them.

Django's ``TestCase`` runs each test in a transaction and each ``async def``
test through ``async_to_sync``; dualcall's native path takes the thread path
in both cases, by design (``dualcall.native.thread_path_required``), so the
upstream harness would never run a native query.  :class:`NativeAsyncTestCase`
keeps the tests and changes the harness only:

* it is a ``TransactionTestCase`` (the database in autocommit mode, flushed
  after each test; ``available_apps``: the test's app, contenttypes, auth,
  sessions) that runs the class's ``setUpTestData()`` before each test
  (after Django's per-test setup, before ``setUp()``);
* each ``async def`` test (or a decorator's wrapper around one: Django's
  skip decorators, ``override_settings``) runs with ``asyncio.run()`` in a
  new plain thread: a fresh event loop that ``async_to_sync`` did not start.
  Exceptions (failures, ``SkipTest``) are raised again in the test's thread;
* the sync tests of such a class are not collected: they were written for a
  ``TestCase`` (``assertNumQueries`` counts, for one, differ in autocommit
  mode), and ``make compat`` runs them unchanged.

What each test did is appended as one JSON line to ``$DUALCALL_COMPAT_ASYNC_STATS``:
the statements the native path ran (``dualcall.native.run.statements``), the
statements Django's connections ran (the thread path: an execute wrapper on
every connection), the dual calls that took the native path or the thread
path (by name; recorded around ``dualcall.executor.native_plan`` when it
exists), and ``dualcall.native.methods.last_fallback`` (why a native call fell
back to the thread path), if it was set during the test.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import json
import os
import threading
import unittest
from collections import Counter
from typing import Any

from asgiref.sync import sync_to_async
from django.db import connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.test import TransactionTestCase

_thread_statements = 0
_calls: Counter[str] = Counter()


def _count(execute: Any, sql: Any, params: Any, many: Any, context: Any) -> Any:
    global _thread_statements
    _thread_statements += 1
    return execute(sql, params, many, context)


# Each new connection of Django's gets the counting wrapper.  Not through a
# connection_created receiver: dualcall sends every call on an alias with
# such receivers to the thread path (they could set up Django's sessions,
# never the native pool's: dualcall.W002), and the native run would prove
# nothing.
_django_connect = BaseDatabaseWrapper.connect


@functools.wraps(_django_connect)
def _connect_and_count(self: Any) -> None:
    _django_connect(self)
    if _count not in self.execute_wrappers:
        self.execute_wrappers.append(_count)


BaseDatabaseWrapper.connect = _connect_and_count


def _record_plans() -> None:
    """Count the dual calls the executor sent to the native path and to the thread path."""
    try:
        from dualcall import executor
    except ImportError:
        return
    plan = getattr(executor, "native_plan", None)
    if plan is None or getattr(plan, "dualcall_compat_recorder", False):
        return

    @functools.wraps(plan)
    def recorder(func: Any, *args: Any, **kwargs: Any) -> Any:
        coroutine = plan(func, *args, **kwargs)
        name = getattr(func, "__name__", None) or type(func).__name__
        if getattr(func, "dualcall_native", None) == "evaluate":
            name = "await qs"
        _calls[f"{'native' if coroutine is not None else 'thread'}:{name}"] += 1
        return coroutine

    recorder.dualcall_compat_recorder = True  # type: ignore[attr-defined]
    executor.native_plan = recorder  # type: ignore[attr-defined]


async def _drive(coroutine: Any) -> Any:
    try:
        return await coroutine
    finally:
        # The thread path's connection (asgiref's thread-sensitive executor):
        # closed, so that nothing holds the test database at its destruction.
        await sync_to_async(connections.close_all, thread_sensitive=True)()


def run_on_fresh_loop(coroutine: Any) -> Any:
    """Run *coroutine* with ``asyncio.run()`` in a new thread; re-raise what it raised."""
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = asyncio.run(_drive(coroutine))
        except BaseException as exc:  # re-raised in the caller's thread
            outcome["exc"] = exc

    thread = threading.Thread(target=target, name="dualcall-compat-async-test")
    thread.start()
    thread.join()
    if "exc" in outcome:
        exc = outcome.pop("exc")
        raise exc.with_traceback(exc.__traceback__)
    return outcome.get("value")


def _is_async(test: Any) -> bool:
    """Whether *test* is an ``async def``, or a decorator's wrapper around one."""
    while test is not None:
        if inspect.iscoroutinefunction(test):
            return True
        test = getattr(test, "__wrapped__", None)
    return False


def _on_fresh_loop(test: Any) -> Any:
    @functools.wraps(test)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        from dualcall.native import methods, run

        result = test(self, *args, **kwargs)
        if not inspect.iscoroutine(result):
            return result
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            return result  # from a coroutine: an async test's super().test_x()
        _record_plans()
        methods.last_fallback = None
        _calls.clear()
        native_before, thread_before = run.statements, _thread_statements
        try:
            return run_on_fresh_loop(result)
        finally:
            _write_stats(self, {
                "native_statements": run.statements - native_before,
                "thread_statements": _thread_statements - thread_before,
                "calls": dict(sorted(_calls.items())),
                "fallback": (
                    None if methods.last_fallback is None
                    else f"{type(methods.last_fallback).__name__}: {methods.last_fallback}"
                    + (f" (from {type(methods.last_fallback.__cause__).__name__}:"
                       f" {methods.last_fallback.__cause__})"
                       if methods.last_fallback.__cause__ is not None else "")
                ),
            })

    return wrapper


def _write_stats(test: Any, stats: dict[str, Any]) -> None:
    path = os.environ.get("DUALCALL_COMPAT_ASYNC_STATS")
    if path:
        with open(path, "a") as f:
            f.write(json.dumps({"id": test.id(), **stats}) + "\n")


class NativeAsyncTestCase(TransactionTestCase):
    """A ``TransactionTestCase`` whose coroutine tests run on a fresh loop in a plain thread."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "available_apps" not in vars(cls):
            # runtests.py requires it of a TransactionTestCase: the tests' own
            # app, and the contrib apps the async tests use (auth, sessions).
            cls.available_apps = [
                cls.__module__.split(".")[0],
                "django.contrib.contenttypes",
                "django.contrib.auth",
                "django.contrib.sessions",
                "django.contrib.admin",  # the remote-user tests' URLs
                "django.contrib.messages",
            ]
        for name in dir(cls):
            if not name.startswith("test"):
                continue
            # Where the test is defined: this class, or a mixin that is not a
            # TestCase (Django's BaseModelBackendTest); a test of a rebased
            # parent class was handled there.
            owner = next(k for k in cls.__mro__ if name in vars(k))
            if owner is not cls and issubclass(owner, unittest.TestCase):
                continue
            value = vars(owner)[name]
            if not callable(value) or isinstance(value, type):
                continue
            if _is_async(value):
                setattr(cls, name, _on_fresh_loop(value))
            else:
                # A sync test of a class that also has async ones: not
                # collected here (None is not a test), as it would not run
                # under the TestCase it was written for; `make compat` runs
                # it unchanged.
                setattr(cls, name, None)

    @classmethod
    def setUpTestData(cls) -> None:
        """Load class-level test data: here, before each test (see the module docstring)."""

    def _callSetUp(self) -> None:
        # unittest.TestCase calls this after Django's _pre_setup (fixtures,
        # the flush of the previous test) and before setUp().
        type(self).setUpTestData()
        super()._callSetUp()
