"""Settings of ``tests/native_site.py``: the suite's, on the test database it names, native on."""

import os

from tests.settings import *  # noqa: F403
from tests.settings import DATABASES

DATABASES["default"]["NAME"] = os.environ["DUALCALL_NATIVE_SITE_DB"]
ROOT_URLCONF = "tests.native_site"
ALLOWED_HOSTS = ["127.0.0.1"]
DUALCALL_NATIVE = ["default"]
DUALCALL_NATIVE_POOL = {"max_size": 3}
