# The test matrix, sourced by the scripts: one environment a line, named
# <Django series>-py<Python version>, with what it installs.  Each has a
# virtualenv .venv/django<name> and pinned versions in constraints/constraints-django<name>.txt.
#
#   name      python  Django spec          extras                  extra pins
DUALCALL_ENV_TABLE="
42-py311    3.11    Django>=4.2,<4.3     test,examples           wrapt>=1.16,<2
52-py311    3.11    Django>=5.2,<5.3     test,lint,mypy,docs,release,examples  -
52-py313    3.13    Django>=5.2,<5.3     test,examples           -
60-py312    3.12    Django>=6.0,<6.1     test,examples           -
61-py313    3.13    Django>=6.1,<6.2     test,examples,mypy      -
"
# Every environment, in matrix order.
DUALCALL_ALL_ENVS=$(awk 'NF {print $1}' <<<"$DUALCALL_ENV_TABLE" | tr '\n' ' ')
# The one that lints (ruff, mypy) and serves make demo / bench.
DUALCALL_MAIN_ENV=52-py311

# env_field NAME COLUMN(2=python 3=django 4=extras 5=pins): print one column.
env_field() {
    local row
    row=$(awk -v n="$1" '$1 == n' <<<"$DUALCALL_ENV_TABLE")
    if [ -z "$row" ]; then
        echo "envs.sh: unknown environment '$1' (known: $DUALCALL_ALL_ENVS)" >&2
        return 2
    fi
    awk -v c="$2" '{print $c}' <<<"$row"
}

# env_resolve NAME|SERIES: a series alone (52) means its first environment.
env_resolve() {
    case "$1" in
        *-py*) env_field "$1" 1 ;;
        *)
            local name
            name=$(awk -v s="$1" 'NF && index($1, s "-py") == 1 {print $1; exit}' <<<"$DUALCALL_ENV_TABLE")
            if [ -z "$name" ]; then
                echo "envs.sh: unknown Django series '$1' (known: $DUALCALL_ALL_ENVS)" >&2
                return 2
            fi
            echo "$name"
            ;;
    esac
}

# What `make test` runs by default.
DUALCALL_TEST_ENVS="$DUALCALL_ALL_ENVS"
