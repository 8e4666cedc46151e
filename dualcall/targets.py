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

* ``QuerySet.__await__`` and ``RawQuerySet.__await__``: ``await qs``
  evaluates the queryset into a list.
* ``QuerySet.__aiter__``: ``async for`` runs natively where
  ``DUALCALL_NATIVE`` takes it (Django's own otherwise).
* ``BaseHandler.make_view_atomic``: in strict mode, wraps each async view in
  a scope that fails when a dual call made in it was never awaited (see
  :mod:`dualcall.awaitables`).
* ``django.db.transaction.get_connection``: aware of async atomic blocks (see
  :mod:`dualcall.transaction`).
* ``Model.a`` (the ``DUALCALL_NAMESPACE`` setting): the ``.a`` namespace
  (see :mod:`dualcall.namespace`).
* ``ModelIterable.__iter__`` and (6.1) ``QuerySet.fetch_mode``: peers for
  ``.a`` (see :mod:`dualcall.peers`).
* The sync-access guards (:func:`guards`; see :mod:`dualcall.guards`): each
  listed method, and ``_apply_rel_filters`` of every related manager class
  (a rule of :func:`class_rules`, like the dual methods).

The dual names are those of Django 4.2 to 6.1, which define the same set; the
guarded methods depend on the version (Django 6.1's fetch modes, detected by
feature in :mod:`dualcall.compat`).  The canary tests check that each one
exists on the supported versions.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from types import CodeType
from typing import Any

from .descriptors import ASYNC_ITERATOR, AWAITABLE

__all__ = [
    "MODEL_METHODS",
    "QUERYSET_METHODS",
    "RELATED_MANAGER_METHODS",
    "additions",
    "class_rules",
    "guards",
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


#: A rule takes a class and yields the ``(owner, name, value)`` changes it needs.
Rule = Callable[[type], Iterator[tuple[type, str, Any]]]


def class_rules() -> list[tuple[type, Rule]]:
    """Return ``(root, rule)`` pairs: what every class under *root* needs.

    ``patch()`` applies each rule to every existing class under its root
    (parents first) and, through one ``__init_subclass__`` hook per root, to
    every class created while patched.
    """
    from django.db.models.manager import BaseManager

    from .guards import related_manager_guards
    from .patching import dual_methods
    from .peers import related_manager_writes

    rules: list[tuple[type, Rule]] = [
        (root, functools.partial(dual_methods, root=root, names=names))
        for root, names in roots()
    ]
    # Related managers are classes Django builds per relation.
    rules.append((BaseManager, related_manager_guards))
    rules.append((BaseManager, related_manager_writes))
    return rules


def additions() -> Iterator[tuple[object, str, Any]]:
    """Yield ``(owner, name, value)`` for each attribute dualcall adds or replaces."""
    from django.core.handlers.base import BaseHandler
    from django.db import transaction
    from django.db.models import QuerySet
    from django.db.models.query import RawQuerySet

    from .awaitables import scoped_views
    from .descriptors import queryset_aiter, queryset_await
    from .transaction import _block_connection

    yield QuerySet, "__await__", queryset_await
    yield RawQuerySet, "__await__", queryset_await
    # ``async for`` over a queryset: native where DUALCALL_NATIVE takes it.
    yield QuerySet, "__aiter__", queryset_aiter(vars(QuerySet)["__aiter__"])
    # Strict mode: a never-awaited dual call fails the async view that made it.
    yield BaseHandler, "make_view_atomic", scoped_views(vars(BaseHandler)["make_view_atomic"])
    # Connection lookups from a coroutine inside ``async with atomic()`` (for
    # ``transaction.on_commit()``) go to the block's connection.
    yield transaction, "get_connection", _block_connection
    # Django's async_unsafe tells a native greenlet that it refused it.
    from django.utils import asyncio as django_asyncio

    from .native import get_running_loop

    yield django_asyncio, "get_running_loop", get_running_loop
    # The sync-access guards and the ``.a`` namespace (issue 3).
    from .guards import guard_additions
    from .namespace import namespace_addition

    yield from guard_additions()
    yield namespace_addition()
    # Peers for .a (issue 14): the instances of one evaluation know each other.
    yield from peer_additions()


def peer_additions() -> Iterator[tuple[object, str, Any]]:
    """Yield the changes that track peers (see :mod:`dualcall.peers`).

    ``ModelIterable.__iter__`` records each evaluation's instances; where
    querysets have ``fetch_mode()`` (Django 6.1), it remembers that the user
    chose the mode, which then stands.
    """
    from django.db.models import QuerySet
    from django.db.models.query import ModelIterable

    from .peers import marked_fetch_mode, tracked_iter

    yield ModelIterable, "__iter__", tracked_iter(vars(ModelIterable)["__iter__"])
    fetch_mode = vars(QuerySet).get("fetch_mode")
    if fetch_mode is not None:
        yield QuerySet, "fetch_mode", marked_fetch_mode(fetch_mode)


def guards() -> Iterator[tuple[type, str, Callable[[Any], Any]]]:
    """Yield ``(owner, method name, guard)`` for each method a sync-access guard wraps.

    *guard* takes the function found in ``vars(owner)`` and returns the
    :class:`~dualcall.guards.SyncGuard` that replaces it.  Django calls each
    of these methods only on a path that is about to query.
    """
    from django.apps import apps
    from django.db.models import QuerySet
    from django.db.models.fields.related_descriptors import (
        ForwardManyToOneDescriptor,
        ReverseOneToOneDescriptor,
    )
    from django.db.models.query_utils import DeferredAttribute

    from . import guards as guard
    from .compat import generic_foreign_key_accessor, is_fetcher
    from .exceptions import DEFERRED_FIELD, GENERIC_FOREIGN_KEY, RELATED_OBJECT

    yield QuerySet, "_fetch_all", guard.guard_evaluation
    # Single-valued lazy loads: (class, message template, the name the message
    # uses, and where the class does not load through Django 6.1's fetch
    # modes, the method its __get__ calls only to query, with its guard).
    loads: list[tuple[type, str, Callable[[Any], str], str, Callable[[Any], Any]]] = [
        (ForwardManyToOneDescriptor, RELATED_OBJECT, guard.fetched_field_name,
         "get_queryset", guard.guard_forward_relation),
        (ReverseOneToOneDescriptor, RELATED_OBJECT, guard.fetched_reverse_accessor,
         "get_queryset", guard.guard_reverse_one_to_one),
        (DeferredAttribute, DEFERRED_FIELD, guard.fetched_field_attname,
         "_check_parent_chain", guard.guard_deferred_field),
    ]
    if apps.is_installed("django.contrib.contenttypes"):
        # The GenericForeignKey field itself, or (6.1) its descriptor.
        loads.append((generic_foreign_key_accessor(), GENERIC_FOREIGN_KEY,
                      guard.fetched_field_name, "get_content_type",
                      guard.guard_generic_foreign_key))
    for cls, template, name_of, method, guard_method in loads:
        if is_fetcher(cls):  # 6.1: guard fetch_one and fetch_many
            yield from guard.fetcher_guards(cls, template, name_of)
        else:
            yield cls, method, guard_method


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
