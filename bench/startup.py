"""Start-up budget: a command pays only for what it uses.

    .venv/bin/python bench/startup.py [RUNS]        (default 30 runs of each command)

Compares, as whole processes run side by side (interleaved, so machine load hits both):

* ``expsync --version``            vs  ``python -c "import click"``
* ``expsync validate experiments`` vs  ``python -c "import click, yaml, pydantic"``
  (the three sample files)

and prints the median and best wall time of each and the ratios (goal: <= 1.5x). Absolute
times on a shared machine are noisy; the ratio is the figure. ``hyperfine`` gives the same
comparison: ``hyperfine -N -w 3 '.venv/bin/expsync --version' '.venv/bin/python -c "import click"'``.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
EXPSYNC = str(BIN / "expsync") if (BIN / "expsync").exists() else None

PAIRS = [
    ("expsync --version", [EXPSYNC, "--version"] if EXPSYNC else [sys.executable, "-m", "expsync.cli", "--version"],
     'python -c "import click"', [sys.executable, "-c", "import click"]),
    ("expsync validate experiments",
     [EXPSYNC, "validate", "experiments"] if EXPSYNC else [sys.executable, "-m", "expsync.cli", "validate", "experiments"],
     'python -c "import click, yaml, pydantic"', [sys.executable, "-c", "import click, yaml, pydantic"]),
]


def once(cmd: list[str]) -> float:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EXPSYNC_", "GITHUB_"))}
    start = time.perf_counter()
    r = subprocess.run(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    took = time.perf_counter() - start
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {r.stderr.decode()[-2000:]}")
    return took


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 30
    for name, cmd, base_name, base in PAIRS:
        for _ in range(3):  # warm the page cache and .pyc files
            once(cmd), once(base)
        ours, theirs = [], []
        for _ in range(runs):
            ours.append(once(cmd))
            theirs.append(once(base))
        med, base_med = statistics.median(ours), statistics.median(theirs)
        print(f"{name}: median {med * 1000:.0f} ms (best {min(ours) * 1000:.0f} ms)")
        print(f"{base_name}: median {base_med * 1000:.0f} ms (best {min(theirs) * 1000:.0f} ms)")
        print(f"ratio: {med / base_med:.2f}x median, {min(ours) / min(theirs):.2f}x best   (goal <= 1.5x)\n")


if __name__ == "__main__":
    main()
