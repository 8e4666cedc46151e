"""Dual versions of Django's shortcuts and of ``prefetch_related_objects``.

Each function here is a :func:`dualcall.dualmethod`: called from sync code it
runs synchronously, exactly as Django's function; called directly from a
coroutine it returns an awaitable that runs Django's function off the event
loop (in the thread-sensitive worker thread, on the same connection as every
other awaited ORM call of the task)::

    question = get_object_or_404(Question, pk=pk)          # sync view
    question = await get_object_or_404(Question, pk=pk)    # async view
    await prefetch_related_objects(questions, "choice_set")

Inside the worker thread no event loop runs, so the ORM calls Django's
functions make (``queryset.get()``, evaluating ``queryset.filter()``) are
plain synchronous Django calls there.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, TypeVar

from django import shortcuts as _django_shortcuts
from django.db.models import query as _django_query

from .descriptors import dualmethod

if TYPE_CHECKING:
    from django.db.models import Manager, Model, QuerySet

__all__ = ["get_list_or_404", "get_object_or_404", "prefetch_related_objects"]

# The signatures are Django's (as django-stubs types them): in sync code the
# same types; the mypy plugin (dualcall.mypy) makes them awaitable in a coroutine.
_M = TypeVar("_M", bound="Model")


@dualmethod
def get_object_or_404(
    klass: type[_M] | Manager[_M] | QuerySet[_M], *args: Any, **kwargs: Any
) -> _M:
    """Return ``klass``'s object matching the query, or raise ``Http404``.

    Django's ``get_object_or_404``, dual: ``await`` it from a coroutine.
    *klass* may be a model, a manager or a QuerySet; ``MultipleObjectsReturned``
    is raised as with ``QuerySet.get()``.
    """
    result: _M = _django_shortcuts.get_object_or_404(klass, *args, **kwargs)
    return result


@dualmethod
def get_list_or_404(
    klass: type[_M] | Manager[_M] | QuerySet[_M], *args: Any, **kwargs: Any
) -> list[_M]:
    """Return the list of ``klass``'s objects matching the filter, or raise ``Http404``.

    Django's ``get_list_or_404``, dual: ``await`` it from a coroutine.  The
    list is evaluated off the event loop.
    """
    result: list[_M] = _django_shortcuts.get_list_or_404(klass, *args, **kwargs)
    return result


@dualmethod
def prefetch_related_objects(model_instances: Iterable[Model], *related_lookups: Any) -> None:
    """Populate the prefetch caches of *model_instances* for *related_lookups*.

    Django's ``prefetch_related_objects``, dual: ``await`` it from a coroutine
    (Django 5.0+ also has ``aprefetch_related_objects``; this one works on
    every supported version).  The instances may be a list of model instances
    of one model, as in Django.
    """
    _django_query.prefetch_related_objects(model_instances, *related_lookups)
