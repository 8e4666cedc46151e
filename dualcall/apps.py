"""The Django app: ``"dualcall"`` in ``INSTALLED_APPS`` installs the patches."""

from django.apps import AppConfig


class DualcallConfig(AppConfig):  # type: ignore[misc]  # Django is untyped
    """Patches Django's ORM classes when the app registry is ready."""

    name = "dualcall"
    verbose_name = "dualcall"

    def ready(self) -> None:
        from django.core import checks

        from .awaitables import strict_setting
        from .checks import check_namespace_clash, check_native_sessions
        from .native import enabled_aliases
        from .native.pool import check_pool_setting
        from .patching import patch

        patch()
        strict_setting()  # a DUALCALL_STRICT that is not a bool fails at startup, not later
        check_pool_setting()  # so does a DUALCALL_NATIVE_POOL with a wrong option
        enabled_aliases()  # and a DUALCALL_NATIVE that names no PostgreSQL database
        checks.register(check_namespace_clash, checks.Tags.models)
        checks.register(check_native_sessions)
