"""`expsync apply` of hot swaps vs a no-change `plan` of the same folder, both whole processes,
and what apply sends over the wire.

    .venv/bin/python bench/apply_hot_swaps.py [--n 5000] [--swaps 1000] [--reps 3]

A scratch database is seeded from the shared corpus (``../shared/bench/corpus.py``: N
experiments x 3 variants, 10 versions each). Each repetition rewrites the folder so that
``--swaps`` experiments change the upstream of their ``treatment-a`` variant (``rc2`` <->
``rc9``, alternating, so every repetition is exactly that many hot swaps), then times
``expsync apply --yes`` and, on the applied folder, ``expsync plan --detailed-exitcode`` (no
changes). Goal: apply <= 1.3x the no-change plan.

Wire counts come from extra applies through the counting proxy ``bench/pgwire.py`` (frontend
messages as the server receives them: Execute + simple Query = server-side executions; round
trips = request/response exchanges), for ``--swaps`` and for 10 swaps, to show whether they
grow with the number of rows. The last line is a one-line summary.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import EXPSYNC, bench_env, compile_bytecode, corpus, fmt_wire, med, run, sa_url, scratch_db, seed, summary  # noqa: E402
from pgwire import WireCounter  # noqa: E402


def main() -> None:
    compile_bytecode()
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=5000)
    ap.add_argument("--swaps", type=int, default=1000)
    ap.add_argument("--reps", type=int, default=3)
    a = ap.parse_args()
    with scratch_db() as db, tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        took = seed(root, a.n, db)
        print(f"\n== apply of {a.swaps} hot swaps in a {a.n}-experiment folder (x 3 variants x 10 versions; "
              f"seeded in {took:.0f}s)")
        env = bench_env(sa_url(db))
        folder = str(root / "experiments")
        apply_cmd = [EXPSYNC, "apply", "--yes", folder]
        plan_cmd = [EXPSYNC, "plan", "--detailed-exitcode", folder]
        swapped = False
        t_apply: list[float] = []
        t_plan: list[float] = []
        ops: list[int] = []

        def flip(k: int) -> None:
            nonlocal swapped
            swapped = not swapped
            corpus.write(root, a.n, swap=frozenset(range(k)) if swapped else frozenset())

        run(plan_cmd, env)  # warm-up
        for _ in range(a.reps):
            flip(a.swaps)
            wall, _, out = run(apply_cmd, env)
            m = re.search(r"(\d+) operation\(s\)", out)
            assert m, out[-1500:]
            ops.append(int(m.group(1)))
            t_apply.append(wall)
            t_plan.append(run(plan_cmd, env)[0])
        ratio = med(t_apply) / med(t_plan)
        wires = {}
        for k in (a.swaps, 10):
            # from the state matching the folder, swap k experiments (back to rc2 if swapped)
            if swapped:
                flip(0)  # unswap all: this is `swaps` changes; apply it untimed, then swap k
                run(apply_cmd, env)
            flip(k)
            with WireCounter() as w:
                run(apply_cmd, bench_env(w.url(sa_url(db))))
                wires[k] = w.stats()
        print(f"expsync apply --yes, {a.swaps} hot swaps (whole process): {summary(t_apply)}")
        print(f"expsync plan, no changes, same folder (whole process):   {summary(t_plan)}")
        print(f"operations applied per repetition: {ops}")
        print(f"ratio (medians): {ratio:.2f}x   goal <= 1.3x")
        for k, st in wires.items():
            print(f"wire, apply of {k:5d} hot swaps: {fmt_wire(st)}")
        print(f"apply_hot_swaps swaps={a.swaps} n={a.n} ratio={ratio:.2f} apply_s={med(t_apply):.2f} "
              f"plan_s={med(t_plan):.2f} exec={wires[a.swaps]['executes']} rt={wires[a.swaps]['round_trips']} "
              f"exec10={wires[10]['executes']} rt10={wires[10]['round_trips']}")


if __name__ == "__main__":
    main()
