#!/usr/bin/env bash
# `make docs`: build the documentation (docs/, Sphinx) with warnings as errors,
# and run the doctests of its pages. Output: docs/_build/html/index.html.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
. scripts/envs.sh

venv=$(bash scripts/venv.sh "$DUALCALL_MAIN_ENV")
echo "docs: sphinx-build -W (html, doctest)"
"$venv/bin/sphinx-build" -E -W --keep-going -q -b html docs docs/_build/html
"$venv/bin/sphinx-build" -E -W --keep-going -q -b doctest docs docs/_build/doctest
echo "docs: built docs/_build/html/index.html"
