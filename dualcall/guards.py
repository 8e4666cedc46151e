"""The sync-access guards that raise :class:`UnprefetchedRelatedModelAccessError`.

A synchronous attribute access that would query while an event loop runs in
the thread makes Django raise ``SynchronousOnlyOperation`` with a message that
names no field.  The guards raise the same thing (a subclass) naming the model,
the field and the fix.  They sit only on the paths that query, never on the
paths that read a loaded, cached, ``select_related``ed or prefetched value:

========================  ============================================  =============
access                    guarded method (only called to query)         how
========================  ============================================  =============
any QuerySet evaluation   ``QuerySet._fetch_all``                       translates
related manager           ``RelatedManager._apply_rel_filters`` of      marks the
(``question.choice_set``) reverse FK, M2M and generic relation          queryset
                          managers (not called for a prefetch)
========================  ============================================  =============

Single-valued lazy loads, where Django loads through fetch modes (6.1,
:func:`dualcall.compat.is_fetcher`): each fetcher's ``fetch_one`` and
``fetch_many`` translate (``FETCH_RAISE`` calls neither, so Django's
``FieldFetchBlocked`` stands; ``FETCH_PEERS`` calls ``fetch_many``, whose
error names the field too):

========================  ============================================  =============
access                    fetcher                                       how
========================  ============================================  =============
forward FK / O2O          ``ForwardManyToOneDescriptor``                translates
reverse O2O               ``ReverseOneToOneDescriptor``                 translates
deferred field            ``DeferredAttribute``                         translates
generic foreign key       ``GenericForeignKeyDescriptor``               translates
========================  ============================================  =============

Where each ``__get__`` queries itself (4.2, 5.2, 6.0):

========================  ============================================  =============
access                    guarded method (only called to query)         how
========================  ============================================  =============
forward FK / O2O          ``ForwardManyToOneDescriptor.get_queryset``   marks the
(``choice.question``)     (``instance=`` hint: ``get_object()``)        queryset
reverse O2O               ``ReverseOneToOneDescriptor.get_queryset``    marks the
(``place.restaurant``)    (``instance=`` hint: ``__get__``)             queryset
deferred field            ``DeferredAttribute._check_parent_chain``     pre-check
generic foreign key       ``GenericForeignKey.get_content_type(id=)``   pre-check
                          called from ``GenericForeignKey.__get__``
========================  ============================================  =============

*Translates*: Django's own ``SynchronousOnlyOperation``, raised when the query
is attempted, becomes ours (``raise ... from exc``), so the error appears
exactly where Django's would, and never where no query runs
(``Choice.objects.none()`` still evaluates).  A queryset made by a relation
carries the relation on its ``Query`` (copied by every clone), so the message
names the relation; any other queryset gets the plain QuerySet message.
*Pre-check*: raises before a query that Django would certainly make next.

Each guarded method is a :class:`SyncGuard` in the class ``__dict__``: where no
event loop runs in the thread (sync code, the threads that run awaitables)
looking it up returns Django's own bound method, so sync code runs exactly
Django's code.  ``DJANGO_ALLOW_ASYNC_UNSAFE`` keeps Django's behaviour.
The targets are data in :func:`dualcall.targets.guards`.
"""

from __future__ import annotations

import functools
import sys
from asyncio import _get_running_loop
from collections.abc import Callable, Iterator
from types import CodeType, FrameType, FunctionType, MethodType
from typing import Any

from django.core.exceptions import SynchronousOnlyOperation

from .compat import pk_is_set, unsaved_deferred_read_raises
from .context import async_unsafe_allowed, describe_frame, is_coroutine_frame, is_library_frame
from .exceptions import (
    DEFERRED_FIELD,
    GENERIC_FOREIGN_KEY,
    LAZY_USER,
    LAZY_USER_NO_AUSER,
    QUERYSET,
    QUERYSET_IN_SYNC,
    QUERYSET_INDEX,
    RELATED_OBJECT,
    RELATED_OBJECTS,
    UnprefetchedRelatedModelAccessError,
    describe,
)

__all__ = [
    "ORIGIN",
    "SyncGuard",
    "evaluation_message",
    "guard_additions",
    "guard_deferred_field",
    "guard_evaluation",
    "guard_fetcher",
    "guard_forward_relation",
    "guard_generic_foreign_key",
    "guard_related_manager",
    "guard_reverse_one_to_one",
    "related_manager_accessor",
    "related_manager_guards",
]

#: The attribute of a ``Query`` that names the relation it was made for:
#: ``(template, model, name)``.  ``Query.clone()`` copies it to every derived
#: queryset (``.filter()``, ``.get()``, slicing).
ORIGIN = "_dualcall_origin"

#: The method of a related manager class that the related-manager guard wraps.
RELATED_MANAGER_METHOD = "_apply_rel_filters"


class SyncGuard:
    """A method that is Django's own unless an event loop runs in the thread.

    ``__get__`` returns the original bound method where no loop runs, and
    *guarded* bound to the instance where one does.
    """

    __slots__ = ("__wrapped__", "guarded")

    def __init__(self, wrapped: FunctionType, guarded: Callable[..., Any]) -> None:
        self.__wrapped__ = wrapped
        self.guarded = guarded

    def __get__(
        self, instance: Any, owner: type | None = None, _no_loop: Any = _get_running_loop
    ) -> Any:
        # Hot path (every queryset evaluation in sync code): one C call.
        if _no_loop() is None or instance is None:
            return self.__wrapped__.__get__(instance, owner)
        return MethodType(self.guarded, instance)


def _mark(queryset: Any, template: str, model: type, name: str) -> None:
    setattr(queryset.query, ORIGIN, (template, model, name))


def guard_evaluation(fetch_all: FunctionType) -> SyncGuard:
    """Guard ``QuerySet._fetch_all``: translate Django's error into ours."""

    def _fetch_all(queryset: Any) -> None:
        try:
            fetch_all(queryset)
        except UnprefetchedRelatedModelAccessError:
            raise
        except SynchronousOnlyOperation as exc:
            origin = getattr(queryset.query, ORIGIN, None)
            if origin:
                raise UnprefetchedRelatedModelAccessError(describe(*origin)) from exc
            error = UnprefetchedRelatedModelAccessError(
                evaluation_message(queryset.model, sys._getframe(1))
            )
            # A dual method called from a sync function may say it better
            # (see dualcall.descriptors).
            error.dualcall_plain_queryset = True
            raise error from exc

    return SyncGuard(fetch_all, _fetch_all)


def evaluation_message(model: type, frame: FrameType | None) -> str:
    """The message for a plain queryset of *model* evaluated in *frame*, fit for where.

    Walks out of library frames to the user's: from a coroutine, the advice
    is ``await``; from a sync function, how to call that function; when the
    evaluation is the lazy ``request.user`` loading, ``request.auser()``; when
    it is indexing, ``first()`` or a slice.
    """
    lazy_user, getitem = _special_codes()
    indexed = False
    while frame is not None and is_library_frame(frame):
        if frame.f_code is lazy_user:
            return LAZY_USER if _has_auser() else LAZY_USER_NO_AUSER
        indexed = indexed or frame.f_code is getitem
        frame = frame.f_back
    if frame is None or is_coroutine_frame(frame):
        return describe(QUERYSET_INDEX if indexed else QUERYSET, model)
    function, location = describe_frame(frame)
    return describe(QUERYSET_IN_SYNC, model, function=function, location=location)


@functools.cache
def _special_codes() -> tuple[CodeType | None, CodeType]:
    """The code of Django's lazy ``request.user`` loader and of ``QuerySet.__getitem__``."""
    from django.apps import apps
    from django.db.models import QuerySet

    lazy_user = None
    if apps.is_installed("django.contrib.auth"):
        # Canary: tests/test_canary_guards.py pins middleware.get_user.
        from django.contrib.auth import middleware

        lazy_user = middleware.get_user.__code__
    getitem = vars(QuerySet)["__getitem__"]
    return lazy_user, getattr(getitem, "__wrapped__", getitem).__code__


def _has_auser() -> bool:
    """Whether Django gives requests ``auser()`` (5.0+)."""
    from django.contrib.auth import middleware

    return hasattr(middleware, "auser")


def guard_forward_relation(get_queryset: FunctionType) -> SyncGuard:
    """Guard ``ForwardManyToOneDescriptor.get_queryset``: mark the queryset of ``get_object()``."""

    def guarded(descriptor: Any, **hints: Any) -> Any:
        queryset = get_queryset(descriptor, **hints)
        instance = hints.get("instance")
        if instance is not None:
            _mark(queryset, RELATED_OBJECT, type(instance), descriptor.field.name)
        return queryset

    return SyncGuard(get_queryset, guarded)


def guard_reverse_one_to_one(get_queryset: FunctionType) -> SyncGuard:
    """Guard ``ReverseOneToOneDescriptor.get_queryset``: mark the queryset of ``__get__``."""

    def guarded(descriptor: Any, **hints: Any) -> Any:
        queryset = get_queryset(descriptor, **hints)
        instance = hints.get("instance")
        if instance is not None:
            accessor = descriptor.related.get_accessor_name()
            _mark(queryset, RELATED_OBJECT, type(instance), accessor)
        return queryset

    return SyncGuard(get_queryset, guarded)


def related_manager_accessor(manager: Any) -> str:
    """Return the attribute name of the relation a related manager serves (``choice_set``)."""
    if hasattr(manager, "through"):  # many-to-many, either direction
        if manager.reverse:
            field = manager.model._meta.get_field(manager.query_field_name)
            return str(field.remote_field.get_accessor_name())
        return str(manager.prefetch_cache_name)  # the field's name
    if hasattr(manager, "field"):  # reverse foreign key
        return str(manager.field.remote_field.get_accessor_name())
    return str(manager.prefetch_cache_name)  # generic relation: the field's name


def guard_related_manager(apply_rel_filters: FunctionType) -> SyncGuard:
    """Guard a related manager's ``_apply_rel_filters``: mark the queryset it filters.

    Django calls it only when the relation is not prefetched.
    """

    def guarded(manager: Any, queryset: Any) -> Any:
        queryset = apply_rel_filters(manager, queryset)
        instance = manager.instance
        _mark(queryset, RELATED_OBJECTS, type(instance), related_manager_accessor(manager))
        return queryset

    return SyncGuard(apply_rel_filters, guarded)


def guard_deferred_field(check_parent_chain: FunctionType) -> SyncGuard:
    """Guard ``DeferredAttribute._check_parent_chain``: raise before ``refresh_from_db()``.

    Django calls it only for a field missing from the instance; when it finds
    no value, ``DeferredAttribute.__get__`` loads the field with
    ``refresh_from_db()``, or raises ``AttributeError`` for an unsaved
    instance where this Django version refuses one
    (:func:`dualcall.compat.unsaved_deferred_read_raises`).
    """

    def guarded(attribute: Any, instance: Any) -> Any:
        value = check_parent_chain(attribute, instance)
        if value is None and not async_unsafe_allowed():
            field = attribute.field
            # Where Django refuses an unsaved instance's field (generated
            # fields on 5.2, every field on 6.0+), its AttributeError stands.
            if pk_is_set(instance) or not unsaved_deferred_read_raises(field):
                message = describe(DEFERRED_FIELD, type(instance), field.attname)
                raise UnprefetchedRelatedModelAccessError(message)
        return value

    return SyncGuard(check_parent_chain, guarded)


def guard_generic_foreign_key(get_content_type: FunctionType) -> SyncGuard:
    """Guard ``GenericForeignKey.get_content_type``: raise before ``__get__`` fetches.

    ``GenericForeignKey.__get__`` calls it with ``id=`` only when the object
    is not cached, right before ``ContentType.get_object_for_this_type()``.
    """
    from .compat import generic_foreign_key_accessor

    fetching_code = vars(generic_foreign_key_accessor())["__get__"].__code__

    def guarded(gfk: Any, *args: Any, **kwargs: Any) -> Any:
        if (
            kwargs.get("id") is not None
            and sys._getframe(1).f_code is fetching_code
            and not async_unsafe_allowed()
        ):
            message = describe(GENERIC_FOREIGN_KEY, gfk.model, gfk.name)
            raise UnprefetchedRelatedModelAccessError(message)
        return get_content_type(gfk, *args, **kwargs)

    return SyncGuard(get_content_type, guarded)


#: The attribute set on an error raised by a fetcher guard: it names its
#: field, and an enclosing fetcher guard lets it through unchanged.
_NAMED = "_dualcall_named"


def guard_fetcher(
    fetch: FunctionType, *, template: str, name_of: Callable[[Any], str], many: bool
) -> SyncGuard:
    """Guard a fetcher's ``fetch_one`` (or, *many*, ``fetch_many``): translate into ours.

    Django 6.1 loads a lazy field with ``instance._state.fetch_mode.fetch()``,
    which calls these (``FETCH_ONE``: ``fetch_one(instance)``; ``FETCH_PEERS``:
    ``fetch_many(peers)``) and only to query; ``FETCH_RAISE`` calls neither
    and raises Django's ``FieldFetchBlocked``, which stands.  Django's
    ``SynchronousOnlyOperation`` (or ours from the evaluation guard, naming
    only the QuerySet) becomes ours naming *template*'s field,
    ``name_of(fetcher)`` of the instance's model, raised from Django's error.
    """

    def guarded(fetcher: Any, target: Any) -> Any:
        try:
            return fetch(fetcher, target)
        except SynchronousOnlyOperation as exc:
            if getattr(exc, _NAMED, False):
                raise  # a nested fetch already named its own field
            cause = exc
            if isinstance(exc, UnprefetchedRelatedModelAccessError) and isinstance(
                exc.__cause__, SynchronousOnlyOperation
            ):
                cause = exc.__cause__
            instance = target[0] if many else target
            error = UnprefetchedRelatedModelAccessError(
                describe(template, type(instance), name_of(fetcher))
            )
            setattr(error, _NAMED, True)
            raise error from cause

    return SyncGuard(fetch, guarded)


def fetcher_guards(
    fetcher_class: type, template: str, name_of: Callable[[Any], str]
) -> Iterator[tuple[type, str, Callable[[Any], SyncGuard]]]:
    """Yield the two guard targets of a fetcher class (``fetch_one``, ``fetch_many``)."""
    for method, many in (("fetch_one", False), ("fetch_many", True)):
        guard = functools.partial(guard_fetcher, template=template, name_of=name_of, many=many)
        yield fetcher_class, method, guard


def fetched_field_attname(fetcher: Any) -> str:
    """The name a deferred field's error uses: its attribute name (``question_id``)."""
    return str(fetcher.field.attname)


def fetched_field_name(fetcher: Any) -> str:
    """The name a forward or generic relation's error uses: the field's name."""
    return str(fetcher.field.name)


def fetched_reverse_accessor(fetcher: Any) -> str:
    """The name a reverse one-to-one's error uses: its accessor (``profile``)."""
    return str(fetcher.related.get_accessor_name())


def related_manager_guards(cls: type) -> Iterator[tuple[type, str, Any]]:
    """Rule for every manager class: guard ``_apply_rel_filters`` where *cls* defines it.

    Related manager classes (reverse FK, M2M, generic relation) are built by
    Django per relation, on first use; ``patch()`` applies this rule to the
    existing ones and to every one built later.
    """
    function = vars(cls).get(RELATED_MANAGER_METHOD)
    if isinstance(function, FunctionType):
        yield cls, RELATED_MANAGER_METHOD, guard_related_manager(function)


def guard_additions() -> Iterator[tuple[type, str, Any]]:
    """Yield ``(owner, name, value)`` for every method guard of :func:`dualcall.targets.guards`."""
    from . import targets

    for owner, name, guard in targets.guards():
        yield owner, name, guard(vars(owner)[name])
