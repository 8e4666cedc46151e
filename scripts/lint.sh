#!/usr/bin/env bash
# Linters, from the main venv (scripts/envs.sh): ruff over the code, mypy (strict; its
# config, including which files, is the [mypy] section of setup.cfg), and the mypy
# plugin's tests: mypy with plugins = dualcall.mypy on the typed sample app
# tests/typecheck/sample, whose output must be tests/typecheck/expected.txt, in
# every environment with the mypy extra.
# Used by `make lint` and by scripts/test.sh. Exits non-zero on any finding.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
. scripts/envs.sh

bash scripts/venv.sh "$DUALCALL_MAIN_ENV" >/dev/null
bin=.venv/django$DUALCALL_MAIN_ENV/bin

# dualcall is always checked (a missing package is an error); tests and
# examples when they exist.
paths=(dualcall)
for p in tests examples docs; do
    if [ -e "$p" ]; then paths+=("$p"); fi
done

rc=0
echo "lint: ruff check ${paths[*]}"
"$bin/ruff" check "${paths[@]}" || rc=1
echo "lint: mypy"
"$bin/mypy" || rc=1
# The plugin's sample, in every environment that installs the mypy extra
# (Django 5.2 and 6.1: the ends of what django-stubs 6.1 supports).
for env in $DUALCALL_ALL_ENVS; do
    if [[ ",$(env_field "$env" 4)," == *",mypy,"* ]]; then
        venv=$(bash scripts/venv.sh "$env")
        echo "lint: mypy plugin (tests/typecheck) with $env"
        "$venv/bin/python" -m tests.typecheck.check || rc=1
    fi
done
exit "$rc"
