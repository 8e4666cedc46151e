"""The dual-call descriptor, its bound form, and :func:`dualmethod`.

A :class:`DualMethod` replaces a method in a class ``__dict__`` (or wraps a
plain function).  Looking it up does one of two things:

* No event loop runs in this thread: the lookup returns the original bound
  method, exactly what Django would have returned.  Sync code pays one
  Python-level ``__get__`` and sees no extra frame, no extra behaviour.
* An event loop runs in this thread: the lookup returns a
  :class:`BoundDualMethod`.  Called directly from a coroutine it returns an
  awaitable that runs the original method off the loop; called from a sync
  frame it runs the original synchronously (and Django's async guard raises as
  usual).  ``__acall__`` always returns the awaitable.

The decision between "awaitable" and "synchronous" is made at call time from
the calling frame (see :mod:`dualcall.context`), because a bound method may be
looked up in one place and called in another (``sync_to_async(obj.save)``
looks ``save`` up in a coroutine and calls it in a worker thread).
"""

from __future__ import annotations

import functools
import inspect
import sys
from asyncio import _get_running_loop
from collections.abc import AsyncIterator, Callable
from types import FrameType, FunctionType, MethodType
from typing import Any, TypeVar, cast

import wrapt
from django.core.exceptions import SynchronousOnlyOperation

from .awaitables import DualAsyncIterator, where
from .context import (
    add_pass_through,
    called_from_coroutine,
    describe_frame,
    is_library_frame,
)
from .exceptions import SYNC_CALL, UnprefetchedRelatedModelAccessError, describe
from .executor import run_sync
from .native import plan_aiter as native_plan_aiter
from .native import plan_iterator as native_plan_iterator

__all__ = ["ASYNC_ITERATOR", "AWAITABLE", "BoundDualMethod", "DualMethod", "dualmethod"]

F = TypeVar("F", bound=Callable[..., Any])

#: Kind of a dual method whose async form is an awaitable of its result.
AWAITABLE = "awaitable"
#: Kind of a dual method whose async form is an async iterator: the method
#: ``x`` of a class that also has ``ax`` (``iterator`` / ``aiterator``).
ASYNC_ITERATOR = "async-iterator"


class _DualCall:
    """The wrapt wrapper function of a :class:`DualMethod`: decides per call."""

    __slots__ = ("kind", "name")

    def __init__(self, name: str, kind: str) -> None:
        self.name = name
        self.kind = kind

    def __call__(
        self,
        wrapped: Callable[..., Any],
        instance: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        __tracebackhide__ = True
        # Frame 1 is the caller: wrapt's C extension calls us without a frame
        # of its own (its pure-Python fallback is a registered pass-through).
        frame = sys._getframe(1)
        if called_from_coroutine(frame):
            return self.acall(wrapped, instance, args, kwargs, frame)
        try:
            return wrapped(*args, **kwargs)
        except SynchronousOnlyOperation as exc:
            # A sync function called from async code made this call: say so,
            # and how to fix it, unless a more precise message stands.
            if (
                isinstance(exc, UnprefetchedRelatedModelAccessError)
                and not getattr(exc, "dualcall_plain_queryset", False)
            ) or is_library_frame(frame):
                raise
            function, location = describe_frame(frame)
            error = UnprefetchedRelatedModelAccessError(
                describe(
                    SYNC_CALL,
                    None,
                    call=self.qualname(instance),
                    function=function,
                    location=location,
                )
            )
            raise error from exc

    def acall(
        self,
        wrapped: Callable[..., Any],
        instance: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        frame: FrameType,
    ) -> Any:
        """Return the async form of the call: an awaitable, or an async iterator.

        *frame* is the caller's: warnings and misuse reports name its line.
        """
        if self.kind == ASYNC_ITERATOR and instance is not None:
            native = native_plan_iterator(instance, args, kwargs)
            async_iterator: AsyncIterator[Any] = (
                native
                if native is not None
                else getattr(instance, "a" + self.name)(*args, **kwargs)
            )
            return DualAsyncIterator(async_iterator, self.qualname(instance))
        return run_sync(wrapped, args, kwargs, self.qualname(instance), where(frame))

    def qualname(self, instance: Any) -> str:
        """Name the call: ``Question.objects.count``, ``Question.save``, ``helper``.

        A queryset is ``Question QuerySet.count``; a related manager
        ``Question.choice_set.add``.
        """
        if instance is None:
            return self.name
        if isinstance(instance, type):
            return f"{instance.__name__}.{self.name}"
        model = getattr(instance, "model", None)
        if isinstance(model, type) and not hasattr(instance, "_meta"):
            if getattr(instance, "query", None) is not None:  # a QuerySet
                return f"{model.__name__} QuerySet.{self.name}"
            if getattr(instance, "name", None):  # a model's manager
                return f"{model.__name__}.{instance.name}.{self.name}"
            if hasattr(instance, "instance"):  # a related manager
                from .guards import related_manager_accessor

                owner = type(instance.instance).__name__
                return f"{owner}.{related_manager_accessor(instance)}.{self.name}"
        return f"{type(instance).__name__}.{self.name}"


class BoundDualMethod(wrapt.BoundFunctionWrapper):  # type: ignore[type-arg]
    """A dual method bound to an instance, handed out while an event loop runs.

    Calling it from a coroutine returns an awaitable; calling it from a sync
    frame runs the method synchronously.  :meth:`__acall__` always returns the
    awaitable (or, for ``iterator``, the async iterator).
    """

    def __acall__(self, *args: Any, **kwargs: Any) -> Any:
        """Return the awaitable form of this call, wherever it is made from."""
        dual = cast(_DualCall, self._self_wrapper)
        return dual.acall(self.__wrapped__, self._self_instance, args, kwargs, sys._getframe(1))


# A dual method bound to an instance where no event loop runs: Django's own call.
#
# A ``functools.partial`` of the original function and the instance: calling
# it calls the function in C, with no frame of dualcall's (so the stack, and
# the line a warning names, are exactly Django's), and it reads like a bound
# method (``__self__``, ``__func__``, ``__name__``, ``__doc__``, the
# signature without ``self``, the function's attributes such as
# ``alters_data``; equal when instance and function are; pickled as the
# attribute lookup; ``isinstance(m, types.MethodType)`` and so
# ``inspect.ismethod()`` are true, through ``__class__``, since Django's
# ``method_has_no_args()`` and others branch on it).  It adds ``__acall__``, so that
# ``asyncio.run(Question.objects.count.__acall__())`` works in sync code: a
# plain bound method cannot carry that (its attribute lookups go to the
# function, which knows no instance).  (The class docstring is the
# function's: see ``__doc__``.)
class SyncBoundMethod(functools.partial):  # type: ignore[type-arg]
    __slots__ = ("_dual",)
    _dual: _DualCall

    @property
    def __doc__(self) -> str | None:  # type: ignore[override]
        return self.func.__doc__

    @property  # type: ignore[misc]
    def __class__(self) -> type:
        return MethodType

    @property
    def __signature__(self) -> inspect.Signature:
        return inspect.signature(MethodType(self.func, self.args[0]))

    @property
    def __self__(self) -> Any:
        return self.args[0]

    @property
    def __func__(self) -> Any:
        return self.func

    def __getattr__(self, name: str) -> Any:
        return getattr(self.func, name)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (SyncBoundMethod, MethodType)):
            return self.__self__ is other.__self__ and self.func == other.__func__
        return NotImplemented

    def __hash__(self) -> int:
        # Equal to Django's bound method of the same function and instance.
        return hash(MethodType(self.func, self.args[0]))

    @property
    def __dict__(self) -> dict[str, Any]:  # type: ignore[override]
        # The function's, as for a bound method (functools.wraps copies it).
        return self.func.__dict__

    def __repr__(self) -> str:
        return MethodType(self.func, self.args[0]).__repr__()

    def __reduce__(self) -> Any:
        return getattr, (self.args[0], self.func.__name__)

    def __acall__(self, *args: Any, **kwargs: Any) -> Any:
        """Return the awaitable form of this call (run it with ``asyncio.run()``)."""
        dual: _DualCall = self._dual
        bound = MethodType(self.func, self.args[0])
        return dual.acall(bound, self.args[0], args, kwargs, sys._getframe(1))


class DualMethod(wrapt.FunctionWrapper):  # type: ignore[type-arg]
    """A descriptor that makes the wrapped function or method dual.

    *name* is what warnings call the method (the owner's class name is added
    at call time); *kind* is :data:`AWAITABLE` or :data:`ASYNC_ITERATOR`.
    Attributes of the wrapped function (``alters_data``, ``queryset_only``,
    ``__doc__``, the signature) read through the wrapper.
    """

    __bound_function_wrapper__ = BoundDualMethod

    def __init__(
        self, wrapped: Callable[..., Any], name: str | None = None, kind: str = AWAITABLE
    ) -> None:
        if name is None:
            name = getattr(wrapped, "__name__", None) or type(wrapped).__name__
        dual = _DualCall(name, kind)
        super().__init__(wrapped, dual)
        # What a lookup returns where no loop runs, kept for the hot path below:
        # for a plain function, a SyncBoundMethod; otherwise (classmethod,
        # staticmethod) the wrapped object's own binding.
        self._self_bind: Callable[..., Any]
        if isinstance(wrapped, FunctionType):

            def bind(instance: Any, owner: type | None = None) -> Any:
                if instance is None:
                    return wrapped
                method = SyncBoundMethod(wrapped, instance)
                method._dual = dual
                return method

            self._self_bind = bind
        else:
            self._self_bind = wrapped.__get__

    def __get__(
        self, instance: Any, owner: type | None = None, _no_loop: Any = _get_running_loop
    ) -> Any:
        # Hot path: every lookup of a dual method in sync code comes here.
        if _no_loop() is None:
            # No loop in this thread: hand out exactly what Django would.
            return self._self_bind(instance, owner)
        return super().__get__(instance, owner)

    def __acall__(self, *args: Any, **kwargs: Any) -> Any:
        """Return the awaitable form of a call to the unbound function."""
        dual = cast(_DualCall, self._self_wrapper)
        return dual.acall(self.__wrapped__, None, args, kwargs, sys._getframe(1))


def dualmethod(func: F) -> F:
    """Make *func* dual: synchronous when called normally, awaitable from a coroutine.

    Works on plain functions, methods, classmethods and staticmethods, and on
    QuerySet methods copied onto managers by ``as_manager()`` /
    ``from_queryset()``::

        class PostQuerySet(models.QuerySet):
            @dualmethod
            def publish_all(self):
                return self.update(published=True)

        Post.objects.publish_all()          # sync code
        await Post.objects.publish_all()    # async code

    For type checkers the decorated function keeps its sync signature; with
    dualcall's mypy plugin (``plugins = dualcall.mypy``) a call made in a
    coroutine is typed as a coroutine of its result.
    """
    if isinstance(func, DualMethod):
        return func
    inner = func.__func__ if isinstance(func, (classmethod, staticmethod)) else func
    return cast(F, DualMethod(func, inner.__name__))


def _register_wrapt_pass_through() -> None:
    """Look through wrapt's pure-Python call frames (used without its C extension)."""
    import wrapt.wrappers  # type: ignore[import-untyped]

    for name in ("_FunctionWrapperBase", "BoundFunctionWrapper", "PartialCallableObjectProxy"):
        call = vars(getattr(wrapt.wrappers, name, object)).get("__call__")
        code = getattr(call, "__code__", None)
        if code is not None:
            add_pass_through(code)


_register_wrapt_pass_through()


def _evaluate(queryset: Any) -> list[Any]:
    return list(queryset)


# The native path (dualcall.native) recognizes ``await qs`` by this mark.
_evaluate.dualcall_native = "evaluate"  # type: ignore[attr-defined]


def queryset_await(self: Any) -> Any:
    """``await queryset``: evaluate it off the event loop and return a list.

    The results are cached on the queryset, as ``list(queryset)`` caches them.
    """
    name = f"{self.model.__name__} QuerySet.__await__"
    return run_sync(_evaluate, (self,), {}, name, where(sys._getframe(1))).__await__()


def queryset_aiter(original: Callable[..., Any]) -> Callable[..., Any]:
    """``async for item in queryset``: natively where :mod:`dualcall.native` takes it.

    Otherwise Django's own ``QuerySet.__aiter__`` (*original*): the queryset
    is evaluated off the event loop, then its items are handed out.
    """

    def __aiter__(self: Any) -> Any:
        native = native_plan_aiter(self)
        return native if native is not None else original(self)

    __aiter__.__wrapped__ = original  # type: ignore[attr-defined]
    __aiter__.__doc__ = original.__doc__
    return __aiter__
