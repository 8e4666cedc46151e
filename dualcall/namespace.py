"""The ``.a`` namespace: ``await instance.a.<name>`` for every field and relation.

``instance.a.x`` returns an awaitable of ``instance.x``.  What is known, by the
descriptor Django put on the model class under that name:

======================================  ================  ======================
descriptor (Django)                     what              resolves to
======================================  ================  ======================
``DeferredAttribute`` and subclasses    concrete field    its value
``ForwardManyToOneDescriptor`` (and     FK, forward O2O   the instance or None
``ForwardOneToOneDescriptor``)
``ReverseOneToOneDescriptor``           reverse O2O       the instance
``ReverseManyToOneDescriptor`` (and     reverse FK, M2M,  a list
``ManyToManyDescriptor``,               generic relation
``ReverseGenericManyToOneDescriptor``)
``GenericForeignKey`` (6.1: its         generic FK        the instance or None
``GenericForeignKeyDescriptor``)
======================================  ================  ======================

A value that can be read without a query (a loaded field, a cached or
``select_related`` relation, a null foreign key, a prefetched relation) is read
when awaited, in the event loop's thread (as is a multi-valued relation's
list that a peer's batch left for it).  Anything else is the synchronous
access itself run by :func:`dualcall.executor.run_sync` (natively, each
query on the pool, where ``DUALCALL_NATIVE`` takes it), so the result is
cached on the instance exactly as a sync access caches it; before it, in the
same worker call, the relation or field is loaded for the instance's peers
in one query (:mod:`dualcall.peers`, setting ``DUALCALL_AWAIT_PEERS``).  Other names raise
``AttributeError`` at attribute access; ``instance.a`` never queries.
"""

from __future__ import annotations

import functools
import keyword
import sys
from collections.abc import Callable, Coroutine
from typing import Any

from django.core.exceptions import SynchronousOnlyOperation

from . import peers
from .awaitables import DualAwaitable, Where, where
from .compat import generic_foreign_key_accessor, generic_foreign_key_field, pk_is_set
from .executor import run_sync

__all__ = ["DEFAULT_NAMESPACE", "Namespace", "NamespaceDescriptor", "namespace_name"]

#: The namespace's name unless the ``DUALCALL_NAMESPACE`` setting says otherwise.
DEFAULT_NAMESPACE = "a"

_MISSING = object()

# (ready, read, kind): *ready(descriptor, instance)* says whether
# *read(instance, name)* can run in the event loop's thread without a query;
# *kind* says how peers load it (see dualcall.peers.load).
_Kind = tuple[Callable[[Any, Any], bool], Callable[[Any, str], Any], str]


def namespace_name() -> str:
    """Return the namespace's name: the ``DUALCALL_NAMESPACE`` setting, default ``"a"``."""
    from django.conf import settings

    return str(getattr(settings, "DUALCALL_NAMESPACE", DEFAULT_NAMESPACE))


class Namespace:
    """``instance.a``: each attribute is an awaitable of the instance's attribute."""

    __slots__ = ("_instance",)

    def __init__(self, instance: Any) -> None:
        self._instance = instance

    def __getattr__(self, name: str) -> Coroutine[Any, Any, Any]:
        instance = self._instance
        descriptor, kind = _resolve(type(instance), name)  # type: ignore[arg-type]  # classes hash
        return _awaitable(instance, name, descriptor, kind, where(sys._getframe(1)))

    def __dir__(self) -> list[str]:
        return sorted(_known_names(type(self._instance)))


class NamespaceDescriptor:
    """The descriptor on ``Model`` that hands out a :class:`Namespace` per access."""

    __slots__ = ()

    def __get__(self, instance: Any, owner: type | None = None) -> Any:
        if instance is None:
            return self
        return Namespace(instance)


def namespace_addition() -> tuple[type, str, NamespaceDescriptor]:
    """Return ``(Model, name, descriptor)``: the addition that installs the namespace."""
    from django.conf import settings
    from django.db.models import Model

    global _installed_name
    name = validate_namespace_name(
        getattr(settings, "DUALCALL_NAMESPACE", DEFAULT_NAMESPACE), Model
    )
    _installed_name = name
    _kinds.cache_clear()
    _resolve.cache_clear()
    return Model, name, NamespaceDescriptor()


def validate_namespace_name(value: object, model_class: type) -> str:
    """Return *value* if it can name the namespace, else raise ``ImproperlyConfigured``.

    It must be a string that is a Python identifier, not a keyword, not
    private (Django keeps its per-instance state under names starting with
    ``_``: ``_state``, ``_prefetched_objects_cache``...), and not something
    ``Model`` defines.  A model's own field or attribute of that name is the
    system check ``dualcall.W001``.
    """
    from django.core.exceptions import ImproperlyConfigured

    def refuse(reason: str) -> ImproperlyConfigured:
        return ImproperlyConfigured(
            f"DUALCALL_NAMESPACE must name the attribute of the awaitable namespace "
            f'(default "a"); {value!r} {reason}.'
        )

    if not isinstance(value, str):
        raise refuse(f"is a {type(value).__name__}, not a string")
    if not value.isidentifier():
        raise refuse("is not a Python identifier")
    if keyword.iskeyword(value):
        raise refuse(f"is a Python keyword (instance.{value} is a syntax error)")
    if value.startswith("_"):
        raise refuse(
            "starts with an underscore: those names are Django's and Python's per-instance "
            "state (_state, _prefetched_objects_cache, ...)"
        )
    if hasattr(model_class, value):
        raise refuse("is already an attribute of django.db.models.Model")
    return value


# The name the namespace was installed under (read once, at patch time, for
# the awaitables' names: reading settings on every access costs more than the
# access itself).
_installed_name = DEFAULT_NAMESPACE


def _awaitable(
    instance: Any,
    name: str,
    descriptor: Any,
    kind: _Kind,
    at: Where,
) -> Coroutine[Any, Any, Any]:
    qualname = f"{type(instance).__name__}.{_installed_name}.{name}"
    ready, read, _ = kind

    if not ready(descriptor, instance):
        # Not loaded: the sync access itself, off the loop (one coroutine,
        # as sync_to_async(lambda: instance.x)() would make), after loading
        # it for the instance's peers (dualcall.peers).
        return run_sync(_load, (instance, name, descriptor, kind), {}, qualname, at)

    async def resolve() -> Any:
        try:
            return read(instance, name)
        except SynchronousOnlyOperation:
            # Not query-free after all (a cached generic foreign key checks
            # its content type, which may have left ContentType's cache):
            # nothing was read, so read it in the worker thread.
            return await run_sync(read, (instance, name), {}, qualname, at)

    coroutine: Any = resolve()
    coroutine.__qualname__ = qualname
    # Fails closed like every dual call's awaitable (``if choice.a.question:``).
    return DualAwaitable(coroutine, qualname, at)


@functools.lru_cache(maxsize=4096)
def _resolve(model: Any, name: str) -> tuple[Any, _Kind]:
    """Return the descriptor of *name* on *model* and how to read it."""
    descriptor = _class_attribute(model, name)
    if descriptor is not _MISSING:
        for kind, how in _kinds():
            if isinstance(descriptor, kind):
                return descriptor, how
    raise AttributeError(
        f"{model.__name__} has no field or relation {name!r} to await "
        f"(instance.{namespace_name()}.<name> takes a field or relation name)."
    )


def _class_attribute(model: type, name: str) -> Any:
    # vars() along the MRO, never getattr(), which would call the descriptor.
    for klass in model.__mro__:
        value = vars(klass).get(name, _MISSING)
        if value is not _MISSING:
            return value
    return _MISSING


def _known_names(model: type) -> set[str]:
    kinds = tuple(kind for kind, _ in _kinds())
    names: set[str] = set()
    for klass in reversed(model.__mro__):
        for name, value in vars(klass).items():
            if isinstance(value, kinds):
                names.add(name)
            else:
                names.discard(name)
    return names


# -- ready / read, per kind ---------------------------------------------------


def _load(instance: Any, name: str, descriptor: Any, kind: _Kind) -> Any:
    """Worker thread: load *name* for the instance's peers too, then read it."""
    ready, read, how = kind
    peers.load(instance, name, descriptor, how, ready)
    return read(instance, name)


# The native path (dualcall.native) runs it in a greenlet, its queries on the
# pool, when the instance's database is native.
_load.dualcall_native = "load"  # type: ignore[attr-defined]


def _read(instance: Any, name: str) -> Any:
    return getattr(instance, name)


def _read_many(instance: Any, name: str) -> list[Any]:
    # A peer's batch left its list aside for this await (dualcall.peers).
    values = peers.take_pending(instance, name)
    if values is not None:
        return values
    return list(getattr(instance, name).all())


def _field_ready(descriptor: Any, instance: Any) -> bool:
    return descriptor.field.attname in instance.__dict__


def _forward_ready(descriptor: Any, instance: Any) -> bool:
    field = descriptor.field
    if field.is_cached(instance):
        return True
    # A null foreign key: no query (its columns must be loaded to tell).
    data = instance.__dict__
    values = [data.get(f.attname, _MISSING) for f in field.local_related_fields]
    return _MISSING not in values and None in values


def _reverse_one_ready(descriptor: Any, instance: Any) -> bool:
    return bool(descriptor.related.is_cached(instance)) or not pk_is_set(instance)


def _prefetch_cache_name(descriptor: Any) -> str:
    """The key of a multi-valued relation in ``instance._prefetched_objects_cache``."""
    rel = descriptor.rel
    if getattr(descriptor, "reverse", None) is not None:  # ManyToManyDescriptor
        return str(rel.field.related_query_name() if descriptor.reverse else rel.field.name)
    if not rel.field.concrete:  # GenericRelation: no column
        return str(rel.field.attname)
    return str(rel.get_accessor_name())  # reverse foreign key


def _many_ready(descriptor: Any, instance: Any) -> bool:
    cache = getattr(instance, "_prefetched_objects_cache", None)
    name = _prefetch_cache_name(descriptor)
    if cache is not None and name in cache:
        return True
    return peers.has_pending(instance, _accessor_name(descriptor))


def _accessor_name(descriptor: Any) -> str:
    """The attribute name of a multi-valued relation on its model (``choice_set``)."""
    rel = descriptor.rel
    if getattr(descriptor, "reverse", None) is not None:  # ManyToManyDescriptor
        return str(rel.get_accessor_name() if descriptor.reverse else rel.field.name)
    if not rel.field.concrete:  # GenericRelation
        return str(rel.field.name)
    return str(rel.get_accessor_name())


def _generic_fk_ready(descriptor: Any, instance: Any) -> bool:
    field = generic_foreign_key_field(descriptor)
    data = instance.__dict__
    ct_attname = field.model._meta.get_field(field.ct_field).attname
    if ct_attname not in data or field.fk_field not in data:
        return False  # deferred: reading them would query
    if data[ct_attname] is None:
        return True
    return bool(field.is_cached(instance))


@functools.cache
def _kinds() -> list[tuple[type, _Kind]]:
    from django.apps import apps
    from django.db.models.fields.related_descriptors import (
        ForwardManyToOneDescriptor,
        ReverseManyToOneDescriptor,
        ReverseOneToOneDescriptor,
    )
    from django.db.models.query_utils import DeferredAttribute

    kinds: list[tuple[type, _Kind]] = [
        (DeferredAttribute, (_field_ready, _read, "field")),
        (ForwardManyToOneDescriptor, (_forward_ready, _read, "forward")),
        (ReverseOneToOneDescriptor, (_reverse_one_ready, _read, "reverse_one")),
        (ReverseManyToOneDescriptor, (_many_ready, _read_many, "many")),
    ]
    if apps.is_installed("django.contrib.contenttypes"):
        # The GenericForeignKey field itself, or (6.1) its descriptor.
        kinds.append((generic_foreign_key_accessor(), (_generic_fk_ready, _read, "generic_fk")))
    return kinds
