#!/usr/bin/env bash
# `make bench` / `make bench-pg`: bash bench/run.sh [sqlite|postgres] [bench/run.py options...]
# sqlite: SQLite, plus PostgreSQL when PGHOST is set. postgres: also starts a
# throwaway server (scripts/pgserver.sh) unless PGHOST is set, and stops it.
# The bench runs in the main environment; with PostgreSQL, its native and view
# rows run in the 61-py313 environment (DUALCALL_BENCH_NATIVE_PYTHON), with
# bench/requirements-native.txt (django-async-backend) installed beside it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

db=${1:-sqlite}
shift $(($# < 1 ? $# : 1))

. scripts/envs.sh
NATIVE_ENV=61-py313
venv=$(bash scripts/venv.sh "$DUALCALL_MAIN_ENV")
if [ "$db" = postgres ] && [ -z "${PGHOST:-}" ]; then
    . scripts/pg-session.sh
    # The native rows hold three pools of 16 at once (native, raw psycopg,
    # django-async-backend) besides Django's connections.
    export DUALCALL_PG_MAX_CONNECTIONS=120
    pg_session_start
    eval "$(bash scripts/pgserver.sh env)"
fi
if [ -n "${PGHOST:-}" ]; then
    native_venv=$(bash scripts/venv.sh "$NATIVE_ENV")
    extras=.venv/bench-extras/$NATIVE_ENV
    constraints=constraints/constraints-django$NATIVE_ENV.txt
    want=$(sha256sum bench/requirements-native.txt "$constraints" | sha256sum | cut -d' ' -f1)
    if [ "$(cat "$extras/.stamp" 2>/dev/null || true)" != "$want" ]; then
        echo "bench: installing bench/requirements-native.txt into $extras" >&2
        rm -rf "$extras"
        # --no-deps: the dependencies are the environment's pinned ones.
        PIP_CONSTRAINT=$PWD/$constraints "$native_venv/bin/python" -m pip install \
            --disable-pip-version-check -q --no-deps --target "$extras" \
            -r bench/requirements-native.txt >&2
        echo "$want" >"$extras/.stamp"
    fi
    export DUALCALL_BENCH_NATIVE_PYTHON=$PWD/$native_venv/bin/python
    export DUALCALL_BENCH_NATIVE_PYTHONPATH=$PWD/$extras
fi
"$venv/bin/python" bench/run.py "$@"
