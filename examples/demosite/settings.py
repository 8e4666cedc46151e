"""Settings of the dualcall example site.

The database comes from the environment, so that ``make demo``, ``make run``
and the end-to-end test can each point the site at their own:

* ``DUALCALL_EXAMPLES_DB``: ``sqlite`` (default) or ``postgres``;
* ``DUALCALL_EXAMPLES_SQLITE``: the SQLite file (default ``examples/db.sqlite3``);
* for PostgreSQL, the standard libpq variables the test suite uses
  (``PGHOST``, ``PGPORT``, ``PGUSER``, ``PGPASSWORD``, ``PGDATABASE``).

``DUALCALL_EXAMPLES_DEBUG=1`` turns on ``DEBUG``.
"""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = "dualcall-examples-not-a-secret"
DEBUG = os.environ.get("DUALCALL_EXAMPLES_DEBUG") == "1"
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "dualcall",
    "demosite",
    "polls",
    "blog",
    "school",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]

ROOT_URLCONF = "demosite.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        # No auth context processor: its lazy ``user`` would query while the
        # template renders in the event loop's thread.
        "OPTIONS": {"context_processors": ["django.template.context_processors.request"]},
    }
]

ASGI_APPLICATION = "demosite.asgi.application"

_backend = os.environ.get("DUALCALL_EXAMPLES_DB", "sqlite")
if _backend == "postgres":
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": os.environ.get("PGDATABASE", "dualcall_examples"),
            "USER": os.environ.get("PGUSER", "dualcall"),
            "PASSWORD": os.environ.get("PGPASSWORD", ""),
            "HOST": os.environ.get("PGHOST", "127.0.0.1"),
            "PORT": os.environ.get("PGPORT", "5432"),
        }
    }
elif _backend == "sqlite":
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": os.environ.get("DUALCALL_EXAMPLES_SQLITE", str(BASE_DIR / "db.sqlite3")),
        }
    }
else:
    raise RuntimeError(f"DUALCALL_EXAMPLES_DB must be 'sqlite' or 'postgres', not {_backend!r}")

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
LOGIN_URL = "/accounts/login/"
USE_TZ = True
TIME_ZONE = "UTC"
LANGUAGE_CODE = "en-us"

# Server errors go to the console (uvicorn's stderr) even with DEBUG off.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"django.request": {"handlers": ["console"], "level": "ERROR"}},
}
