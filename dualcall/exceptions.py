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
plain QuerySet,       ``list(Choice.objects.all())`` in a coroutine      QUERYSET
from a coroutine
plain QuerySet,       ``list(qs)`` in a sync helper called from one      QUERYSET_IN_SYNC
from a sync function
QuerySet indexing     ``await qs[0]`` (indexing evaluates first)         QUERYSET_INDEX
dual call from a      ``Question.objects.count()`` in a sync helper      SYNC_CALL
sync function         called from a coroutine
lazy ``request.user`` ``request.user.is_staff`` in an async view         LAZY_USER
====================  =================================================  ===========

A message is built from class and field names only (never ``repr(instance)``,
which may run user code that queries).
"""

from __future__ import annotations

from django.core.exceptions import SynchronousOnlyOperation

__all__ = [
    "DEFERRED_FIELD",
    "GENERIC_FOREIGN_KEY",
    "LAZY_USER",
    "LAZY_USER_NO_AUSER",
    "QUERYSET",
    "QUERYSET_INDEX",
    "QUERYSET_IN_SYNC",
    "RELATED_OBJECT",
    "RELATED_OBJECTS",
    "SYNC_CALL",
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
_SYNC_FIX = (
    "{function}() is a sync function, so it gets the synchronous call (only a coroutine "
    "can await). Call it through sync_to_async (await sync_to_async({function})(...)), or "
)
QUERYSET_IN_SYNC = (
    "QuerySet of {model} cannot be evaluated synchronously in {function}() at {location}: "
    "an event loop runs in this thread. " + _SYNC_FIX + "evaluate the queryset in the "
    "coroutine with await queryset or async for."
)
SYNC_CALL = (
    "{call}() cannot run synchronously in {function}() at {location}: an event loop runs "
    "in this thread. " + _SYNC_FIX + "make the call in the coroutine: await {call}(...)."
)
QUERYSET_INDEX = (
    "QuerySet of {model} cannot be indexed from within an async context: indexing "
    "(queryset[0]) evaluates it synchronously, before any await. Use await queryset.first(), "
    "or await a slice: rows = await queryset[:1]."
)
LAZY_USER = (
    "request.user cannot be loaded synchronously from within an async context: reading it "
    "queries the session and the user. Use user = await request.auser() instead."
)
LAZY_USER_NO_AUSER = (
    "request.user cannot be loaded synchronously from within an async context: reading it "
    "queries the session and the user. Load it off the event loop: "
    "user = await sync_to_async(django.contrib.auth.get_user)(request)."
)


class UnprefetchedRelatedModelAccessError(SynchronousOnlyOperation):  # type: ignore[misc]
    """A synchronous attribute access would query the database from async code.

    Raised instead of Django's ``SynchronousOnlyOperation`` (of which it is a
    subclass, so existing handlers still catch it), with a message that names
    the model and the field and says how to fetch it.
    """


def describe(template: str, model: type | None, name: str = "", **extra: str) -> str:
    """Fill *template* for the relation or field *name* of *model*.

    The instance is called after the model (``Choice`` -> ``choice``), the
    namespace by the ``DUALCALL_NAMESPACE`` setting; *extra* fills the other
    fields (``function``, ``location``, ``call``).
    """
    from .namespace import namespace_name

    model_name = model.__name__ if model is not None else ""
    return template.format(
        model=model_name, name=name, var=model_name.lower(), namespace=namespace_name(), **extra
    )
