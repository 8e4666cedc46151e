"""Settings for Django's own test suite, as run by ``compat/run.py``.

Django's ``tests/runtests.py`` builds ``INSTALLED_APPS`` itself; this module
only chooses the databases (``DUALCALL_COMPAT_DB``: ``sqlite`` or
``postgres``, the latter from the libpq variables ``PGHOST`` ``PGPORT``
``PGUSER`` ``PGPASSWORD``) and the test runner that records the results.
Everything else is the tested version's own ``tests/test_sqlite.py`` (which
differs between versions: 6.0 dropped ``DEFAULT_AUTO_FIELD = AutoField``, as
its default became ``BigAutoField``), imported from the tests directory.
"""

import os

from test_sqlite import *  # noqa: F403  # the tested Django version's own settings

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

TEST_RUNNER = "dualcall_compat_runner.RecordingRunner"
