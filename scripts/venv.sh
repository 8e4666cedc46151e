#!/usr/bin/env bash
# Create or update the virtualenv for one Django series:
#   bash scripts/venv.sh 42   ->  .venv/django42: -e '.[test,examples]'      'Django>=4.2,<4.3' 'wrapt<2'
#   bash scripts/venv.sh 52   ->  .venv/django52: -e '.[test,lint,examples]' 'Django>=5.2,<5.3' (newest wrapt)
# (examples: uvicorn, which serves examples/ for make demo/run and the e2e test.)
# The Django 4.2 env keeps wrapt 1.x, so that both wrapt majors are tested.
# pip runs only when setup.cfg/pyproject.toml (or the install spec, or the repo's
# path) changed since the last successful install, recorded in a stamp file in
# the venv. A venv made by hand (no stamp) is kept and installed into.
# PYTHON (default python3 from PATH) is the interpreter a new venv is made with.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

series=${1:?usage: scripts/venv.sh 42|52}
case "$series" in
    42) django='Django>=4.2,<4.3 wrapt>=1.16,<2'; extras='.[test,examples]' ;;
    52) django='Django>=5.2,<5.3'; extras='.[test,lint,examples]' ;;
    *) echo "venv.sh: unsupported Django series '$series' (use 42 or 52)" >&2; exit 2 ;;
esac

venv=.venv/django$series
stamp=$venv/.dualcall-install-stamp
want=$({ sha256sum setup.cfg pyproject.toml; echo "$PWD $extras $django"; } | sha256sum | cut -d' ' -f1)

if ! "$venv/bin/python" -c '' 2>/dev/null; then
    echo "venv.sh: creating $venv with ${PYTHON:-python3}" >&2
    rm -rf "$venv"
    "${PYTHON:-python3}" -m venv "$venv"
fi
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
    echo "venv.sh: installing -e '$extras' '$django' into $venv" >&2
    rm -f "$stamp"
    read -r -a pins <<<"$django"
    "$venv/bin/python" -m pip install --disable-pip-version-check -q -e "$extras" "${pins[@]}"
    echo "$want" >"$stamp"
fi
