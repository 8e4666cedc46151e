#!/usr/bin/env bash
# Django's async ORM tests rewritten to dualcall's dual names, on PostgreSQL,
# with the native path on and off, compared (compat/async_run.py).
# Used by `make compat-async` (61) / `compat-async-60` / `compat-async-52` / `compat-async-42`:
#   bash compat/async.sh [<env or series: 61, 52-py313...>] [compat/async_run.py options...]
# Makes the venv (scripts/venv.sh; the native path needs its psycopg and
# psycopg-pool, from the test extra), and uses the server in PGHOST or starts a
# throwaway one (scripts/pgserver.sh) and stops it on exit.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

series=${1:-61}
shift $(($# < 1 ? $# : 1))

. scripts/envs.sh
env=$(env_resolve "$series")
venv=$(bash scripts/venv.sh "$env")
py=$venv/bin/python

started=
if [ -z "${PGHOST:-}" ]; then
    . scripts/pg-session.sh
    pg_session_start
    eval "$(bash scripts/pgserver.sh env)"
    started=1
fi

rc=0
"$py" compat/async_run.py --python "$py" "$@" || rc=$?
if [ -n "$started" ]; then
    # Stopped here rather than by the EXIT trap, quietly unless it fails, so
    # that the summary stays the last line.
    trap - EXIT INT TERM HUP
    if ! out=$(bash scripts/pgserver.sh stop 2>&1); then
        echo "$out" >&2
    fi
fi
exit "$rc"
