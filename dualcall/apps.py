"""The Django app: ``"dualcall"`` in ``INSTALLED_APPS`` installs the patches."""

from django.apps import AppConfig


class DualcallConfig(AppConfig):  # type: ignore[misc]  # Django is untyped
    """Patches Django's ORM classes when the app registry is ready."""

    name = "dualcall"
    verbose_name = "dualcall"

    def ready(self) -> None:
        from django.core import checks

        from .checks import check_namespace_clash
        from .patching import patch

        patch()
        checks.register(check_namespace_clash, checks.Tags.models)
