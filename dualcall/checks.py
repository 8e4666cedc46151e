"""System checks.

``dualcall.W001``: a model whose field, relation accessor, manager, method or
other attribute has the namespace's name (``DUALCALL_NAMESPACE``, default
``"a"``), so ``instance.a.<name>`` is not available on it.

``dualcall.W002``: a database alias of ``DUALCALL_NATIVE`` whose sessions
``connection_created`` receivers set up: its calls take the thread path.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.apps import AppConfig, apps
from django.core.checks import CheckMessage, Warning
from django.db.models import Model

from .namespace import namespace_name

__all__ = ["check_namespace_clash", "check_native_sessions"]


def check_namespace_clash(
    app_configs: Iterable[AppConfig] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    """Warn (``dualcall.W001``) about each model that hides the namespace."""
    name = namespace_name()
    if app_configs is None:
        app_configs = apps.get_app_configs()
    warnings: list[CheckMessage] = []
    for app_config in app_configs:
        for model in app_config.get_models():
            owner = _defining_class(model, name)
            if owner is not None:
                warnings.append(
                    Warning(
                        f"{model.__name__}.{name} (defined by {owner.__qualname__}) "
                        f"clashes with dualcall's namespace {name!r}.",
                        hint=(
                            f"Rename the field or attribute {name!r}, or choose another "
                            "namespace name with the DUALCALL_NAMESPACE setting."
                        ),
                        obj=model,
                        id="dualcall.W001",
                    )
                )
    return warnings


def _defining_class(model: type, name: str) -> type | None:
    """Return the class, other than ``Model`` and its bases, that defines *name*."""
    model_bases = set(Model.__mro__)
    for klass in model.__mro__:
        if klass not in model_bases and name in vars(klass):
            return klass
    return None


def check_native_sessions(
    app_configs: Iterable[AppConfig] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    """Warn (``dualcall.W002``) about each native alias that takes the thread path for good.

    Django sends ``connection_created`` with each of its new connections; the
    native pool's sessions never run those receivers, so an alias that has
    some (other than ``django.contrib.postgres``' own, which the pool mirrors)
    takes the thread path on every call (see ``dualcall.native.methods``).
    Said at startup, since nothing else would show it but the speed.
    """
    from .native import enabled_aliases
    from .native.pool import contrib_postgres_receiver, session_receivers

    warnings: list[CheckMessage] = []
    known = contrib_postgres_receiver()
    for alias in sorted(enabled_aliases()):
        receivers = [r for r in session_receivers(alias) if r is not known]
        if receivers:
            names = ", ".join(
                f"{getattr(r, '__module__', '?')}.{getattr(r, '__qualname__', repr(r))}"
                for r in receivers
            )
            warnings.append(
                Warning(
                    f"DUALCALL_NATIVE lists the database {alias!r}, but connection_created "
                    f"receivers set up its sessions ({names}); the native pool's sessions "
                    "never run them, so every call on it takes the thread path.",
                    hint=(
                        "Connect a receiver meant for another database with sender= that "
                        "backend's DatabaseWrapper class, or remove the alias from "
                        "DUALCALL_NATIVE."
                    ),
                    id="dualcall.W002",
                )
            )
    return warnings
