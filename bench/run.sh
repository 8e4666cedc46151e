#!/usr/bin/env bash
# `make bench` / `make bench-pg`: bash bench/run.sh [sqlite|postgres] [bench/run.py options...]
# sqlite: SQLite, plus PostgreSQL when PGHOST is set. postgres: also starts a
# throwaway server (scripts/pgserver.sh) unless PGHOST is set, and stops it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

db=${1:-sqlite}
shift $(($# < 1 ? $# : 1))

. scripts/envs.sh
venv=$(bash scripts/venv.sh "$DUALCALL_MAIN_ENV")
if [ "$db" = postgres ] && [ -z "${PGHOST:-}" ]; then
    . scripts/pg-session.sh
    pg_session_start
    eval "$(bash scripts/pgserver.sh env)"
fi
"$venv/bin/python" bench/run.py "$@"
