"""Every Django internal that differs between the supported versions, detected by feature.

Nothing here compares version numbers: each function asks whether an internal
exists, what it looks like or how it behaves, so a version that backports or
drops a feature takes the matching path.  What differs:

=============================  ===============================  ============================
internal                       Django 4.2, 5.2, 6.0             Django 6.1
=============================  ===============================  ============================
lazy loads (forward FK/O2O,    each ``__get__`` queries itself  ``__get__`` calls
reverse O2O, deferred field,   (``get_queryset(instance=)``,    ``instance._state.fetch_mode
generic FK)                    ``refresh_from_db()``,           .fetch(fetcher, instance)``,
                               ``get_content_type(id=)``)       which calls the fetcher's
                                                                ``fetch_one`` / ``fetch_many``
                                                                (:func:`is_fetcher`)
generic FK on the model class  the ``GenericForeignKey``        a ``GenericForeignKeyDescriptor``
                               field itself                     (:func:`generic_foreign_key_
                                                                accessor`)
=============================  ===============================  ============================

============================================  =========================================
deferred field of an unsaved instance         Django (:func:`unsaved_deferred_read_raises`)
============================================  =========================================
4.2                                           loads it (``refresh_from_db()``)
5.2                                           ``AttributeError`` for a generated field,
                                              loads any other
6.0, 6.1                                      ``AttributeError`` for every field
============================================  =========================================

Peers for ``.a`` (:mod:`dualcall.peers`):

=============================  ===============================  ============================
internal                       Django 4.2, 5.2, 6.0             Django 6.1
=============================  ===============================  ============================
``instance._state.peers``      absent: dualcall's               set by ``ModelIterable`` for
                               ``ModelIterable.__iter__``       modes that ``track_peers``;
                               wrapper sets it                  dualcall's wrapper sets it for
                                                                the default ``FETCH_ONE``
                                                                (:func:`tracks_peers_by_default`)
loading for peers              ``prefetch_related_objects()``,  the descriptor's
                               a ``values_list`` query for a    ``fetch_many()``
                               deferred field (:func:`fetch_
                               many`)
which instances load peers     the setting                      the instance's fetch mode
                                                                (:func:`loads_peers`)
=============================  ===============================  ============================

``Model._is_pk_set()`` (5.2+) is read through :func:`pk_is_set`.  The canary
tests (``tests/test_canary*.py``) pin each of these facts per version.
"""

from __future__ import annotations

import functools
from types import FunctionType
from typing import Any

__all__ = [
    "EXPLICIT_FETCH_MODE",
    "FETCHER_METHODS",
    "fetch_many",
    "fetch_modes",
    "generic_foreign_key_accessor",
    "generic_foreign_key_field",
    "is_fetcher",
    "loads_peers",
    "make_await_peers_mode",
    "pk_is_set",
    "relation_columns",
    "tracks_peers_by_default",
    "unsaved_deferred_read_raises",
]

#: The methods of Django 6.1's fetcher protocol: ``FetchMode.fetch(fetcher,
#: instance)`` calls ``fetcher.fetch_one(instance)`` or, for ``FETCH_PEERS``,
#: ``fetcher.fetch_many(instances)``; ``FETCH_RAISE`` calls neither.
FETCHER_METHODS = ("fetch_one", "fetch_many")


def is_fetcher(cls: type) -> bool:
    """Whether *cls* loads through fetch modes: it defines ``fetch_one`` and ``fetch_many``.

    True on Django 6.1 for ``DeferredAttribute``, ``ForwardManyToOneDescriptor``,
    ``ReverseOneToOneDescriptor`` and ``GenericForeignKeyDescriptor``.
    """
    own = vars(cls)
    # Once patched, each is a guard wrapping Django's function.
    return all(
        isinstance(getattr(own.get(name), "__wrapped__", own.get(name)), FunctionType)
        for name in FETCHER_METHODS
    )


def pk_is_set(instance: Any) -> bool:
    """Whether *instance* has a primary key value (Django 5.2's ``_is_pk_set()``)."""
    is_pk_set = getattr(instance, "_is_pk_set", None)  # Django >= 5.2
    return bool(is_pk_set()) if is_pk_set is not None else instance.pk is not None


def generic_foreign_key_accessor() -> type:
    """Return the class of what a ``GenericForeignKey`` puts on its model class.

    The field itself where it is a descriptor (it defines ``__get__``), else
    the descriptor class it installs (Django 6.1: ``GenericForeignKeyDescriptor``).
    """
    from django.contrib.contenttypes import fields

    field: type = fields.GenericForeignKey
    if "__get__" in vars(field):
        return field
    descriptor: type = fields.GenericForeignKeyDescriptor
    return descriptor


def generic_foreign_key_field(accessor: Any) -> Any:
    """Return the ``GenericForeignKey`` field of an accessor (the field, or its descriptor)."""
    from django.contrib.contenttypes.fields import GenericForeignKey

    return accessor if isinstance(accessor, GenericForeignKey) else accessor.field


def unsaved_deferred_read_raises(field: Any) -> bool:
    """Whether Django raises ``AttributeError`` reading deferred *field* of an unsaved instance.

    Instead of loading it: Django 6.0+ for every field, 5.2 for generated
    fields only, 4.2 never.  Where this is true the guards let Django's
    ``AttributeError`` stand (nothing would query).
    """
    return _unsaved_read_raises(bool(getattr(field, "generated", False)))


class _Loaded(Exception):
    """Raised by the probe's stubs where Django would load the field."""


@functools.cache
def _unsaved_read_raises(generated: bool) -> bool:
    # Probe DeferredAttribute.__get__ itself on stubs: a missing field, no
    # parent-chain value, no primary key.  Loading (refresh_from_db() or a
    # fetch mode) raises _Loaded; refusing raises AttributeError.  Anything
    # else (a future Django the stubs do not fit) counts as loading, the
    # safe answer: the guard then raises as it does where Django loads.
    from django.db.models.query_utils import DeferredAttribute

    class Field:
        attname = name = "probe"
        primary_key = False

    Field.generated = generated  # type: ignore[attr-defined]

    class Probe(DeferredAttribute):  # type: ignore[misc]  # Django is untyped
        def _check_parent_chain(self, instance: Any) -> None:
            return None

    class FetchMode:
        def fetch(self, fetcher: Any, instance: Any) -> None:
            raise _Loaded

    class State:
        db = None
        fetch_mode = FetchMode()

    class Instance:
        pk = None
        _state = State()

        def _is_pk_set(self) -> bool:
            return False

        def refresh_from_db(self, *args: Any, **kwargs: Any) -> None:
            raise _Loaded

    try:
        vars(DeferredAttribute)["__get__"](Probe(Field()), Instance(), Instance)
    except AttributeError:
        return True
    except Exception:
        return False
    return False


# -- peers (see dualcall.peers) -------------------------------------------------

#: The attribute of a ``Query`` set when the user called ``fetch_mode()`` on
#: its queryset (``Query.clone()`` copies it to every derived queryset).
EXPLICIT_FETCH_MODE = "_dualcall_explicit_fetch_mode"


@functools.cache
def fetch_modes() -> Any:
    """Django's ``fetch_modes`` module (6.1+), or ``None`` where there are no fetch modes."""
    try:
        from django.db.models import fetch_modes as modes
    except ImportError:
        return None
    return modes


def make_await_peers_mode(module: str, name: str) -> Any:
    """Return dualcall's peer fetch mode (``None`` where Django has no fetch modes).

    It tracks peers (``track_peers``) and fetches one instance: a sync access
    loads what Django's ``FETCH_ONE`` loads; ``.a`` loads the peers
    (:func:`dualcall.peers.load`).  It pickles by name, as Django's modes do.
    """
    modes = fetch_modes()
    if modes is None:
        return None

    class AwaitPeers(modes.FetchMode):  # type: ignore[misc,name-defined]
        """Track peers; sync accesses load one; awaited ``.a`` loads load the peers."""

        __slots__ = ()
        track_peers = True

        def fetch(self, fetcher: Any, instance: Any) -> None:
            fetcher.fetch_one(instance)

        def __reduce__(self) -> str:
            return name

        def __repr__(self) -> str:
            return f"{module}.{name}"

    AwaitPeers.__module__ = module
    AwaitPeers.__qualname__ = AwaitPeers.__name__ = "AwaitPeers"
    return AwaitPeers()


def tracks_peers_by_default(queryset: Any) -> bool:
    """Whether dualcall tracks the peers of *queryset*'s instances (when the setting is on).

    Everywhere before fetch modes; with fetch modes (6.1), only where the
    queryset has Django's default ``FETCH_ONE`` and the user did not choose it
    explicitly (a mode that ``track_peers`` makes Django track them itself).
    """
    modes = fetch_modes()
    if modes is None:
        return True
    return getattr(queryset, "_fetch_mode", None) is modes.FETCH_ONE and not getattr(
        queryset.query, EXPLICIT_FETCH_MODE, False
    )


def loads_peers(instance: Any, enabled: Any) -> bool:
    """Whether an awaited ``.a`` load of *instance* loads its peers.

    Before fetch modes: the setting (*enabled()*).  With fetch modes: by the
    instance's mode: ``FETCH_PEERS`` and dualcall's ``AWAIT_PEERS`` always;
    ``FETCH_ONE`` by the setting (an explicit ``FETCH_ONE`` has no tracked
    peers); ``FETCH_RAISE`` and any other mode never.
    """
    modes = fetch_modes()
    if modes is None:
        return bool(enabled())
    from .peers import AWAIT_PEERS

    mode = instance._state.fetch_mode
    if mode is modes.FETCH_PEERS or mode is AWAIT_PEERS:
        return True
    if mode is modes.FETCH_ONE:
        return bool(enabled())
    return False


def relation_columns(descriptor: Any) -> list[str]:
    """The attribute names of the columns a forward or generic foreign key reads."""
    field = getattr(descriptor, "field", descriptor)
    local = getattr(field, "local_related_fields", None)
    if local is not None:
        return [f.attname for f in local]
    ct = field.model._meta.get_field(field.ct_field).attname  # generic FK
    return [ct, field.fk_field]


def fetch_many(descriptor: Any, instances: list[Any], kind: str) -> None:
    """Load *descriptor*'s field or single-valued relation for all *instances* in one query.

    Where the descriptor is a fetcher (Django 6.1) this is its own
    ``fetch_many`` (what ``FETCH_PEERS`` runs); before, the same thing:
    ``prefetch_related_objects()`` for a relation, one query by primary key
    for a deferred field.
    """
    if hasattr(type(descriptor), "fetch_many"):
        descriptor.fetch_many(instances)
        return
    from django.db.models import prefetch_related_objects

    if kind == "field":
        _fetch_field_many(descriptor.field, instances)
    elif kind == "reverse_one":
        prefetch_related_objects(instances, descriptor.related.get_accessor_name())
    else:  # forward, generic_fk
        prefetch_related_objects(instances, generic_foreign_key_field(descriptor).name
                                 if kind == "generic_fk" else descriptor.field.name)


def _fetch_field_many(field: Any, instances: list[Any]) -> None:
    # Django 6.1's DeferredAttribute.fetch_many, without in_bulk() on
    # values_list() (new in 6.1).
    attname = field.attname
    to_fetch = [i for i in instances if attname not in i.__dict__ and pk_is_set(i)]
    if not to_fetch:
        return
    db = to_fetch[0]._state.db
    value_by_pk = dict(
        field.model._base_manager.using(db)
        .filter(pk__in=[i.pk for i in to_fetch])
        .values_list("pk", attname)
    )
    for instance in to_fetch:
        if instance.pk in value_by_pk:
            setattr(instance, attname, value_by_pk[instance.pk])
