"""``patch()`` / ``unpatch()`` / ``is_patched()`` and the undo journal.

Every change to a class goes through :func:`_set`, which records
``(owner, name, had_own, previous)`` first.  ``unpatch()`` replays the journal
backwards: a name that was in the owner's ``__dict__`` gets its previous value
back, a name that was not is deleted again, so a class that inherited a method
before patching inherits it again afterwards (no shadow left behind).

Owners are held by weak reference: classes created while patched (models in
tests, related managers) must stay collectable.
"""

from __future__ import annotations

import inspect
import threading
import weakref
from collections.abc import Iterator
from types import FunctionType
from typing import TYPE_CHECKING, Any

from .context import add_pass_through
from .descriptors import DualMethod

if TYPE_CHECKING:
    from .targets import Rule

__all__ = ["is_patched", "patch", "unpatch"]

_MISSING = object()
_lock = threading.RLock()
_journal: list[tuple[weakref.ref[Any], str, Any]] = []
_patched = False


def is_patched() -> bool:
    """Return whether dualcall's patches are installed."""
    return _patched


def patch() -> None:
    """Install the dual methods on Django's classes.  Idempotent.

    ``DualcallConfig.ready()`` calls this; call it yourself only when dualcall
    is not in ``INSTALLED_APPS``.
    """
    global _patched
    from . import targets

    with _lock:
        if _patched:
            return
        try:
            _install(targets)
        except BaseException:
            # All or nothing: undo what was installed before the failure.
            unpatch()
            raise
        _patched = True


def _install(targets: Any) -> None:
    for code in targets.pass_through_codes():
        add_pass_through(code)
    rules: dict[type, list[Rule]] = {}
    for root, rule in targets.class_rules():
        rules.setdefault(root, []).append(rule)
    for root, root_rules in rules.items():
        _install_subclass_hook(root, root_rules)
        # Parents before children (a class's MRO is longer than each of its
        # bases'), so a child sees its parents' dual methods.
        for cls in sorted(_subclasses(root), key=lambda c: len(c.__mro__)):
            _apply(cls, root_rules)
    for owner, name, value in targets.additions():
        _set(owner, name, value)


def unpatch() -> None:
    """Remove every patch, restoring each class attribute exactly.  Idempotent."""
    global _patched
    with _lock:
        for owner_ref, name, previous in reversed(_journal):
            owner = owner_ref()
            if owner is None:
                continue
            if previous is _MISSING:
                delattr(owner, name)
            else:
                setattr(owner, name, previous)
        _journal.clear()
        _patched = False


def _set(owner: Any, name: str, value: Any) -> None:
    _journal.append((weakref.ref(owner), name, vars(owner).get(name, _MISSING)))
    setattr(owner, name, value)


def _subclasses(root: type) -> list[type]:
    seen: dict[type, None] = {root: None}
    stack = [root]
    while stack:
        sub: type
        for sub in type.__subclasses__(stack.pop()):
            if sub not in seen:
                seen[sub] = None
                stack.append(sub)
    return list(seen)


def dual_methods(cls: type, root: type, names: dict[str, str]) -> Iterator[tuple[type, str, Any]]:
    """Rule: make each dual name of *cls* resolve to a DualMethod.

    The name is looked up along the MRO in ``vars()`` (never ``getattr``,
    which binds).  A plain function found on *cls* itself is wrapped in
    place; one found on a class outside the root's tree (a mixin) is wrapped
    on *cls*, so the mixin, which is not a Django class, is left alone.  A
    function found on another class under the root was made dual there.
    """
    for name, kind in names.items():
        for klass in cls.__mro__:
            value = vars(klass).get(name, _MISSING)
            if value is not _MISSING:
                break
        else:
            continue
        if not isinstance(value, FunctionType) or isinstance(value, DualMethod):
            continue
        if inspect.iscoroutinefunction(value):
            continue  # already awaitable: an ``async def`` override
        if klass is cls or not issubclass(klass, root):
            yield cls, name, DualMethod(value, name, kind)


def _apply(cls: type, rules: list[Rule]) -> None:
    for rule in rules:
        for owner, name, value in list(rule(cls)):
            _set(owner, name, value)


def _install_subclass_hook(root: type, rules: list[Rule]) -> None:
    """Apply *rules* to the classes created under *root* from now on."""
    previous = vars(root).get("__init_subclass__")

    def __init_subclass__(cls: type, /, **kwargs: Any) -> None:
        if previous is not None:
            previous.__get__(None, cls)(**kwargs)
        else:
            super(root, cls).__init_subclass__(**kwargs)  # type: ignore[arg-type]
        _apply(cls, rules)

    _set(root, "__init_subclass__", classmethod(__init_subclass__))
