#!/usr/bin/env bash
# Django's own test suite, plain and with dualcall installed, compared.
# Used by `make compat` (61, SQLite) / `compat-61-pg` / `compat-60` / `compat-52` / `compat-42`...:
#   bash compat/run.sh [<env or series: 52, 61-py313...>] [sqlite|postgres] [compat/run.py options...]
# e.g. bash compat/run.sh 52 sqlite --sets core --rerun
# Makes the venv (scripts/venv.sh), installs the optional packages the labels
# use (compat/requirements.txt), and for postgres uses the server in PGHOST or
# starts a throwaway one (scripts/pgserver.sh) and stops it on exit.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

series=${1:-61}
db=${2:-sqlite}
shift $(($# < 2 ? $# : 2))

. scripts/envs.sh
env=$(env_resolve "$series")
venv=$(bash scripts/venv.sh "$env")
py=$venv/bin/python
if ! "$py" -c 'import tblib, yaml, PIL' 2>/dev/null; then
    echo "compat: installing compat/requirements.txt into $venv" >&2
    "$py" -m pip install --disable-pip-version-check -q -r compat/requirements.txt \
        -c "constraints/constraints-django$env.txt"
fi

if [ "$db" = postgres ] && [ -z "${PGHOST:-}" ]; then
    . scripts/pg-session.sh
    pg_session_start
    eval "$(bash scripts/pgserver.sh env)"
fi

"$py" compat/run.py --python "$py" --db "$db" "$@"
