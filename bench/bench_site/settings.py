"""Settings of the benchmark site (``bench/view_bench.py`` starts uvicorn with them).

PostgreSQL from ``PGHOST`` ``PGPORT`` ``PGUSER`` ``PGPASSWORD`` ``PGDATABASE``.
Both paths get a pool of ``DUALCALL_BENCH_POOL_SIZE`` connections: Django's
own pool (``OPTIONS["pool"]``, Django >= 5.1) for the thread path (the sync
view and Django's a-methods), so that no request pays for a new connection,
and ``DUALCALL_NATIVE_POOL`` for the native path.
"""

import os

from dualcall_bench import postgres_database

POOL_SIZE = int(os.environ.get("DUALCALL_BENCH_POOL_SIZE", "16"))

SECRET_KEY = "bench-only-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1"]
INSTALLED_APPS = ["django.contrib.contenttypes", "dualcall", "dualcall_bench"]
MIDDLEWARE: list[str] = []
ROOT_URLCONF = "bench_site.views"
DATABASES = {
    "default": postgres_database(
        OPTIONS={"pool": {"min_size": POOL_SIZE, "max_size": POOL_SIZE}},
    ),
}
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
USE_TZ = True
DUALCALL_NATIVE = ["default"]
DUALCALL_NATIVE_POOL = {"max_size": POOL_SIZE}
