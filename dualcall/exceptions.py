"""The error classes, and the one message template of each case.

:class:`UnprefetchedRelatedModelAccessError` is what the guards of
:mod:`dualcall.guards` raise when a synchronous attribute access would query
the database while an event loop runs in the thread.  Each case has one
template, defined here and nowhere else:

====================  =================================================  ===========
case                  example                                            template
====================  =================================================  ===========
forward FK / O2O,     ``choice.question``, ``place.restaurant``          RELATED_OBJECT
reverse O2O
generic foreign key   ``comment.content_object``                         GENERIC_FOREIGN_KEY
related manager       ``list(question.choice_set.all())``                RELATED_OBJECTS
deferred field        ``Post.objects.defer("body")`` then ``post.body``  DEFERRED_FIELD
plain QuerySet        ``list(Choice.objects.all())``                     QUERYSET
====================  =================================================  ===========

A message is built from class and field names only (never ``repr(instance)``,
which may run user code that queries).
"""

from __future__ import annotations

from django.core.exceptions import SynchronousOnlyOperation

__all__ = [
    "DEFERRED_FIELD",
    "GENERIC_FOREIGN_KEY",
    "QUERYSET",
    "RELATED_OBJECT",
    "RELATED_OBJECTS",
    "UnprefetchedRelatedModelAccessError",
    "describe",
]

_ASYNC = "cannot be fetched synchronously from within an async context."

RELATED_OBJECT = (
    "Related model {model}.{name} " + _ASYNC + ' Use select_related("{name}") or '
    'prefetch_related("{name}") before accessing it, or await {var}.{namespace}.{name}.'
)
GENERIC_FOREIGN_KEY = (
    "Related model {model}.{name} " + _ASYNC + ' Use prefetch_related("{name}") before '
    "accessing it, or await {var}.{namespace}.{name}."
)
RELATED_OBJECTS = (
    "Related objects {model}.{name} " + _ASYNC + ' Use prefetch_related("{name}") before '
    "accessing them, or await {var}.{namespace}.{name}."
)
DEFERRED_FIELD = (
    "Deferred field {model}.{name} " + _ASYNC + " Load it with the queryset (do not defer() "
    "it) or await {var}.{namespace}.{name}."
)
QUERYSET = (
    "QuerySet of {model} cannot be evaluated synchronously from within an async context. "
    "Use await queryset (which returns a list) or async for instead."
)


class UnprefetchedRelatedModelAccessError(SynchronousOnlyOperation):  # type: ignore[misc]
    """A synchronous attribute access would query the database from async code.

    Raised instead of Django's ``SynchronousOnlyOperation`` (of which it is a
    subclass, so existing handlers still catch it), with a message that names
    the model and the field and says how to fetch it.
    """


def describe(template: str, model: type, name: str = "") -> str:
    """Fill *template* for the relation or field *name* of *model*.

    The instance is called after the model (``Choice`` -> ``choice``), the
    namespace by the ``DUALCALL_NAMESPACE`` setting.
    """
    from .namespace import namespace_name

    model_name = model.__name__
    return template.format(
        model=model_name, name=name, var=model_name.lower(), namespace=namespace_name()
    )
