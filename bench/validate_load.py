"""Load + validate N experiment files (default 5,000 files, ~20 MB): the input side of the
plan budget (spec §8). Prints wall time, throughput, peak RSS and the libyaml-only floor.

    .venv/bin/python bench/validate_load.py [N]
"""

from __future__ import annotations

import resource
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gen import write_corpus  # noqa: E402

from expsync.diagnostics import has_errors  # noqa: E402
from expsync.desired.loader import load_desired  # noqa: E402


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "experiments"
        size = write_corpus(root, n)
        t0 = time.perf_counter()
        for f in sorted(root.glob("*.yaml")):
            yaml.load(f.read_text(), Loader=yaml.CSafeLoader)
        floor = time.perf_counter() - t0
        t0 = time.perf_counter()
        desired, diags = load_desired([str(root)])
        took = time.perf_counter() - t0
        assert not has_errors(diags), diags[:3]
        assert len(desired.experiments) == n
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"files: {n}  bytes: {size / 1e6:.1f} MB")
    print(f"libyaml CSafeLoader load only (floor): {floor:.2f} s")
    print(f"expsync load+validate:                 {took:.2f} s  ({size / 1e6 / took:.1f} MB/s)")
    print(f"ratio to floor: {took / floor:.2f}x   peak RSS: {rss:.0f} MiB")


if __name__ == "__main__":
    main()
