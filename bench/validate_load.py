"""Load + validate N experiment files (default 5,000, ~20 MB): the input side of the plan
budget (spec §8). Prints, as CPU seconds (best of --repeat, so other load on the machine
matters less) and ratios to the libyaml-only floor:

* the floor: ``yaml.load`` with libyaml's ``CSafeLoader`` (no checks, no positions);
* the strict YAML stage alone (:func:`expsync.desired.yamlload.load_documents`: every check,
  a position for every value);
* the whole of ``load_desired`` (discovery, reading, YAML, schema, cross-document rules),
  wall time too, with peak RSS.

    .venv/bin/python bench/validate_load.py [N] [--repeat 5]
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gen import write_corpus  # noqa: E402

from expsync.diagnostics import has_errors  # noqa: E402
from expsync.desired.loader import load_desired  # noqa: E402
from expsync.desired.yamlload import load_documents  # noqa: E402


def best_cpu(fn: Callable[[], object], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.process_time()
        fn()
        best = min(best, time.process_time() - t0)
    return best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("n", nargs="?", type=int, default=5000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    n = args.n
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "experiments"
        size = write_corpus(root, n)
        texts = [(f.read_text(), str(f)) for f in sorted(root.glob("*.yaml"))]
        floor = best_cpu(lambda: [yaml.load(t, Loader=yaml.CSafeLoader) for t, _ in texts], args.repeat)
        strict = best_cpu(lambda: [load_documents(t, f) for t, f in texts], args.repeat)
        t0 = time.perf_counter()
        c0 = time.process_time()
        desired, diags = load_desired([str(root)])
        cpu = time.process_time() - c0
        took = time.perf_counter() - t0
        assert not has_errors(diags), diags[:3]
        assert len(desired.experiments) == n
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"files: {n}  bytes: {size / 1e6:.1f} MB  (CPU seconds, best of {args.repeat})")
    print(f"libyaml CSafeLoader load only (floor): {floor:.2f} s")
    print(f"strict YAML stage (all checks+marks):  {strict:.2f} s  ({strict / floor:.2f}x floor)")
    print(f"expsync load+validate:                 {cpu:.2f} s CPU, {took:.2f} s wall  ({size / 1e6 / took:.1f} MB/s)")
    print(f"ratio to floor: {cpu / floor:.2f}x   peak RSS: {rss:.0f} MiB")


if __name__ == "__main__":
    main()
