"""`scripts/test.sh` runs the slow tests in CI and lets a developer skip them locally."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SLOW = ["tests/test_install.py", "tests/test_typing.py"]


def collected(**env: str) -> list[str]:
    base = {k: v for k, v in os.environ.items() if k not in ("CI", "EXPSYNC_SKIP_SLOW", "GITHUB_ACTIONS")}
    r = subprocess.run(["bash", "scripts/test.sh", "--collect-only", "-q", "-p", "no:cacheprovider", *SLOW],
                       cwd=ROOT, env=base | env, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    return [line for line in r.stdout.splitlines() if "::" in line]


def test_slow_tests_always_run_in_ci() -> None:
    got = collected(CI="true", EXPSYNC_SKIP_SLOW="1")
    assert len(got) == 2 and all(any(got_line.startswith(s) for s in SLOW) for got_line in got), got


def test_a_developer_can_skip_the_slow_tests() -> None:
    assert collected(EXPSYNC_SKIP_SLOW="1") == []
