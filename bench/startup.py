"""Start-up: ``expsync --version`` vs ``python -c "import click"`` and ``expsync validate`` of the
sample files vs ``python -c "import click, yaml, pydantic"``, whole processes, alternating.

    .venv/bin/python bench/startup.py [--reps 10]

Goal: both ratios (medians) <= 1.5x. The last line is a one-line summary.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import EXPSYNC, REPO, bench_env, interleaved, med, summary  # noqa: E402


def main() -> None:
    reps = int(sys.argv[sys.argv.index("--reps") + 1]) if "--reps" in sys.argv else 10
    env = bench_env("postgresql://nobody@127.0.0.1:1/none")
    samples = sorted(str(p) for p in (REPO / "experiments").glob("*.yaml"))
    py = sys.executable
    t = interleaved({
        "version": ([EXPSYNC, "--version"], env, (0,)),
        "click": ([py, "-c", "import click"], env, (0,)),
        "validate": ([EXPSYNC, "validate", *samples], env, (0,)),
        "click_yaml_pydantic": ([py, "-c", "import click, yaml, pydantic"], env, (0,)),
    }, reps)
    rv = med(t["version"]) / med(t["click"])
    rl = med(t["validate"]) / med(t["click_yaml_pydantic"])
    print(f"expsync --version:                    {summary(t['version'])}")
    print(f"python -c 'import click':             {summary(t['click'])}")
    print(f"ratio: {rv:.2f}x   goal <= 1.5x")
    print(f"expsync validate ({len(samples)} sample files):   {summary(t['validate'])}")
    print(f"python -c 'import click, yaml, pydantic': {summary(t['click_yaml_pydantic'])}")
    print(f"ratio: {rl:.2f}x   goal <= 1.5x")
    print(f"startup version_ratio={rv:.2f} version_s={med(t['version']):.3f} validate_ratio={rl:.2f} "
          f"validate_s={med(t['validate']):.3f}")


if __name__ == "__main__":
    main()
