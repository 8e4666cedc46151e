"""Settings of the typed sample project (read by django-stubs' plugin, never served)."""

SECRET_KEY = "dualcall-typecheck"
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "dualcall",
    "tests.typecheck.sample",
]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
