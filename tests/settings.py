"""Settings for dualcall's test suite.

``DUALCALL_TEST_DB`` picks the database: ``sqlite`` (default) or ``postgres``,
the latter reached through the standard libpq variables (``PGHOST``,
``PGPORT``, ``PGUSER``, ``PGPASSWORD``), as ``scripts/pgserver.sh env`` sets
them.
"""

import os
import tempfile

SECRET_KEY = "dualcall-tests"
USE_TZ = True
TIME_ZONE = "UTC"
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "dualcall",
    "tests.testapp",
]

_backend = os.environ.get("DUALCALL_TEST_DB", "sqlite")
if _backend == "postgres":
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": os.environ.get("PGDATABASE", "postgres"),
            "USER": os.environ.get("PGUSER", "dualcall"),
            "PASSWORD": os.environ.get("PGPASSWORD", ""),
            "HOST": os.environ.get("PGHOST", "127.0.0.1"),
            "PORT": os.environ.get("PGPORT", "5432"),
            "TEST": {"NAME": "dualcall_test"},
        }
    }
elif _backend == "sqlite":
    # A file, not ":memory:": an in-memory test database is one shared cache
    # with table locks, where a reader fails on another connection's
    # uncommitted write.  A file behaves as SQLite does in production.
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": os.path.join(tempfile.gettempdir(), "dualcall.sqlite3"),
            "TEST": {
                "NAME": os.path.join(tempfile.gettempdir(), f"dualcall_test_{os.getpid()}.sqlite3")
            },
        }
    }
else:
    raise RuntimeError(f"DUALCALL_TEST_DB must be 'sqlite' or 'postgres', not {_backend!r}")
