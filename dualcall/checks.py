"""System checks.

``dualcall.W001``: a model whose field, relation accessor, manager, method or
other attribute has the namespace's name (``DUALCALL_NAMESPACE``, default
``"a"``), so ``instance.a.<name>`` is not available on it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.apps import AppConfig, apps
from django.core.checks import CheckMessage, Warning
from django.db.models import Model

from .namespace import namespace_name

__all__ = ["check_namespace_clash"]


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
