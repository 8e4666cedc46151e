"""A DiscoverRunner that writes the outcome of every test to a JSON file.

``compat/run.py`` compares these files between the plain run and the run
with dualcall, by test id, instead of parsing the console output.  The file
is ``$DUALCALL_COMPAT_RESULT``::

    {"django": "5.2.19", "dualcall_patched": true, "tests_run": 2943,
     "ids": [...], "failures": {id: traceback}, "errors": {id: traceback},
     "unexpected_successes": [...], "skipped": {id: reason},
     "expected_failures": [...]}
"""

import json
import os
import sys

import django
from django.test.runner import DiscoverRunner
from django.test.utils import iter_test_cases


def _ids(suite):
    subsuites = getattr(suite, "subsuites", None)  # ParallelTestSuite
    for part in subsuites if subsuites is not None else [suite]:
        for test in iter_test_cases(part):
            yield test.id()


class RecordingRunner(DiscoverRunner):
    def build_suite(self, *args, **kwargs):
        suite = super().build_suite(*args, **kwargs)
        self._dualcall_compat_ids = sorted(_ids(suite))
        return suite

    def run_suite(self, suite, **kwargs):
        result = super().run_suite(suite, **kwargs)
        dualcall = sys.modules.get("dualcall")
        record = {
            "django": django.get_version(),
            "dualcall_installed": "dualcall" in {
                app.name for app in django.apps.apps.get_app_configs()
            },
            "dualcall_patched": bool(dualcall and dualcall.is_patched()),
            "tests_run": result.testsRun,
            "ids": getattr(self, "_dualcall_compat_ids", []),
            "failures": {t.id(): tb for t, tb in result.failures},
            "errors": {t.id(): tb for t, tb in result.errors},
            "unexpected_successes": [t.id() for t in result.unexpectedSuccesses],
            "skipped": {t.id(): reason for t, reason in result.skipped},
            "expected_failures": [t.id() for t, _ in result.expectedFailures],
        }
        path = os.environ.get("DUALCALL_COMPAT_RESULT")
        if path:
            with open(path, "w") as f:
                json.dump(record, f, indent=1, sort_keys=True)
        return result
