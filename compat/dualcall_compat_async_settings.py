"""Settings for Django's async tests rewritten to dualcall's names (``compat/async_run.py``).

``dualcall_compat_settings`` (PostgreSQL from the libpq variables), plus the
native path on the ``default`` database when ``DUALCALL_COMPAT_NATIVE=1``, off
otherwise.  The native pool is small: each test runs on its own event loop,
which gets its own pool.
"""

import os

from dualcall_compat_settings import *  # noqa: F403

DUALCALL_NATIVE = ["default"] if os.environ.get("DUALCALL_COMPAT_NATIVE") == "1" else []
DUALCALL_NATIVE_POOL = {"max_size": 2}
