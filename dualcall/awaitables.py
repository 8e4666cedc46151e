"""The awaitable a dual call returns, made safe to misuse.

Plain Django raises ``SynchronousOnlyOperation`` wherever async code forgets
an ``await`` on the ORM.  A dual call made from a coroutine returns an
awaitable instead, and an awaitable that is used as a value would fail *open*:
a coroutine object is always true (``if qs.exists():``) and a write that is
never awaited never runs.  :class:`DualAwaitable` closes each of those doors:

==============================  ===============================================
mistake                         what happens
==============================  ===============================================
``if qs.exists():``             :class:`NotAwaitedError` (a ``TypeError``)
                                naming the call and the fix
``q = Q.objects.get(...)``      :class:`NotAwaitedAttributeError` (an
then ``q.question_text``        ``AttributeError``) saying the call was not
                                awaited
``Q.objects.create(...)``       reported every time: an ERROR record on the
never awaited                   ``dualcall`` logger naming the call and the
                                caller's ``file:line``, and a
                                ``RuntimeWarning`` attributed to that line; in
                                strict mode the surrounding request, command or
                                test also fails with :class:`NotAwaitedError`
``for x in qs.iterator():``     ``TypeError``: use ``async for``
in a coroutine
==============================  ===============================================

For asyncio it stays a coroutine (``asyncio.iscoroutine()`` is true, so
``create_task``, ``TaskGroup``, ``gather``, ``wait_for`` and ``asyncio.run``
take it): ``await`` hands over the wrapped coroutine's own iterator, so an
awaited call costs one method call more, not one per step.

Strict mode (the ``DUALCALL_STRICT`` setting; by default on when
``settings.DEBUG`` is true or Django's test environment is set up) makes a
never-awaited call fail loudly where it can be seen.  Each never-awaited call
is recorded in the *scope* of the code that made it: a list held by a context
variable, which tasks started inside the scope share.  A scope is opened by
every async view (``BaseHandler.make_view_atomic`` is patched to wrap it), by
:class:`~dualcall.management.AsyncCommand`, by dualcall's pytest plugin around
each test, and otherwise by the first dual call of a task.  In strict mode the
scope fails with :class:`NotAwaitedError` at the next dual call made in it, or
when it ends (the view returns: a 500 with the error page under ``DEBUG``; the
test fails), whichever comes first.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import logging
import sys
import warnings
import weakref
from collections.abc import AsyncIterator, Callable, Coroutine, Generator
from dataclasses import dataclass, field
from types import CodeType, FrameType
from typing import Any, TypeVar

from asgiref.sync import iscoroutinefunction
from django.core.exceptions import SynchronousOnlyOperation

__all__ = [
    "DualAsyncIterator",
    "DualAwaitable",
    "NotAwaitedAttributeError",
    "NotAwaitedError",
    "NotAwaitedTypeError",
    "Where",
    "check_scope",
    "close_scope",
    "open_scope",
    "scoped",
    "scoped_views",
    "strict_mode",
    "strict_setting",
    "where",
]

T = TypeVar("T")

logger = logging.getLogger("dualcall")

#: Where a call was made: ``(filename, lineno, module globals)``.
Where = tuple[str, int, dict[str, Any]]


class NotAwaitedError(SynchronousOnlyOperation):  # type: ignore[misc]
    """A dual call made in a coroutine was used without ``await``.

    A subclass of Django's ``SynchronousOnlyOperation``, what plain Django
    raises for the same mistake, so existing handlers still catch it (and
    Django's template engine, which swallows ``TypeError`` and
    ``AttributeError`` in variable lookups, does not).  Raised when the
    awaitable is used as a value (converted to text, compared, iterated,
    indexed), and in strict mode by the request, command or test in which a
    dual call was never awaited.
    """


class NotAwaitedTypeError(NotAwaitedError, TypeError):
    """The awaitable of a dual call was used as a truth value (``if qs.exists():``)."""


class NotAwaitedAttributeError(NotAwaitedError):
    """An attribute of a dual call's result was read from the un-awaited call.

    Deliberately not an ``AttributeError``: ``getattr(x, name, default)``,
    ``hasattr()`` and Django's templates would turn that into a default value,
    a false condition or an empty string.
    """


def where(frame: FrameType) -> Where:
    """Return where *frame* is: its file, its current line and its module globals."""
    return frame.f_code.co_filename, frame.f_lineno, frame.f_globals


def _location(at: Where | None) -> str:
    return f"{at[0]}:{at[1]}" if at is not None else "an unknown line"


def _short(name: str) -> str:
    """``QuerySet.exists`` -> ``exists``; ``Choice.a.question`` stays whole."""
    return name.rsplit(".", 1)[-1] if ".a." not in name else name


# -- strict mode and scopes ---------------------------------------------------

_TEST_STATE: Any = None


def _in_test_environment() -> bool:
    """Whether Django's test environment is set up (``setup_test_environment()``)."""
    # Canary: tests/test_canary.py pins django.test.utils._TestState.saved_data.
    global _TEST_STATE
    if _TEST_STATE is None:
        from django.test.utils import _TestState

        _TEST_STATE = _TestState
    return hasattr(_TEST_STATE, "saved_data")


def strict_mode() -> bool:
    """Return whether a never-awaited dual call fails its request, command or test.

    The ``DUALCALL_STRICT`` setting when it is a bool; by default, on when
    ``settings.DEBUG`` is true or Django's test environment is set up.
    """
    from django.conf import settings

    if not settings.configured:
        return False
    strict = strict_setting()
    if strict is None:
        return bool(settings.DEBUG) or _in_test_environment()
    return strict


def strict_setting() -> bool | None:
    """Return the ``DUALCALL_STRICT`` setting, or raise ``ImproperlyConfigured`` if not a bool."""
    from django.conf import settings

    strict = getattr(settings, "DUALCALL_STRICT", None)
    if strict is not None and not isinstance(strict, bool):
        from django.core.exceptions import ImproperlyConfigured

        raise ImproperlyConfigured(
            f"DUALCALL_STRICT must be True, False or None (unset: on under DEBUG and in "
            f"tests), not {strict!r}."
        )
    return strict


@dataclass(eq=False)
class _Scope:
    """Where never-awaited dual calls are collected: a view, a command, a test, a task.

    *task* is ``None`` for an explicit scope (shared by every task started
    under it); for the implicit scope a task gets at its first dual call, the
    task itself, so that the scope does not leak to other tasks that inherit
    or receive the context (``async_to_sync`` copies it back to its caller).
    *live* holds the awaitables made in the scope, to find at its end those
    still referenced but never awaited (in a template context, a model field,
    a variable), kept only if the scope opened in strict mode (*track*);
    whether the scope fails is read again at its check (the setting may change
    inside it, as tests do).
    """

    task: asyncio.Task[Any] | None
    # Whether to keep *live*: strict mode when the scope opened (it is read
    # again at the check); production scopes pay nothing per call for it.
    track: bool = False
    pending: list[str] = field(default_factory=list)
    live: weakref.WeakSet[DualAwaitable[Any]] = field(default_factory=weakref.WeakSet)


_scope: contextvars.ContextVar[_Scope | None] = contextvars.ContextVar(
    "dualcall_scope", default=None
)


def _current_scope() -> _Scope | None:
    scope = _scope.get()
    if scope is not None and scope.task is not None and scope.task is not _current_task():
        return None
    return scope


def _current_task() -> asyncio.Task[Any] | None:
    try:
        return asyncio.current_task()
    except RuntimeError:  # no running loop
        return None


def open_scope() -> contextvars.Token[_Scope | None]:
    """Start a new scope in the current context; pass the token to :func:`check_scope`."""
    return _scope.set(_Scope(task=None, track=strict_mode()))


def close_scope(token: contextvars.Token[_Scope | None]) -> None:
    """Close the scope of *token* without checking it (its code raised); idempotent."""
    with contextlib.suppress(RuntimeError):  # "has already been used once"
        _scope.reset(token)


def check_scope(token: contextvars.Token[_Scope | None] | None = None) -> None:
    """Raise :class:`NotAwaitedError` in strict mode if the scope has a never-awaited call.

    With *token* (from :func:`open_scope`), the scope ends: it is closed, and
    awaitables made in it that are still referenced but were never awaited
    count as never awaited too.
    """
    scope = _current_scope()
    if token is not None:
        close_scope(token)
    if scope is None or not strict_mode():
        return
    messages = list(scope.pending)
    if token is not None:
        for awaitable in list(scope.live):
            if awaitable._state == _CREATED:
                awaitable._discard()
                messages.append(
                    f"{awaitable._name}() was not awaited by the end of the scope (called at "
                    f"{_location(awaitable._at)}; the awaitable is still referenced: stored "
                    "in a variable, a model field or a template context?)."
                )
    if messages:
        raise NotAwaitedError(
            " ".join(messages) + " (dualcall strict mode: the DUALCALL_STRICT setting; "
            "on by default under DEBUG and in tests.)"
        )


def scoped(func: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap the ``async def`` *func* so that each call is a scope, checked when it returns."""

    @functools.wraps(func)
    async def in_scope(*args: Any, **kwargs: Any) -> Any:
        token = open_scope()
        try:
            result = await func(*args, **kwargs)
            # Let tasks the code just created start, so that an awaitable it
            # handed to create_task() does not count as never awaited.
            await asyncio.sleep(0)
        except BaseException:
            close_scope(token)
            raise
        check_scope(token)
        return result

    return in_scope


def scoped_views(make_view_atomic: Callable[..., Any]) -> Callable[..., Any]:
    """Patch of ``BaseHandler.make_view_atomic``: in strict mode, each async view is a scope.

    Django calls it for every request, with the resolved view, and calls what
    it returns; wrapping there covers every async view (ASGI, the test
    client) without a middleware.
    """

    @functools.wraps(make_view_atomic)
    def make_view_atomic_(handler: Any, view: Any) -> Any:
        view = make_view_atomic(handler, view)
        if iscoroutinefunction(view) and strict_mode():
            return scoped(view)
        return view

    return make_view_atomic_


def _enter_scope(awaitable: DualAwaitable[Any]) -> None:
    """At each dual call: fail on an earlier mistake of this scope, or open one.

    A scope that failed keeps failing at every dual call until it ends.
    """
    scope = _current_scope()
    if scope is None:
        task = _current_task()
        if task is None:
            return
        scope = _Scope(task=task, track=strict_mode())
        _scope.set(scope)
    elif scope.pending:
        check_scope()
    if scope.track:
        scope.live.add(awaitable)


# -- the trampoline that attributes warnings to the caller's line -------------


# One line on purpose: the call is on the function's first line (see at_caller).
def _trampoline(func: Any, args: Any, kwargs: Any) -> Any: return func(*args, **kwargs)


_TRAMPOLINE_CODE: CodeType = _trampoline.__code__
_trampolines: dict[tuple[str, int, int], Any] = {}


def at_caller(func: Any, at: Where | None) -> Any:
    """Return a callable that calls *func* from a frame that looks like the caller's line.

    The awaitable runs *func* in a worker thread, so a warning it raises with
    ``stacklevel=2`` (Django's deprecation warnings at the start of a method,
    such as positional ``save()`` arguments) would name asgiref's line and be
    shown once for every call site.  Called through a one-line function whose
    code says it is at the caller's ``file:line`` and whose globals are the
    caller's module, the warning names the caller's line, with that module's
    warning registry, exactly as Django's ``a``-methods report it.
    """
    if at is None:
        return func
    filename, lineno, module_globals = at
    key = (filename, lineno, id(module_globals))
    trampoline = _trampolines.get(key)
    if trampoline is None:
        if len(_trampolines) > 4096:
            _trampolines.clear()
        code = _TRAMPOLINE_CODE.replace(co_filename=filename, co_firstlineno=lineno)
        trampoline = _make_function(code, module_globals)
        _trampolines[key] = trampoline

    def call(*args: Any, **kwargs: Any) -> Any:
        __tracebackhide__ = True
        return trampoline(func, args, kwargs)

    return call


def _make_function(code: CodeType, module_globals: dict[str, Any]) -> Any:
    from types import FunctionType

    return FunctionType(code, module_globals, "dualcall_call")


# -- the awaitable ------------------------------------------------------------

_CREATED, _STARTED, _DONE = 0, 1, 2


def _asyncio_frame(frame: FrameType) -> bool:
    """Whether *frame* runs asyncio's own code."""
    module = str(frame.f_globals.get("__name__", ""))
    return module == "asyncio" or module.startswith("asyncio.")


class DualAwaitable(Coroutine[Any, Any, T]):
    """The awaitable of a dual call: a coroutine that fails closed when misused.

    *coroutine* does the work; *name* (``Post.objects.exists``) and *at*
    (the caller's ``file:line``) are what the errors and reports say.
    """

    __slots__ = ("__weakref__", "_at", "_coroutine", "_name", "_state")

    def __init__(self, coroutine: Coroutine[Any, Any, T], name: str, at: Where | None) -> None:
        self._coroutine = coroutine
        self._name = name
        self._at = at
        self._state = _DONE
        try:
            _enter_scope(self)
        except BaseException:
            coroutine.close()  # never to be awaited: no stray warning
            raise
        self._state = _CREATED

    # The coroutine protocol: what asyncio uses.

    def __await__(self) -> Generator[Any, None, T]:
        self._state = _STARTED
        return self._coroutine.__await__()

    def send(self, value: Any) -> Any:
        """Start or resume the call (used by ``asyncio.Task``)."""
        self._state = _STARTED
        return self._coroutine.send(value)

    def throw(self, *args: Any) -> Any:
        """Raise an exception in the call (used by ``asyncio.Task``)."""
        self._state = _STARTED
        return self._coroutine.throw(*args)

    def close(self) -> None:
        """Close the call; one closed before it started is not reported as forgotten."""
        if self._state == _CREATED:
            self._state = _DONE
        self._coroutine.close()

    @property
    def __name__(self) -> str:
        return self._name

    @property
    def cr_code(self) -> Any:
        """The code of the wrapped coroutine (asyncio's task repr reads it)."""
        return getattr(self._coroutine, "cr_code", None)

    @property
    def cr_frame(self) -> Any:
        """The frame of the wrapped coroutine."""
        return getattr(self._coroutine, "cr_frame", None)

    @property
    def cr_running(self) -> bool:
        """Whether the wrapped coroutine is running."""
        return bool(getattr(self._coroutine, "cr_running", False))

    @property
    def cr_await(self) -> Any:
        """What the wrapped coroutine is awaiting."""
        return getattr(self._coroutine, "cr_await", None)

    def __repr__(self) -> str:
        return f"<dualcall awaitable {self._name}() called at {_location(self._at)}>"

    # Misuse: fail closed.

    def __bool__(self) -> bool:
        if _asyncio_frame(sys._getframe(1)):
            # asyncio's own code (Python 3.12+'s Task repr tests
            # ``task._coro`` for truth): a coroutine is true.
            return True
        short = _short(self._name)
        if self._state == _CREATED:
            self._discard()
            raise NotAwaitedTypeError(
                f"{self._name}() was not awaited, so it has no truth value (a coroutine is "
                f'always true). Write "if await ...{short}():" or "x = await ...{short}()" '
                f"(at {_location(self._at)})."
            )
        raise NotAwaitedTypeError(
            f"The awaitable of {self._name}() (at {_location(self._at)}) was tested for truth: "
            "it is always true, whatever its result. Keep the result: "
            f'"x = await ...{short}()", then test x.'
        )

    def _misuse(self, what: str) -> NotAwaitedError:
        short = _short(self._name)
        return NotAwaitedError(
            f"{self._name}() was not awaited: its coroutine was {what}, not its result. "
            f'Write "x = await ...{short}()" and use x (at {_location(self._at)}).'
        )

    def __str__(self) -> str:
        raise self._misuse("converted to text")

    def __format__(self, spec: str) -> str:
        raise self._misuse("formatted")

    def __eq__(self, other: object) -> bool:
        if other is self or _asyncio_frame(sys._getframe(1)):
            return other is self
        raise self._misuse("compared")

    def __ne__(self, other: object) -> bool:
        if other is self or _asyncio_frame(sys._getframe(1)):
            return other is not self
        raise self._misuse("compared")

    def __lt__(self, other: object) -> bool:
        raise self._misuse("compared")

    __le__ = __gt__ = __ge__ = __lt__

    __hash__ = object.__hash__  # asyncio keeps coroutines in dicts and sets

    def __iter__(self) -> Any:
        raise self._misuse("iterated")

    def __len__(self) -> int:
        raise self._misuse("measured with len()")

    def __contains__(self, item: object) -> bool:
        raise self._misuse("searched with in")

    def __getitem__(self, key: object) -> Any:
        raise self._misuse("indexed")

    def __copy__(self) -> Any:
        raise self._misuse("copied")

    def __deepcopy__(self, memo: Any) -> Any:
        raise self._misuse("copied")

    def __reduce_ex__(self, protocol: Any) -> Any:
        raise self._misuse("pickled")

    def __getattr__(self, attribute: str) -> Any:
        # Only reached for names the class does not define.  (``__qualname__``
        # cannot be a property: in a class body it names the class.)
        if attribute == "__qualname__":
            return self._name
        if attribute.startswith(("_", "cr_", "gi_", "ag_")):
            # Private names, and what code probing coroutines and generators
            # looks for (asyncio's task repr asks for ``gi_code``).
            raise AttributeError(attribute)
        # Not discarded: if the call is then dropped, it is reported as never
        # awaited as well.
        short = _short(self._name)
        raise NotAwaitedAttributeError(
            f"{self._name}() was not awaited: {attribute!r} was read from the coroutine it "
            f'returned, not from its result. Write "(await ...{short}()).{attribute}" or '
            f'"x = await ...{short}()" (at {_location(self._at)}).'
        )

    def _discard(self) -> None:
        """Close the call after a loud misuse, so it is not reported a second time."""
        if self._state == _CREATED:
            self._state = _DONE
            self._coroutine.close()

    def __del__(self) -> None:
        if self._state != _CREATED:
            return
        self._state = _DONE
        # Closed here, so Python does not add its own warning, attributed to
        # wherever the garbage collector happened to run.
        self._coroutine.close()
        message = (
            f"{self._name}() was never awaited, so it did not run (called at "
            f'{_location(self._at)}). Write "await ...{_short(self._name)}(...)".'
        )
        logger.error("%s", message)
        if self._at is not None:
            # A fresh registry: reported every time, not once per line.
            warnings.warn_explicit(
                f"coroutine '{self._name}' was never awaited",
                RuntimeWarning,
                self._at[0],
                self._at[1],
                module=self._at[2].get("__name__"),
                registry={},
            )
        scope = _scope.get()
        if scope is not None and strict_mode():
            scope.pending.append(message)


class DualAsyncIterator(AsyncIterator[T]):
    """The async iterator ``qs.iterator()`` returns in a coroutine; a sync ``for`` explains."""

    __slots__ = ("_iterator", "_name")

    def __init__(self, iterator: AsyncIterator[T], name: str) -> None:
        self._iterator = iterator
        self._name = name

    def __aiter__(self) -> DualAsyncIterator[T]:
        return self

    def __anext__(self) -> Any:
        return self._iterator.__anext__()

    async def aclose(self) -> None:
        """Close the underlying async generator."""
        aclose = getattr(self._iterator, "aclose", None)
        if aclose is not None:
            await aclose()

    def __iter__(self) -> Any:
        raise TypeError(
            f"{self._name}() called from a coroutine returns an async iterator: write "
            f'"async for row in ...{_short(self._name)}():", not "for".'
        )
