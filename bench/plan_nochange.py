"""`expsync plan` with no changes vs the shared floor, both as whole processes.

    .venv/bin/python bench/plan_nochange.py [N ...] [--reps R]     (default: 2000 5000, 5 reps)

For each N: a scratch database seeded from the shared corpus (``../shared/bench/corpus.py``: N
experiments x 3 variants, applied, then 9 older versions per variant, so 10 each), then
``expsync plan --detailed-exitcode`` and ``../shared/bench/floor.py ROOT DSN`` run alternately
R times each. Prints the median and minimum wall times (and the median client CPU time, which
other jobs on a shared machine disturb less), the ratio of medians (goal <= 1.5x),
the plan's own peak RSS (wait4; goal < 500 MiB at 5,000) and, from one extra run through the
counting proxy ``bench/pgwire.py``, what the plan sends over the wire (round trips, server-side
executions, connections). The last line is a one-line summary.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    compile_bytecode,
    CPU,
    EXPSYNC,
    FLOOR,
    bench_env,
    fmt_wire,
    interleaved,
    libpq_dsn,
    med,
    run,
    sa_url,
    scratch_db,
    seed,
    summary,
)
from pgwire import WireCounter  # noqa: E402


def one(n: int, reps: int) -> str:
    with scratch_db() as db, tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        took = seed(root, n, db)
        print(f"\n== plan, no changes, {n} experiments x 3 variants x 10 versions (seeded in {took:.0f}s)")
        env = bench_env(sa_url(db))
        plan = [EXPSYNC, "plan", "--detailed-exitcode", str(root / "experiments")]
        floor = [sys.executable, str(FLOOR), str(root), libpq_dsn(db)]
        _, rss, out = run(plan, env)  # warm-up (page cache, server buffers); its RSS is the plan's peak
        assert "No changes" in out, out[-2000:]
        t = interleaved({"plan": (plan, env, (0,)), "floor": (floor, env, (0,))}, reps)
        ratio = med(t["plan"]) / med(t["floor"])
        cpu_ratio = med(CPU["plan"]) / med(CPU["floor"])
        with WireCounter() as w:
            run(plan, bench_env(w.url(sa_url(db))))
            wire = w.stats()
        print(f"floor (shared floor.py, whole process): {summary(t['floor'], 'floor')}")
        print(f"expsync plan (whole process):           {summary(t['plan'], 'plan')}")
        print(f"ratio (medians): {ratio:.2f}x wall, {cpu_ratio:.2f}x client CPU   goal <= 1.5x (wall)")
        print(f"peak RSS of plan: {rss:.0f} MiB   goal < 500 MiB")
        print(f"wire (counting proxy): {fmt_wire(wire)}")
        return (f"plan/{n} ratio={ratio:.2f} cpu_ratio={cpu_ratio:.2f} plan_s={med(t['plan']):.2f} floor_s={med(t['floor']):.2f} "
                f"rss_mib={rss:.0f} rt={wire['round_trips']} exec={wire['executes']}")


def main(argv: list[str]) -> None:
    compile_bytecode()
    reps = 5
    if "--reps" in argv:
        i = argv.index("--reps")
        reps = int(argv[i + 1])
        del argv[i : i + 2]
    sizes = [int(a) for a in argv] or [2000, 5000]
    print("plan_nochange " + " ".join(one(n, reps) for n in sizes))


if __name__ == "__main__":
    main(sys.argv[1:])
