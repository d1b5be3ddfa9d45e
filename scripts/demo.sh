#!/usr/bin/env bash
# The main job on the sample experiments/: sets up .venv if needed, then validates the samples.
# (plan + apply on the embedded default database join here as those commands land.)
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/expsync ] || [ pyproject.toml -nt .venv/.installed ]; then
  python3 -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null
  .venv/bin/python -m pip install -q -e '.[test,aws,vault]'
  touch .venv/.installed
fi
echo "\$ expsync validate experiments/"
.venv/bin/expsync validate experiments/
