"""Peer fetching for ``.a``: one query per relation for a whole queryset's results.

The natural async loop is the classic N+1::

    for choice in await Choice.objects.filter(votes__gt=0):
        question = await choice.a.question

When ``await instance.a.<name>`` needs a query and *instance* came from a
queryset evaluation with other instances (its *peers*: ``await qs``,
``async for``, each chunk of ``qs.iterator()``, a sync evaluation too), the
relation or deferred field is loaded for every live peer that has not loaded
it yet, in one query, and cached on each as its own lazy load would cache it.
The setting ``DUALCALL_AWAIT_PEERS`` (default ``True``) switches it on or off.

Tracking: a peer group is a list of weak references shared by the instances
of one evaluation, stored as ``instance._state.peers``, exactly as Django 6.1
stores it for ``FETCH_PEERS`` (``ModelIterable`` sets it when the queryset's
fetch mode ``track_peers``).  dualcall's wrapper of ``ModelIterable.__iter__``
(:func:`tracked_iter`) sets it for the querysets that have no explicit fetch
mode, on every version; a chunked ``iterator()`` gets one group per chunk.
Weak references keep no instance alive; the list is dropped with the last
instance of its evaluation, and it is never pickled or deep-copied.

Loading, per kind (:func:`load`, run in the worker thread of the awaited
load, before the instance's own sync access):

======================================  ========================================
kind                                    how the peers are loaded
======================================  ========================================
forward FK / O2O, reverse O2O,          the descriptor's ``fetch_many(peers)``
generic FK, deferred field              where Django has fetch modes (6.1: the
                                        code ``FETCH_PEERS`` runs); before 6.1
                                        the same thing: ``prefetch_related_
                                        objects(peers, name)``, or for a
                                        deferred field one ``values_list``
                                        query by primary key
reverse FK, M2M (both directions),      ``prefetch_related_objects(peers,
generic relation                        Prefetch(name, to_attr=...))``, each
                                        peer's list kept aside (below)
======================================  ========================================

Single-valued results land in Django's own caches (``fields_cache``, the
instance ``__dict__``), as each peer's own load would put them: a later sync
access reads them, as it would after ``await peer.a.<name>``.

Multi-valued results: a one-by-one ``await question.a.choice_set`` returns a
list and caches nothing (``question.choice_set.all()`` in sync code still
queries).  So a batch must not fill ``_prefetched_objects_cache`` either: each
peer's list is kept in a side table keyed by the peer (weakly) and handed out
once, by that peer's next ``await peer.a.choice_set`` (no query, no thread
hop).  Sync code never sees it.  It is a snapshot taken at the first await,
as ``prefetch_related()`` and ``FETCH_PEERS`` take theirs; Django's related
manager writes on the peer (``add``/``remove``/``clear``/``set``/``create``
through ``peer.choice_set``) discard it.

What is never done: a peer whose value is already loaded, cached, prefetched
or null is not queried; an instance is never loaded for peers it is not in
the group of (a copy of an instance has no peers); a forward FK whose row is
missing raises on its own await exactly as alone (the batch's ``None`` is not
kept); an error of the batch is raised by the await that ran it.

Django 6.1's fetch modes are respected: ``FETCH_RAISE`` raises
``FieldFetchBlocked`` (nothing is loaded), an explicit ``FETCH_ONE`` loads one,
``FETCH_PEERS`` loads the peers (and, for ``.a``, multi-valued relations too),
and :data:`AWAIT_PEERS` is dualcall's behaviour as a fetch mode of its own:
``qs.fetch_mode(dualcall.AWAIT_PEERS)`` tracks peers whatever the setting,
and loads peers for awaited ``.a`` loads only; a sync access loads one.
"""

from __future__ import annotations

import sys
import weakref
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

from django.core.signals import setting_changed

from . import compat

__all__ = [
    "AWAIT_PEERS",
    "SETTING",
    "await_peers_enabled",
    "load",
    "marked_fetch_mode",
    "peers_to_load",
    "related_manager_writes",
    "setting_changed_receiver",
    "take_pending",
    "tracked_iter",
]

#: The setting that switches peer fetching for ``.a`` on or off.
SETTING = "DUALCALL_AWAIT_PEERS"
DEFAULT = True

#: Django 6.1+: dualcall's peer behaviour as a fetch mode (None before 6.1).
AWAIT_PEERS: Any = compat.make_await_peers_mode(__name__, "AWAIT_PEERS")

_TO_ATTR = "_dualcall_peers_"
_PREFETCH_EXTRA = "_prefetch_related_val_"


def await_peers_enabled() -> bool:
    """The ``DUALCALL_AWAIT_PEERS`` setting (default ``True``); it must be a bool.

    Read once and cached (every queryset evaluation asks, and reading an
    unset setting costs microseconds); ``override_settings`` and anything
    else that sends ``setting_changed`` resets it.
    """
    value = _enabled
    if value is None:
        value = _read_setting()
    return value


_enabled: bool | None = None


def _read_setting() -> bool:
    global _enabled
    from django.conf import settings

    value = getattr(settings, SETTING, DEFAULT)
    if not isinstance(value, bool):
        from django.core.exceptions import ImproperlyConfigured

        raise ImproperlyConfigured(
            f"{SETTING} switches peer fetching for .a on or off: it must be True or False, "
            f"not {value!r}."
        )
    _enabled = value
    return value


def setting_changed_receiver(*, setting: str, **kwargs: Any) -> None:
    """Forget the cached setting when it changes (``setting_changed``)."""
    global _enabled
    if setting == SETTING:
        _enabled = None


setting_changed.connect(setting_changed_receiver, weak=False)


# -- tracking ----------------------------------------------------------------


class PeerGroup(list):  # type: ignore[type-arg]  # of weakref.ref
    """The weak references to the instances of one evaluation (or chunk).

    Pickled or deep-copied, it becomes ``()``: weak references cannot be
    pickled, and a copy is not a peer of the originals (Django 6.1's
    ``ModelState.__getstate__`` drops ``peers`` the same way).
    """

    __slots__ = ("__weakref__",)

    def __reduce_ex__(self, protocol: Any) -> Any:
        return (tuple, ())


def tracked_iter(iter_function: Callable[[Any], Iterator[Any]]) -> Callable[[Any], Iterator[Any]]:
    """Wrap ``ModelIterable.__iter__``: record the instances of an evaluation as peers.

    Only for querysets without an explicit fetch mode
    (:func:`dualcall.compat.tracks_peers_by_default`) while the setting is on;
    otherwise the original generator is returned as is (no cost per row).
    """

    def __iter__(iterable: Any) -> Iterator[Any]:
        rows = iter_function(iterable)
        if not compat.tracks_peers_by_default(iterable.queryset) or not await_peers_enabled():
            return rows
        return _track(rows, iterable.chunk_size if iterable.chunked_fetch else 0)

    __iter__.__wrapped__ = iter_function  # type: ignore[attr-defined]
    __iter__.__doc__ = iter_function.__doc__
    return __iter__


def _track(rows: Iterator[Any], chunk: int) -> Iterator[Any]:
    ref = weakref.ref
    group = PeerGroup()
    append = group.append
    try:
        if not chunk:
            for instance in rows:
                append(ref(instance))
                instance._state.peers = group
                yield instance
            return
        for instance in rows:
            if len(group) >= chunk:
                group = PeerGroup()
                append = group.append
            append(ref(instance))
            instance._state.peers = group
            yield instance
    finally:
        close = getattr(rows, "close", None)
        if close is not None:
            close()


def marked_fetch_mode(fetch_mode: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap ``QuerySet.fetch_mode`` (6.1): remember that the user chose the mode.

    Django passes an instance's mode on to the querysets of its relations
    with the same method; those calls (from Django's own modules) are not
    the user's choice.
    """

    def fetch_mode_(queryset: Any, mode: Any) -> Any:
        clone = fetch_mode(queryset, mode)
        frame: FrameType | None = sys._getframe(1)
        while frame is not None and frame.f_globals.get("__name__") == "django.db.models.manager":
            frame = frame.f_back  # the manager's proxy method
        caller = frame.f_globals.get("__name__", "") if frame is not None else ""
        if not str(caller).startswith("django."):
            setattr(clone.query, compat.EXPLICIT_FETCH_MODE, True)
        return clone

    fetch_mode_.__wrapped__ = fetch_mode  # type: ignore[attr-defined]
    fetch_mode_.__name__ = "fetch_mode"
    fetch_mode_.__qualname__ = getattr(fetch_mode, "__qualname__", "fetch_mode")
    fetch_mode_.__doc__ = fetch_mode.__doc__
    return fetch_mode_


# -- multi-valued results kept aside -----------------------------------------

#: The attribute of ``instance._state`` that holds the lists a batch left.
_PENDING = "_dualcall_pending"


class Pending(dict):  # type: ignore[type-arg]  # relation name -> list
    """The lists a batch left for one instance's next awaits.

    Held by the instance's ``_state`` (so it lives and dies with the
    instance, cycles included), it knows its owner: a copy of the instance,
    which shares the ``_state`` dict's values, finds nothing.  Pickled or
    deep-copied, it is an empty dict.
    """

    __slots__ = ("__weakref__", "owner")

    def __init__(self, owner: Any) -> None:
        super().__init__()
        self.owner = weakref.ref(owner)

    def __reduce_ex__(self, protocol: Any) -> Any:
        return (dict, ())


def _own_pending(instance: Any) -> Pending | None:
    pending = vars(instance._state).get(_PENDING)
    if type(pending) is Pending and pending.owner() is instance:
        return pending
    return None


def _set_pending(instance: Any, name: str, values: list[Any]) -> None:
    pending = _own_pending(instance)
    if pending is None:
        pending = Pending(instance)
        setattr(instance._state, _PENDING, pending)
    pending[name] = values


def has_pending(instance: Any, name: str) -> bool:
    """Whether a batch left *instance*'s list of relation *name* for its next await."""
    pending = _own_pending(instance)
    return pending is not None and name in pending


def take_pending(instance: Any, name: str) -> list[Any] | None:
    """Hand out (once) the list a batch left for *instance*'s relation *name*."""
    pending = _own_pending(instance)
    if pending is None:
        return None
    values: list[Any] | None = pending.pop(name, None)
    return values


def discard_pending(instance: Any, name: str | None = None) -> None:
    """Drop what a batch left for *instance* (one relation, or all)."""
    pending = _own_pending(instance)
    if pending is not None:
        if name is None:
            pending.clear()
        else:
            pending.pop(name, None)


# -- loading -------------------------------------------------------------------


def peers_to_load(instance: Any, needs: Callable[[Any], bool]) -> list[Any]:
    """The live peers of *instance* (itself included) for which *needs(peer)* is true.

    Empty when *instance* is not in its own group (a copy) or its fetch mode
    does not load peers.  Peers are of the same class and database.
    """
    if not compat.loads_peers(instance, await_peers_enabled):
        return []
    group = getattr(instance._state, "peers", ())
    if len(group) < 2:
        return []
    cls = type(instance)
    db = instance._state.db
    found = False
    peers = []
    for ref in list(group):
        peer = ref()
        if peer is None:
            continue
        if peer is instance:
            found = True
        if type(peer) is cls and peer._state.db == db and needs(peer):
            peers.append(peer)
    return peers if found else []


def load(
    instance: Any, name: str, descriptor: Any, kind: str, ready: Callable[[Any, Any], bool]
) -> None:
    """Load relation or field *name* for *instance*'s peers that need it (worker thread).

    *kind* is ``"field"``, ``"forward"``, ``"reverse_one"``, ``"generic_fk"``
    or ``"many"``; *ready(descriptor, peer)* says whether a peer has it.
    Nothing happens when there is nobody to load with.  The caller then
    reads *instance*'s value as usual.
    """

    def needs(peer: Any) -> bool:
        return not ready(descriptor, peer)

    if kind == "forward" and descriptor.field.remote_field.parent_link:
        # A multi-table parent built from the child's own columns: no query
        # (ForwardOneToOneDescriptor.get_object), unless one is deferred.
        def needs(peer: Any) -> bool:
            return not ready(descriptor, peer) and not _parent_built(descriptor.field, peer)

    peers = peers_to_load(instance, needs)
    if len(peers) < 2:
        return
    if kind == "many":
        _load_many(peers, name, descriptor)
        return
    if kind in ("forward", "generic_fk"):
        # Their columns first (only()/defer()), in one query each, or the
        # prefetch would load them one instance at a time.
        for attname in compat.relation_columns(descriptor):
            _load_column(peers, attname)
        peers = [peer for peer in peers if needs(peer)]
        if len(peers) < 2:
            return
    compat.fetch_many(descriptor, peers, kind)
    if kind == "forward":
        _forget_missing_rows(descriptor.field, peers)


def _parent_built(field: Any, instance: Any) -> bool:
    deferred = instance.get_deferred_fields()
    names = {f.attname for f in field.remote_field.model._meta.concrete_fields}
    return not deferred & names


def _load_column(peers: list[Any], attname: str) -> None:
    missing = [peer for peer in peers if attname not in peer.__dict__]
    if len(missing) > 1:
        cls = type(missing[0])
        column = None
        for klass in cls.__mro__:
            column = vars(klass).get(attname)
            if column is not None:
                break
        if column is not None:
            compat.fetch_many(column, missing, "field")


def _forget_missing_rows(field: Any, peers: list[Any]) -> None:
    """A forward FK whose row is gone: forget the batch's ``None``.

    Alone, the access raises ``DoesNotExist`` and caches nothing; the
    prefetch caches ``None``.  Uncached, the peer's own await raises.
    """
    for peer in peers:
        if field.is_cached(peer) and field.get_cached_value(peer) is None:
            values = [peer.__dict__.get(f.attname) for f in field.local_related_fields]
            if None not in values:
                field.delete_cached_value(peer)


def _load_many(peers: list[Any], name: str, descriptor: Any) -> None:
    from django.db.models import Prefetch, prefetch_related_objects

    to_attr = _TO_ATTR + name
    prefetch_related_objects(peers, Prefetch(name, to_attr=to_attr))
    for peer in peers:
        values = peer.__dict__.pop(to_attr, None)
        if values is None:
            continue
        for value in values:
            # Many-to-many prefetches select the join column as an extra
            # attribute; a one-by-one load has none.
            extras = [key for key in value.__dict__ if key.startswith(_PREFETCH_EXTRA)]
            for key in extras:
                del value.__dict__[key]
        _set_pending(peer, name, values)


def related_manager_writes(cls: type) -> Iterator[tuple[type, str, Any]]:
    """Rule for every manager class: a related manager's write discards the batch's list.

    Django's related managers call ``_remove_prefetched_objects()`` on the
    writes after which a prefetched list would be stale (``add``, ``remove``,
    ``clear``, ``set``); the list a batch left for that instance's next await
    is dropped with it.
    """
    from types import FunctionType

    remove = vars(cls).get("_remove_prefetched_objects")
    if isinstance(remove, FunctionType):
        yield cls, "_remove_prefetched_objects", _discarding(remove)


def _discarding(remove: Callable[[Any], Any]) -> Callable[[Any], Any]:
    from .guards import related_manager_accessor

    def _remove_prefetched_objects(manager: Any) -> Any:
        if _PENDING in vars(manager.instance._state):
            discard_pending(manager.instance, related_manager_accessor(manager))
        return remove(manager)

    _remove_prefetched_objects.__wrapped__ = remove  # type: ignore[attr-defined]
    _remove_prefetched_objects.__qualname__ = getattr(remove, "__qualname__", "")
    return _remove_prefetched_objects
