"""How a call site is classified.

A dual method asks two questions about where it is being called from:

* Does an event loop run in this thread?  (:func:`loop_running`)  When none
  does (plain sync code, and the worker threads that run awaitables), the
  method behaves as plain Django, down to the stack.
* Is the calling frame a coroutine?  (:func:`called_from_coroutine`)  Only a
  coroutine can await what it gets back, so only a coroutine gets an
  awaitable.  A sync helper called from async code gets a synchronous call
  (and Django's ``SynchronousOnlyOperation``), never an awaitable it would
  drop together with the write it stands for.

Frames that merely pass a call through are looked through to the frame that
called them: comprehension and generator-expression frames (so
``asyncio.gather(*[Q.objects.get(pk=i) for i in ids])`` works on Python
3.11; from 3.12 list, set and dict comprehensions have no frame, and only
``<genexpr>`` frames remain), Django's manager proxy methods (``manager_method``, which forwards
``Manager.x()`` to ``QuerySet.x()``) and the pure-Python call paths of wrapt.
"""

from __future__ import annotations

import inspect
import os
from asyncio import _get_running_loop
from collections.abc import Callable
from types import CodeType, FrameType

__all__ = [
    "add_pass_through",
    "async_unsafe_allowed",
    "called_from_coroutine",
    "describe_frame",
    "is_coroutine_frame",
    "is_library_frame",
    "loop_running",
    "set_native_probe",
]

# Code flags of a frame that can await: ``async def`` bodies (and async
# comprehensions, which 3.11 compiles as coroutines), async generators, and
# generator-based coroutines (``@types.coroutine``).
_ASYNC_FLAGS = inspect.CO_COROUTINE | inspect.CO_ASYNC_GENERATOR | inspect.CO_ITERABLE_COROUTINE


def _comprehension_frame_names() -> frozenset[str]:
    """Names of the frames comprehensions and generator expressions run in.

    Generator expressions always run in a ``<genexpr>`` frame.  List, set and
    dict comprehensions have frames of their own (``<listcomp>`` ...) up to
    Python 3.11; from 3.12 (PEP 709) they run inline in the enclosing frame.
    Detected by compiling one: does it make a code object of its own?
    """
    names = {"<genexpr>"}
    code = compile("[x for x in ()]", "<dualcall>", "eval")
    if any(isinstance(const, CodeType) for const in code.co_consts):
        names |= {"<listcomp>", "<setcomp>", "<dictcomp>"}
    return frozenset(names)


# Frames of these names are comprehensions or generator expressions: they are
# looked through to the frame that runs them.
_COMPREHENSIONS = _comprehension_frame_names()

# id(code) -> code for registered pass-through frames.  Keyed by identity:
# hashing a code object hashes its whole contents.  The values keep the code
# objects alive, so an id is never reused while it is registered.
_pass_through: dict[int, CodeType] = {}


def add_pass_through(code: CodeType) -> None:
    """Register *code* as a pure pass-through frame, looked through when classifying."""
    _pass_through[id(code)] = code


def loop_running() -> bool:
    """Return whether an event loop runs in the current thread."""
    return _get_running_loop() is not None


def async_unsafe_allowed() -> bool:
    """Return whether dualcall's pre-check guards stand aside here.

    ``DJANGO_ALLOW_ASYNC_UNSAFE`` switches Django's async guard off; and in
    a greenlet of the native path (:mod:`dualcall.native.run`) a lazy load's
    query runs natively, so it must not be refused before it is made.
    """
    return bool(os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")) or _native_probe()


def _no_native() -> bool:
    return False


_native_probe: Callable[[], bool] = _no_native


def set_native_probe(probe: Callable[[], bool]) -> None:
    """Install the native path's "is this a native greenlet?" test (used by the guards)."""
    global _native_probe
    _native_probe = probe


def is_coroutine_frame(frame: FrameType | None) -> bool:
    """Return whether *frame*, looked through pass-through frames, can await.

    This looks at the code only; :func:`called_from_coroutine` also requires
    a running loop.
    """
    while frame is not None:
        code = frame.f_code
        if code.co_flags & _ASYNC_FLAGS:
            return True
        if id(code) in _pass_through:
            frame = frame.f_back
            continue
        if code.co_name in _COMPREHENSIONS:
            # A comprehension belongs to the function that wrote it, which is
            # the frame that runs it only if that frame's code holds its code:
            # a generator a sync helper returns, consumed by a coroutine, is
            # the helper's (sync code).
            caller = frame.f_back
            if caller is None or code not in caller.f_code.co_consts:
                return False
            frame = caller
            continue
        return False
    return False


def called_from_coroutine(frame: FrameType | None) -> bool:
    """Return whether a call made in *frame* should get an awaitable.

    True when an event loop runs in this thread and *frame* (looked through
    pass-through frames) is a coroutine, an async generator or an async
    comprehension.  A coroutine driven by hand with no loop running is sync
    code: nothing could run the awaitable.
    """
    return _get_running_loop() is not None and is_coroutine_frame(frame)


# Folders of the packages whose frames are not the user's code: when an error
# names "where it happened", it names the first frame outside them.
_library_dirs: tuple[str, ...] = ()


def is_library_frame(frame: FrameType) -> bool:
    """Return whether *frame* runs code of Django, asgiref, wrapt or dualcall."""
    global _library_dirs
    if not _library_dirs:
        import asgiref
        import django
        import wrapt

        files = (django.__file__, asgiref.__file__, wrapt.__file__, __file__)
        _library_dirs = tuple(os.path.dirname(os.path.abspath(f or "")) + os.sep for f in files)
    return frame.f_code.co_filename.startswith(_library_dirs) or id(frame.f_code) in _pass_through


def describe_frame(frame: FrameType) -> tuple[str, str]:
    """Return ``(function, "file:line")`` naming *frame* for an error message.

    A comprehension is named after the function it belongs to.
    """
    location = f"{frame.f_code.co_filename}:{frame.f_lineno}"
    named: FrameType | None = frame
    while named is not None and named.f_code.co_name in _COMPREHENSIONS:
        named = named.f_back
    code = (named or frame).f_code
    return getattr(code, "co_qualname", code.co_name), location
