#!/usr/bin/env bash
# Print the path of a working Python X.Y interpreter:
#   bash scripts/python.sh 3.13   ->  the path of a working python3.13
# Looked for, in order: $PYTHON3XX (e.g. PYTHON313=/opt/py/bin/python3.13), python3.X
# on PATH (only if it runs: pyenv's shim fails unless PYENV_VERSION names a
# version that has it), pyenv's versions (newest 3.X.*), /usr/bin and
# /usr/local/bin.  Exits 1 with a message saying how to get it when none works.
set -euo pipefail

want=${1:?usage: scripts/python.sh 3.X}
case "$want" in
    3.[0-9] | 3.[0-9][0-9]) ;;
    *) echo "python.sh: expected a version like 3.13, not '$want'" >&2; exit 2 ;;
esac

works() { # path: runs and is the wanted version
    [ -n "$1" ] && [ -x "$1" ] &&
        [ "$("$1" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)" = "$want" ]
}

var="PYTHON${want/./}"
candidates=("${!var:-}")
if p=$(command -v "python$want" 2>/dev/null); then candidates+=("$p"); fi
if command -v pyenv >/dev/null 2>&1; then
    root=$(pyenv root)
    while read -r d; do
        candidates+=("$d/bin/python$want")
    done < <(printf '%s\n' "$root"/versions/"$want".* | sort -rV)
fi
candidates+=("/usr/bin/python$want" "/usr/local/bin/python$want")

for c in "${candidates[@]}"; do
    if works "$c"; then
        "$c" -c 'import sys; print(sys.executable)'
        exit 0
    fi
done
cat >&2 <<MSG
python.sh: no working Python $want found (tried \$$var, python$want on PATH, pyenv's
versions, /usr/bin, /usr/local/bin). Install it, for example with
'pyenv install $want' or 'apt-get install python$want python$want-venv', or point
$var at an interpreter: $var=/path/to/python$want make test
MSG
exit 1
