#!/usr/bin/env bash
# Run the test suite: set up .venv (reinstalling only when pyproject.toml changed), make sure
# PostgreSQL and Redis are up (scripts/services.sh), then pytest with the given arguments.
# Fails when pytest fails, and also when it collects no test at all (its exit 5).
# EXPSYNC_SKIP_SLOW=1 skips the tests marked `slow` (a fresh-virtualenv install, mypy) on a
# developer's machine; with CI=true they always run. Tests run in EXPSYNC_TEST_WORKERS pytest-xdist
# workers (default 2, the machine's cores; 0 = in this process): every test has its own database
# and Redis database or prefix, so workers never share state.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x .venv/bin/python ]; then
  echo "test.sh: creating .venv" >&2
  "${PYTHON:-python3}" -m venv .venv
fi

stamp=.venv/.expsync-pyproject.sha256
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "test.sh: installing expsync[test,aws,vault] into .venv" >&2
  .venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test,aws,vault]'
  echo "$want" > "$stamp"
  touch .venv/.installed  # the stamp scripts/demo.sh looks at
fi

bash scripts/services.sh

select=()
if [ "${EXPSYNC_SKIP_SLOW:-}" = 1 ]; then
  if [ "${CI:-}" = true ]; then
    echo "test.sh: CI=true: EXPSYNC_SKIP_SLOW is ignored, the slow tests run" >&2
  else
    echo "test.sh: EXPSYNC_SKIP_SLOW=1: skipping tests marked slow (CI runs them)" >&2
    select=(-m "not slow")
  fi
fi

workers=(-n "${EXPSYNC_TEST_WORKERS:-2}")
[ "${EXPSYNC_TEST_WORKERS:-2}" = 0 ] && workers=(-p no:xdist)

status=0
.venv/bin/python -m pytest "${workers[@]}" "${select[@]}" "$@" || status=$?
if [ "$status" -eq 5 ]; then
  echo "test.sh: pytest collected no tests; that is a failure" >&2
fi
exit "$status"
