"""Django settings for building the documentation (autodoc imports dualcall)."""

SECRET_KEY = "docs"
INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth", "dualcall"]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
USE_TZ = True
