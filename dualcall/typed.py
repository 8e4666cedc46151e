"""Static types for what dualcall adds at run time.

* :class:`AwaitableAttrs`: the static type of ``instance.a``.  With the mypy
  plugin (``plugins = dualcall.mypy``) ``instance.a.<name>`` is a coroutine of
  the field's or relation's own type; without it, of ``Any``.
* :class:`AsyncAttrs`: a mixin for models, for type checkers that have no
  dualcall plugin (pyright): it declares ``a`` so that
  ``await choice.a.question`` is accepted (as ``Any``).  It adds nothing at
  run time, where ``Model.a`` is dualcall's descriptor.

Nothing here runs a query or changes Django's behaviour.
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, Generic, Self, TypeVar

__all__ = ["AsyncAttrs", "AwaitableAttrs"]

_M = TypeVar("_M")


class AwaitableAttrs(Generic[_M]):
    """The static type of ``instance.a`` for a model instance of type ``_M``.

    Each attribute is an awaitable of the instance's attribute of that name
    (at run time the object is a :class:`dualcall.namespace.Namespace`).  The
    mypy plugin gives each name its precise type and reports names that are
    no field or relation; other checkers see ``Any``.
    """

    __slots__ = ()

    if TYPE_CHECKING:

        def __getattr__(self, name: str) -> Coroutine[Any, Any, Any]:
            """An awaitable of the instance's attribute *name*."""


class AsyncAttrs:
    """Mixin that declares ``instance.a`` for type checkers without the plugin.

    ::

        class Choice(AsyncAttrs, models.Model):
            question = models.ForeignKey(Question, on_delete=models.CASCADE)

        question = await choice.a.question      # pyright: Any, no error

    Only needed for pyright (and other checkers with no plugin API); mypy with
    ``plugins = dualcall.mypy`` types ``a`` on every model.  At run time the
    mixin is empty: ``a`` stays dualcall's descriptor on ``Model``.
    """

    __slots__ = ()

    if TYPE_CHECKING:

        @property
        def a(self) -> AwaitableAttrs[Self]:
            """The awaitable namespace of this instance."""
