"""Settings for Django's own test suite, as run by ``compat/run.py``.

Django's ``tests/runtests.py`` builds ``INSTALLED_APPS`` itself; this module
only chooses the databases (``DUALCALL_COMPAT_DB``: ``sqlite`` or
``postgres``, the latter from the libpq variables ``PGHOST`` ``PGPORT``
``PGUSER`` ``PGPASSWORD``) and the test runner that records the results.
Everything else matches Django's ``tests/test_sqlite.py`` and
``tests/test_postgres.py``.
"""

import os

_db = os.environ.get("DUALCALL_COMPAT_DB", "sqlite")

if _db == "sqlite":
    DATABASES = {
        "default": {"ENGINE": "django.db.backends.sqlite3"},
        "other": {"ENGINE": "django.db.backends.sqlite3"},
    }
elif _db == "postgres":
    _pg = {
        "ENGINE": "django.db.backends.postgresql",
        "HOST": os.environ.get("PGHOST", "127.0.0.1"),
        "PORT": os.environ.get("PGPORT", "5432"),
        "USER": os.environ.get("PGUSER", "postgres"),
        "PASSWORD": os.environ.get("PGPASSWORD", ""),
    }
    # The test databases are test_<NAME>; NAME itself is never created.
    DATABASES = {
        "default": {**_pg, "NAME": "dualcall_compat"},
        "other": {**_pg, "NAME": "dualcall_compat_other"},
    }
else:
    raise RuntimeError(f"DUALCALL_COMPAT_DB={_db!r}: use sqlite or postgres")

SECRET_KEY = "django_tests_secret_key"

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

DEFAULT_AUTO_FIELD = "django.db.models.AutoField"

USE_TZ = False

TEST_RUNNER = "dualcall_compat_runner.RecordingRunner"
