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

``Model._is_pk_set()`` (5.2+) is read through :func:`pk_is_set`.  The canary
tests (``tests/test_canary*.py``) pin each of these facts per version.
"""

from __future__ import annotations

import functools
from types import FunctionType
from typing import Any

__all__ = [
    "FETCHER_METHODS",
    "generic_foreign_key_accessor",
    "generic_foreign_key_field",
    "is_fetcher",
    "pk_is_set",
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
