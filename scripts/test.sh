#!/usr/bin/env bash
# The full check: lint, then the test suite in each environment of the matrix
# (scripts/envs.sh: Django series x Python version) on SQLite and on a
# throwaway PostgreSQL. Arguments are passed on to pytest:
#   bash scripts/test.sh -k atomic -x      (or: make test ARGS='-k atomic -x')
# Narrow the matrix for quick local runs:
#   ENVS="52-py311" DUALCALL_TEST_DBS="sqlite" bash scripts/test.sh
#   (ENVS takes environment names or series: ENVS="52 61"); SKIP_LINT=1 skips the
#   linters, the documentation build and the package checks.
# Every combination runs even when one fails; the summary at the end says which
# failed, and the exit status is non-zero if anything (lint included) failed.
# pytest's exit 5 (no test ran) counts as a failure.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

. scripts/envs.sh
read -r -a envs <<<"${ENVS:-${DUALCALL_TEST_ENVS}}"
read -r -a dbs <<<"${DUALCALL_TEST_DBS:-sqlite postgres}"
if [ "${#envs[@]}" -eq 0 ] || [ "${#dbs[@]}" -eq 0 ]; then
    echo "test.sh: ENVS or DUALCALL_TEST_DBS is empty: nothing to run" >&2
    exit 2
fi
for db in "${dbs[@]}"; do
    case "$db" in
        sqlite | postgres) ;;
        *) echo "test.sh: unknown database '$db' in DUALCALL_TEST_DBS (sqlite, postgres)" >&2; exit 2 ;;
    esac
done

names=()
results=()
failed=0
record() { # name rc
    names+=("$1")
    case "$2" in
        0) results+=("passed") ;;
        5) results+=("FAILED (exit 5: no test ran)"); failed=1 ;;
        *) results+=("FAILED (exit $2)"); failed=1 ;;
    esac
}

# 1. virtualenvs (an unknown name or a missing interpreter stops the run here)
for i in "${!envs[@]}"; do
    envs[i]=$(env_resolve "${envs[i]}")
    bash scripts/venv.sh "${envs[i]}" >/dev/null
done

# 2. linters
if [ "${SKIP_LINT:-0}" = 1 ]; then
    echo "test.sh: SKIP_LINT=1: linters skipped"
else
    rc=0
    bash scripts/lint.sh || rc=$?
    record lint "$rc"
    rc=0
    bash scripts/docs.sh || rc=$?
    record docs "$rc"
    rc=0
    bash scripts/package.sh || rc=$?
    record package "$rc"
fi

# 3. PostgreSQL, stopped on any exit: success, failure, Ctrl-C, kill.
pg_env=""
if [[ " ${dbs[*]} " == *" postgres "* ]]; then
    . scripts/pg-session.sh
    pg_session_start
    pg_env=$(bash scripts/pgserver.sh env)
fi

# 4. the suites
for e in "${envs[@]}"; do
    for db in "${dbs[@]}"; do
        name="django$e-$db"
        echo
        echo "=== $name: python -m pytest $*"
        rc=0
        (
            if [ "$db" = postgres ]; then eval "$pg_env"; fi
            export DUALCALL_TEST_DB=$db
            exec ".venv/django$e/bin/python" -m pytest "$@"
        ) || rc=$?
        record "$name" "$rc"
    done
done

echo
echo "=== summary"
for i in "${!names[@]}"; do
    printf '  %-24s %s\n' "${names[$i]}" "${results[$i]}"
done
if [ "$failed" -ne 0 ]; then
    echo "test.sh: FAILED"
    exit 1
fi
echo "test.sh: all ok"
