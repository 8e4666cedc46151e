"""What dualcall patches, as data.

Three roots carry every dual method.  A class under a root resolves each of
the root's dual names to a :class:`~dualcall.descriptors.DualMethod`: where the
name resolves to a plain function (Django's own, a user override, a mixin's),
that function is wrapped on the class that needs it.  Classes created after
``patch()`` (models defined later, related managers, which Django builds per
relation on first use) get the same treatment from an ``__init_subclass__``
hook on the root.

=====================  ===========  =========================================
what                   root         where the functions live
=====================  ===========  =========================================
QuerySet methods       QuerySet     ``QuerySet``; custom QuerySets' overrides
manager methods        BaseManager  the proxies ``from_queryset()`` copies
                                    onto ``Manager``; custom managers; the
                                    related managers of reverse foreign keys,
                                    many-to-many (both directions) and
                                    generic relations, which define
                                    ``add``/``remove``/... and, on some
                                    versions, ``count``/``exists`` themselves
model methods          Model        ``Model``; models' overrides (``save()``)
=====================  ===========  =========================================

Additions and replacements:

* ``QuerySet.__await__``: ``await qs`` evaluates the queryset into a list.
* ``django.db.transaction.get_connection``: aware of async atomic blocks (see
  :mod:`dualcall.transaction`).

The names are those of Django 4.2 and 5.2, which define the same set; the
canary tests check that each one exists on the supported versions.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from types import CodeType
from typing import Any

from .descriptors import ASYNC_ITERATOR, AWAITABLE

__all__ = [
    "MODEL_METHODS",
    "QUERYSET_METHODS",
    "RELATED_MANAGER_METHODS",
    "additions",
    "pass_through_codes",
    "roots",
]

#: QuerySet methods that query; managers proxy each of them.
QUERYSET_METHODS: dict[str, str] = {
    name: AWAITABLE
    for name in (
        "get", "create", "get_or_create", "update_or_create", "bulk_create", "bulk_update",
        "count", "aggregate", "first", "last", "earliest", "latest", "in_bulk", "delete",
        "update", "exists", "contains", "explain",
    )
}
QUERYSET_METHODS["iterator"] = ASYNC_ITERATOR

#: Methods that related managers define on top of the manager methods.
RELATED_MANAGER_METHODS: dict[str, str] = {
    name: AWAITABLE
    for name in ("add", "remove", "clear", "set", "create", "get_or_create", "update_or_create")
}

#: Model instance methods that query.
MODEL_METHODS: dict[str, str] = {
    name: AWAITABLE
    for name in (
        "save", "delete", "refresh_from_db", "full_clean", "validate_unique",
        "validate_constraints",
    )
}


def roots() -> list[tuple[type, dict[str, str]]]:
    """Return each root class with its dual names and their kinds."""
    from django.db.models import Model, QuerySet
    from django.db.models.manager import BaseManager

    return [
        (QuerySet, QUERYSET_METHODS),
        (BaseManager, {**QUERYSET_METHODS, **RELATED_MANAGER_METHODS}),
        (Model, MODEL_METHODS),
    ]


def additions() -> Iterator[tuple[object, str, Callable[..., Any]]]:
    """Yield ``(owner, name, value)`` for each attribute dualcall adds or replaces."""
    from django.db import transaction
    from django.db.models import QuerySet

    from .descriptors import queryset_await
    from .transaction import _block_connection

    yield QuerySet, "__await__", queryset_await
    # Connection lookups from a coroutine inside ``async with atomic()`` (for
    # ``transaction.on_commit()``) go to the block's connection.
    yield transaction, "get_connection", _block_connection


def pass_through_codes() -> list[CodeType]:
    """Return the code of Django's frames that only forward a call.

    ``BaseManager._get_queryset_methods()`` builds every manager proxy
    (``Manager.get`` -> ``QuerySet.get``) from one inner function,
    ``manager_method``; all proxies share its code object.
    """
    from django.db.models import QuerySet
    from django.db.models.manager import BaseManager

    proxy = BaseManager._get_queryset_methods(QuerySet)["count"]
    return [proxy.__code__]
