"""The Django app: ``"dualcall"`` in ``INSTALLED_APPS`` installs the patches."""

from django.apps import AppConfig


class DualcallConfig(AppConfig):  # type: ignore[misc]  # Django is untyped
    """Patches Django's ORM classes when the app registry is ready."""

    name = "dualcall"
    verbose_name = "dualcall"

    def ready(self) -> None:
        from django.core import checks

        from .awaitables import strict_setting
        from .checks import check_namespace_clash
        from .patching import patch

        patch()
        strict_setting()  # a DUALCALL_STRICT that is not a bool fails at startup, not later
        checks.register(check_namespace_clash, checks.Tags.models)
