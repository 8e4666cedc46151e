#!/usr/bin/env bash
# What pyright users get (README "Pyright"): pyright with django-types, no plugin,
# on tests/typecheck/pyright/, compared with tests/typecheck/pyright/expected.txt.
# Not part of `make test` (it needs npm and a venv of its own, since django-types
# and django-stubs cannot share one):  bash tests/typecheck/pyright.sh [--update]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
PYRIGHT_VERSION=1.1.414
DJANGO_TYPES_VERSION=0.24.0
venv=.venv/pyright
if ! "$venv/bin/python" -c 'import django' 2>/dev/null; then
    "$(bash scripts/python.sh 3.11)" -m venv "$venv"
    PIP_CONSTRAINT=$PWD/constraints/django52-py311.txt "$venv/bin/python" -m pip install \
        --disable-pip-version-check -q -e . "django-types==$DJANGO_TYPES_VERSION" >&2
fi
if [ ! -x "$venv/node/node_modules/.bin/pyright" ]; then
    npm install --silent --prefix "$venv/node" "pyright@$PYRIGHT_VERSION" >&2
fi
out=$("$venv/node/node_modules/.bin/pyright" --pythonpath "$venv/bin/python" \
    --pythonversion 3.11 tests/typecheck/pyright/views.py 2>&1 | sed "s|$PWD/||" || true)
expected=tests/typecheck/pyright/expected.txt
if [ "${1:-}" = --update ]; then
    echo "$out" >"$expected"
    echo "pyright: wrote $expected"
elif diff -u "$expected" <(echo "$out"); then
    echo "pyright: as expected ($(tail -1 "$expected"))"
else
    echo "pyright: output differs from $expected" >&2
    exit 1
fi
