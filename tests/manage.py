#!/usr/bin/env python
"""manage.py for the test project, used by the subprocess tests of tests/test_commands.py.

The settings are tests.settings with one change: the database is the SQLite
file named by ``DUALCALL_SQLITE_FILE`` (default ``dualcall-tests.sqlite3`` in
the current directory), since a subprocess cannot see the test run's
in-memory database.  Create its tables with ``manage.py migrate --run-syncdb``.
"""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main():
    from django.conf import settings
    from django.core.management import execute_from_command_line

    from tests import settings as test_settings

    config = {name: getattr(test_settings, name) for name in dir(test_settings) if name.isupper()}
    config["DATABASES"] = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": os.environ.get("DUALCALL_SQLITE_FILE", "dualcall-tests.sqlite3"),
        }
    }
    settings.configure(**config)
    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
