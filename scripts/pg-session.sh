# Sourced by the scripts that need the throwaway PostgreSQL for their whole run
# (scripts/test.sh, compat/run.sh, bench/run.sh):
#   . scripts/pg-session.sh; pg_session_start; eval "$(bash scripts/pgserver.sh env)"
# pg_session_start starts the server and stops it on any exit of the calling
# script: success, failure, Ctrl-C (130), TERM (143), HUP (129).
pg_session_start() {
    _pg_session_stop() {
        local rc=$?
        trap - EXIT INT TERM HUP
        bash scripts/pgserver.sh stop || true
        exit "$rc"
    }
    trap _pg_session_stop EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    trap 'exit 129' HUP
    bash scripts/pgserver.sh start
}
