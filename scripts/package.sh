#!/usr/bin/env bash
# `make dist`: build the sdist and the wheel into dist/ and check them
# (twine check --strict; the wheel and the sdist carry LICENSE; the wheel
# installs alone into a fresh virtualenv, dualcall starts in a Django project
# there, and the README's code blocks run against it). `make test` runs it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
. scripts/envs.sh

venv=$(bash scripts/venv.sh "$DUALCALL_MAIN_ENV")
constraints=$PWD/constraints/constraints-django$DUALCALL_MAIN_ENV.txt
rm -rf dist
echo "package: python -m build"
PIP_CONSTRAINT=$constraints "$venv/bin/python" -m build -q --outdir dist . >/dev/null
"$venv/bin/twine" check --strict dist/*
wheel=$(ls dist/*.whl)
sdist=$(ls dist/*.tar.gz)
wheel_files=$(unzip -Z1 "$wheel")
sdist_files=$(tar tzf "$sdist")
need() { # listing, pattern, what
    grep -qE "$2" <<<"$1" || { echo "package: $3 is missing" >&2; exit 1; }
}
need "$wheel_files" "dist-info/licenses/LICENSE$" "LICENSE in the wheel"
need "$wheel_files" "^dualcall/py.typed$" "py.typed in the wheel"
need "$sdist_files" "^[^/]+/LICENSE$" "LICENSE in the sdist"
need "$sdist_files" "^[^/]+/tests/conftest.py$" "tests/conftest.py in the sdist"
need "$sdist_files" "^[^/]+/tests/testapp/models.py$" "tests/testapp in the sdist"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$venv/bin/python" -m venv "$tmp/venv"
PIP_CONSTRAINT=$constraints "$tmp/venv/bin/python" -m pip install --disable-pip-version-check -q "$wheel"
(cd "$tmp" && "$tmp/venv/bin/python" - <<'PY'
import django
from django.conf import settings

settings.configure(
    INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth", "dualcall"],
    DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
)
django.setup()
import dualcall

assert dualcall.is_patched(), "dualcall did not patch Django in the installed wheel"
print(f"package: the wheel installs alone and starts (dualcall {dualcall.__version__}, "
      f"Django {django.get_version()})")
PY
)
# The README's code blocks, run against the installed wheel (not the checkout:
# the runner's folder, tests/, is what Python puts first on sys.path).
"$tmp/venv/bin/python" tests/readme_runner.py README.md >"$tmp/readme.json"
"$tmp/venv/bin/python" - "$tmp/readme.json" <<'PY'
import json
import sys

report = json.load(open(sys.argv[1]))
failed = [r for r in report if r["error"]]
for r in failed:
    print(f"package: README.md:{r['line']} ({r['label']}): {r['error']}", file=sys.stderr)
assert report and not failed, "README blocks failed against the installed wheel"
print(f"package: the README's {len(report)} code blocks run against the installed wheel")
PY
echo "package: dist/ has $(basename "$sdist") and $(basename "$wheel")"
