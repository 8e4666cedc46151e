#!/usr/bin/env bash
# Create or update the virtualenv of one test environment and print its path:
#   bash scripts/venv.sh 52-py313   ->  .venv/django52-py313
#   bash scripts/venv.sh 52         ->  the series' first environment (52-py311)
# The environments (Python version, Django spec, extras) are the table in
# scripts/envs.sh.  Everything is installed with the pins of
# constraints/constraints-django<name>.txt (also applied to the build of dualcall itself,
# through PIP_CONSTRAINT), so a fresh clone gets exactly what CI last passed
# with; `make pins` refreshes them.
# pip runs only when setup.cfg, pyproject.toml, the constraints file or the
# table row changed since the last successful install (a stamp file in the venv).
# The interpreter is found by scripts/python.sh (PYTHON311=... etc. override it).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
. scripts/envs.sh

name=$(env_resolve "${1:?usage: scripts/venv.sh <env, e.g. 52-py311> | <series, e.g. 52>}")
python=$(env_field "$name" 2)
django=$(env_field "$name" 3)
extras=$(env_field "$name" 4)
pins=$(env_field "$name" 5)
venv=.venv/django$name
constraints=constraints/constraints-django$name.txt
stamp=$venv/.dualcall-install-stamp

[ -f "$constraints" ] || {
    echo "venv.sh: $constraints is missing: run 'make pins ENVS=$name' to create it" >&2
    exit 1
}
want=$({ sha256sum setup.cfg pyproject.toml "$constraints"; echo "$PWD $name $django $extras $pins"; } \
    | sha256sum | cut -d' ' -f1)

if ! "$venv/bin/python" -c '' 2>/dev/null; then
    interpreter=$(bash scripts/python.sh "$python")
    echo "venv.sh: creating $venv with $interpreter" >&2
    rm -rf "$venv"
    "$interpreter" -m venv "$venv"
fi
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
    echo "venv.sh: installing -e '.[$extras]' '$django' into $venv (pins: $constraints)" >&2
    rm -f "$stamp"
    args=(-e ".[$extras]" "$django")
    if [ "$pins" != - ]; then args+=("$pins"); fi
    PIP_CONSTRAINT=$PWD/$constraints "$venv/bin/python" -m pip install \
        --disable-pip-version-check -q "${args[@]}" >&2
    echo "$want" >"$stamp"
fi
echo "$venv"
