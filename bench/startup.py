"""Start-up budget: a command pays only for what it uses.

    .venv/bin/python bench/startup.py [RUNS]        (default 30 runs of each command)

Compares, as whole processes run side by side (interleaved, so machine load hits both):

* ``expsync --version``            vs  ``python -c "import click"``
* ``expsync validate experiments`` vs  ``python -c "import click, yaml, pydantic"``
  (the three sample files)

and prints the median and best wall time of each and the ratios (goal: <= 1.5x). Absolute
times on a shared machine are noisy; the ratio is the figure. Where valgrind is installed it
also counts the instructions each process executes (``valgrind --tool=cachegrind
--cache-sim=no``): the same count whatever else the machine runs, so that ratio is the steady one.
Both sides run from compiled ``.pyc`` files (``common.compile_bytecode``), as an installed
package does. ``hyperfine`` gives the same
comparison: ``hyperfine -N -w 3 '.venv/bin/expsync --version' '.venv/bin/python -c "import click"'``.
"""

from __future__ import annotations

import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import compile_bytecode  # noqa: E402

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


def instructions(cmd: list[str]) -> int | None:
    """Instructions the whole process executes (cachegrind), or None without valgrind."""
    if not shutil.which("valgrind"):
        return None
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EXPSYNC_", "GITHUB_"))}
    r = subprocess.run(["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null", *cmd],
                       cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    m = re.search(r"I\s+refs:\s+([\d,]+)", r.stderr)
    return int(m.group(1).replace(",", "")) if m and r.returncode == 0 else None


def main() -> None:
    compile_bytecode()
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 30
    summary = []
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
        print(f"ratio: {med / base_med:.2f}x median, {min(ours) / min(theirs):.2f}x best   (goal <= 1.5x)")
        ins, base_ins = instructions(cmd), instructions(base)
        ins_ratio = f"{ins / base_ins:.2f}" if ins and base_ins else "n/a"
        if ins and base_ins:
            print(f"instructions: {ins / 1e6:,.0f} M vs {base_ins / 1e6:,.0f} M = {ins_ratio}x   (goal <= 1.5x)")
        print()
        summary.append(f"{name.split()[1].lstrip('-')} wall={med / base_med:.2f} instructions={ins_ratio}")
    print("startup " + " ".join(summary))


if __name__ == "__main__":
    main()
