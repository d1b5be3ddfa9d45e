#!/usr/bin/env bash
# The main job on the sample experiments/, on the embedded default database (.expsync/expsync.db):
# validate -> plan -> apply -> plan again (no changes). Sets up .venv and demo secrets itself.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/expsync ] || [ ! -f .venv/.installed ] || [ pyproject.toml -nt .venv/.installed ]; then
  python3 -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null
  .venv/bin/python -m pip install -q -e '.[test,aws,vault]'
  touch .venv/.installed
fi
unset EXPSYNC_DATABASE_URL EXPSYNC_REDIS_URL   # the embedded default; no Redis in the demo
mkdir -p -m 700 .expsync
# demo secrets only: a per-checkout encryption key (readable by its owner only) and made-up partner keys
[ -s .expsync/demo-byok.key ] || (umask 077; .venv/bin/python -c "import base64,os;print(base64.b64encode(os.urandom(32)).decode())" > .expsync/demo-byok.key)
export BYOK_ENCRYPTION_KEY="$(cat .expsync/demo-byok.key)"
export FOO_PARTNER_KEY=sk-demo-foo-0001 BAR_PARTNER_KEY=sk-demo-bar-0002 BAZ_PARTNER_KEY=sk-demo-baz-0003
export EXPSYNC_ACTOR=demo
export EXPSYNC_SECRET_REFS='env:*_PARTNER_KEY'   # what the YAML may reference (docs/secrets.md)
X=.venv/bin/expsync
step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }
step expsync validate; $X validate
step "seed: history row the admin UI wrote (adopted by experiments/baz-2025-q3.yaml)"; .venv/bin/python scripts/demo_seed.py
step expsync plan; $X plan
step expsync apply --yes; $X apply --yes
step expsync plan --detailed-exitcode; $X plan --detailed-exitcode
echo; echo "demo done: the embedded database matches experiments/ (database: .expsync/expsync.db)"
