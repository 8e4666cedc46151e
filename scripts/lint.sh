#!/usr/bin/env bash
# Linters, from the main venv (scripts/envs.sh): ruff over the code, mypy (strict; its
# config, including which files, is the [mypy] section of setup.cfg).
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
exit "$rc"
