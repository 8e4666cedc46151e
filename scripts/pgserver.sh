#!/usr/bin/env bash
# A throwaway PostgreSQL server on 127.0.0.1 for the test suite.
#
#   bash scripts/pgserver.sh start   # install if needed, initdb, start on a free port
#   eval "$(bash scripts/pgserver.sh env)"   # export PGHOST PGPORT PGUSER PGDATABASE
#   bash scripts/pgserver.sh stop    # stop it and delete its data (idempotent)
#
# Data dir, socket dir and log live in a fresh mktemp directory; the state
# (that directory, port, server user, bin dir) is kept in .pg/state so that
# `stop` and `env` find the server. Authentication is `trust` and the
# superuser is `dualcall`: never use this for anything but tests.
# DUALCALL_PG_MAX_CONNECTIONS (default 50) sets max_connections: the bench's
# native rows hold several pools at once (bench/run.sh sets 120).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STATE_DIR="${DUALCALL_PG_STATE_DIR:-$ROOT/.pg}"
STATE="$STATE_DIR/state"
PG_SUPERUSER=dualcall

die() { echo "pgserver: $*" >&2; exit 1; }
log() { echo "pgserver: $*" >&2; }

is_root() { [ "$(id -u)" -eq 0 ]; }

# The newest PostgreSQL bin dir: initdb on PATH first, else Debian's layout.
find_bindir() {
    local p d best=""
    if p=$(command -v initdb 2>/dev/null); then
        dirname "$(readlink -f "$p")"
        return 0
    fi
    for d in $(printf "%s\n" /usr/lib/postgresql/*/bin | sort -V); do
        [ -x "$d/initdb" ] && best=$d
    done
    [ -n "$best" ] && echo "$best"
}

install_postgres() {
    local cmd='apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql'
    if is_root; then
        log "PostgreSQL server binaries not found; installing them: $cmd"
        sh -c "$cmd"
    elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        log "PostgreSQL server binaries not found; installing them: sudo -n sh -c '$cmd'"
        sudo -n sh -c "$cmd"
    else
        die "PostgreSQL (initdb) is not installed and I can't install it: not root, and no" \
            "password-less sudo. Install it yourself: sudo sh -c '$cmd'"
    fi
}

# The user the server runs as: never root.
server_user() {
    if ! is_root; then
        id -un
    elif id -u postgres >/dev/null 2>&1; then
        echo postgres
    else
        if ! id -u dualcall-pg >/dev/null 2>&1; then
            useradd --system --no-create-home --home-dir /nonexistent \
                --shell /usr/sbin/nologin dualcall-pg >&2 \
                || die "could not create the system user dualcall-pg"
        fi
        echo dualcall-pg
    fi
}

# as_user USER DIR CMD...: run CMD as USER (from root, via runuser) in DIR.
as_user() {
    local user=$1 dir=$2
    shift 2
    if [ "$user" = "$(id -un)" ]; then
        (cd "$dir" && "$@")
    elif command -v runuser >/dev/null 2>&1; then
        (cd "$dir" && runuser -u "$user" -- "$@")
    else
        (cd "$dir" && su -s /bin/sh "$user" -c "$(printf '%q ' "$@")")
    fi
}

load_state() {
    [ -f "$STATE" ] || return 1
    # shellcheck disable=SC1090
    . "$STATE"
    [ -n "${PG_TMP:-}" ] && [ -n "${PG_PORT:-}" ] && [ -n "${PG_USER:-}" ] && [ -n "${PG_BIN:-}" ]
}

free_port() {
    python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}

cmd_stop() {
    if ! load_state; then
        rm -f "$STATE"
        log "no server recorded in $STATE; nothing to stop"
        return 0
    fi
    if [ -d "$PG_TMP/data" ] && [ -f "$PG_TMP/data/postmaster.pid" ]; then
        if ! as_user "$PG_USER" "$PG_TMP" "$PG_BIN/pg_ctl" -D "$PG_TMP/data" \
                -m fast -w -t 60 stop >/dev/null; then
            log "fast shutdown failed; trying immediate shutdown"
            as_user "$PG_USER" "$PG_TMP" "$PG_BIN/pg_ctl" -D "$PG_TMP/data" \
                -m immediate -w -t 30 stop >/dev/null || true
        fi
    fi
    # Refuse to rm anything that is not one of our mktemp directories.
    case "$PG_TMP" in
        /tmp/dualcall-pg.*) rm -rf "$PG_TMP" ;;
        *) log "not removing unexpected directory $PG_TMP" ;;
    esac
    rm -f "$STATE"
    log "stopped server on port $PG_PORT"
}

cmd_start() {
    # A server already recorded in the state file is stopped first, never reused:
    # every start gives a fresh, empty cluster (and repairs a stale state file).
    if [ -f "$STATE" ]; then
        cmd_stop
    fi

    local bindir user tmp port
    bindir=$(find_bindir) || true
    if [ -z "$bindir" ]; then
        install_postgres
        bindir=$(find_bindir) || die "apt-get ran, but initdb is still nowhere to be found"
    fi
    user=$(server_user)
    port=$(free_port)
    # Always under /tmp, not $TMPDIR: the server user must be able to reach it,
    # and a unix socket path must stay short (107 bytes).
    tmp=$(mktemp -d /tmp/dualcall-pg.XXXXXX)
    if is_root; then
        chown "$user": "$tmp"
    fi
    chmod 700 "$tmp"
    mkdir -p "$STATE_DIR"
    {
        printf 'PG_TMP=%q\n' "$tmp"
        printf 'PG_PORT=%q\n' "$port"
        printf 'PG_USER=%q\n' "$user"
        printf 'PG_BIN=%q\n' "$bindir"
    } >"$STATE"

    if ! as_user "$user" "$tmp" "$bindir/initdb" -D "$tmp/data" --auth=trust \
            --username="$PG_SUPERUSER" --encoding=UTF8 --locale=C --no-sync \
            >"$tmp/initdb.log" 2>&1; then
        cat "$tmp/initdb.log" >&2
        cmd_stop
        die "initdb failed"
    fi
    as_user "$user" "$tmp" mkdir "$tmp/sock"
    as_user "$user" "$tmp" sh -c "cat >>'$tmp/data/postgresql.conf'" <<EOF

# dualcall throwaway test server
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$tmp/sock'
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = ${DUALCALL_PG_MAX_CONNECTIONS:-50}
EOF
    # setsid: the server gets its own session, so a Ctrl-C in the terminal that
    # runs the tests does not reach it; the caller's trap stops it cleanly.
    if ! as_user "$user" "$tmp" setsid -w "$bindir/pg_ctl" -D "$tmp/data" \
            -l "$tmp/server.log" -w -t 60 start >/dev/null; then
        tail -n 30 "$tmp/server.log" >&2 || true
        cmd_stop
        die "the server did not start"
    fi
    log "PostgreSQL $("$bindir/postgres" --version | awk '{print $3}') running as" \
        "user '$user' on 127.0.0.1:$port (data in $tmp)"
}

cmd_env() {
    load_state || die "no server recorded in $STATE: run '$0 start' first"
    echo "export PGHOST=127.0.0.1 PGPORT=$PG_PORT PGUSER=$PG_SUPERUSER PGDATABASE=postgres"
}

case "${1:-}" in
    start) cmd_start ;;
    stop) cmd_stop ;;
    env) cmd_env ;;
    *) echo "usage: $0 start|stop|env" >&2; exit 2 ;;
esac
