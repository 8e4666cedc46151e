"""System check dualcall.W001: a model attribute that hides the ``.a`` namespace.

The clashing models live in isolated app registries, so the project's own
``check`` stays silent.
"""

import pytest
from django.core import checks
from django.db import models
from django.test import override_settings
from django.test.utils import isolate_apps

from dualcall.checks import check_namespace_clash

HINT = (
    "Rename the field or attribute {name!r}, or choose another namespace name with the "
    "DUALCALL_NAMESPACE setting."
)


def w001(model, owner, name="a"):
    return checks.Warning(
        f"{model.__name__}.{name} (defined by {owner.__qualname__}) clashes with "
        f"dualcall's namespace {name!r}.",
        hint=HINT.format(name=name),
        obj=model,
        id="dualcall.W001",
    )


@pytest.mark.django_db  # JSONField's model check asks SQLite whether it supports JSON
def test_check_is_registered_and_the_project_is_clean():
    assert check_namespace_clash in checks.registry.registry.get_checks()
    messages = checks.run_checks(tags=[checks.Tags.models])
    assert [m for m in messages if m.id == "dualcall.W001"] == []


@isolate_apps("tests.testapp")
def test_field_method_manager_and_relation_accessor_named_a():
    class WithField(models.Model):
        a = models.IntegerField()

        class Meta:
            app_label = "testapp"

    class WithMethod(models.Model):
        class Meta:
            app_label = "testapp"

        def a(self):
            return 1

    class WithManager(models.Model):
        a = models.Manager()

        class Meta:
            app_label = "testapp"

    class Target(models.Model):
        class Meta:
            app_label = "testapp"

    class Source(models.Model):
        target = models.ForeignKey(Target, models.CASCADE, related_name="a")

        class Meta:
            app_label = "testapp"

    class Clean(models.Model):
        alpha = models.IntegerField()

        class Meta:
            app_label = "testapp"

    from django.apps import apps as global_apps

    registry = WithField._meta.apps
    assert registry is not global_apps
    assert check_namespace_clash(app_configs=registry.get_app_configs()) == [
        w001(WithField, WithField),
        w001(WithMethod, WithMethod),
        w001(WithManager, WithManager),
        w001(Target, Target),
    ]


@isolate_apps("tests.testapp")
def test_inherited_attribute_names_the_defining_class():
    class Mixin:
        a = "mine"

    class Abstract(models.Model):
        class Meta:
            abstract = True
            app_label = "testapp"

        @property
        def a(self):
            return 1

    class FromAbstract(Abstract):
        class Meta:
            app_label = "testapp"

    # The mixin comes after Model in the MRO: the namespace would hide it.
    class MixinAfterModel(models.Model, Mixin):
        class Meta:
            app_label = "testapp"

    registry = FromAbstract._meta.apps
    assert check_namespace_clash(app_configs=registry.get_app_configs()) == [
        w001(FromAbstract, Abstract),
        w001(MixinAfterModel, Mixin),
    ]


@isolate_apps("tests.testapp")
def test_namespace_setting_is_what_is_checked():
    class Thing(models.Model):
        a = models.IntegerField()
        aio = models.IntegerField()

        class Meta:
            app_label = "testapp"

    registry = Thing._meta.apps
    with override_settings(DUALCALL_NAMESPACE="aio"):
        assert check_namespace_clash(app_configs=registry.get_app_configs()) == [
            w001(Thing, Thing, "aio")
        ]
    with override_settings(DUALCALL_NAMESPACE="b"):
        assert check_namespace_clash(app_configs=registry.get_app_configs()) == []


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("default", "DUALCALL_NATIVE must be a list of database aliases, not 'default'."),
        ({"default": True}, "DUALCALL_NATIVE must be a list of database aliases, not "
         "{'default': True}."),
        (["replica"], "DUALCALL_NATIVE names the database 'replica', which is not in DATABASES."),
    ],
)
def test_native_setting_errors_are_exact(value, message):
    from django.core.exceptions import ImproperlyConfigured

    from dualcall.native import enabled_aliases

    with override_settings(DUALCALL_NATIVE=value), pytest.raises(ImproperlyConfigured) as info:
        enabled_aliases()
    assert str(info.value) == message


def test_native_setting_on_sqlite_names_the_engine():
    from django.core.exceptions import ImproperlyConfigured
    from django.db import connection

    from dualcall.native import enabled_aliases

    if connection.vendor != "sqlite":
        pytest.skip("the SQLite run checks this")
    native = override_settings(DUALCALL_NATIVE=["default"])
    with native, pytest.raises(ImproperlyConfigured) as info:
        enabled_aliases()
    assert str(info.value) == (
        "DUALCALL_NATIVE: the database 'default' uses 'django.db.backends.sqlite3'; the native "
        "path needs django.db.backends.postgresql."
    )


def test_native_setting_is_checked_at_startup():
    import os
    import subprocess
    import sys

    code = (
        "import django\n"
        "from django.conf import settings\n"
        "settings.configure(INSTALLED_APPS=['dualcall'], DUALCALL_NATIVE='default',\n"
        "    DATABASES={'default': {'ENGINE': 'django.db.backends.sqlite3', 'NAME': ':memory:'}})\n"
        "django.setup()\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60
    )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == (
        "django.core.exceptions.ImproperlyConfigured: DUALCALL_NATIVE must be a list of "
        "database aliases, not 'default'."
    )
