"""Peak memory of ``expsync validate`` on the worst 1 MiB inputs we could construct.

Each case is one file of at most 1 MiB (the default ``--max-file-size``), run as its own
``expsync validate --format json`` process; its peak RSS is read with
``getrusage(RUSAGE_CHILDREN)`` by a small wrapper process around it, so cases do not mix.
Target: every case under 200 MiB. Exits 1 when one is over.

    .venv/bin/python bench/validate_worst.py [--budget-mib 200]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

MIB = 1024 * 1024
LIMIT = MIB  # expsync's default --max-file-size

HEAD = """key: worst
public_model_id: partner/worst
name: Worst
variants:
  - label: a
    weight: 1
    api_key: env:K
    upstream:
      internal_id: m
      base_url: https://h.example/v1
"""


def _fill(prefix: str, unit: str, suffix: str = "") -> str:
    n = (LIMIT - len(prefix) - len(suffix)) // len(unit)
    return prefix + unit * n + suffix


def _valid_docs() -> str:
    out, i = [], 0
    while True:
        doc = HEAD.replace("key: worst", f"key: w{i}").replace("partner/worst", f"partner/w{i}") + "---\n"
        if sum(map(len, out)) + len(doc) > LIMIT:
            return "".join(out).removesuffix("---\n")
        out.append(doc)
        i += 1


CASES: dict[str, Callable[[], str]] = {
    # the most YAML nodes per byte: 2 bytes per scalar, composed before anything is refused
    "flow list of 0s in extra_body": lambda: _fill(HEAD + "      extra_body: {a: [", "0,", "0]}\n"),
    "block list of 0s in extra_body": lambda: _fill(HEAD + "      extra_body:\n        a:\n", "        - 0\n"),
    "mapping of 1-char-ish keys": lambda: _fill(HEAD + "      extra_body: {", "a: 0, ", "b: 0}\n"),
    "150,000 empty variants": lambda: _fill("key: worst\npublic_model_id: p/w\nname: W\nvariants:\n", "- {}\n"),
    "empty documents": lambda: _fill("", "---\n"),
    "tiny invalid documents": lambda: _fill("", "--- {a: 1}\n"),
    # just under the per-document value limit: one pydantic call with ~50,000 errors
    "unknown fields in one document": lambda: "key: worst\n" + "".join(f"x{i}: 0\n" for i in range(49_990)),
    "valid experiments, many documents": _valid_docs,
    "nesting 64 deep, repeated": lambda: _fill(HEAD + "      extra_body:\n        r: [", "[" * 60 + "0" + "]" * 60 + ",",
                                               "0]\n"),
    "long strings": lambda: _fill(HEAD + "      extra_body: {s: '", "x", "'}\n"),
    "tags everywhere (event scan)": lambda: _fill(HEAD + "      extra_body: {a: [", "!!int 0,", "0]}\n"),
}


_WRAPPER = ("import resource, subprocess, sys; "
            "r = subprocess.run(sys.argv[1:], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL); "
            "print(r.returncode, len(r.stdout), resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")


def measure(path: Path) -> tuple[int, int, float]:
    cmd = [sys.executable, "-c", _WRAPPER, sys.executable, "-m", "expsync.cli", "validate", "--format", "json", str(path)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.split()
    return int(out[0]), int(out[1]), int(out[2]) / 1024  # ru_maxrss is in KiB on Linux


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget-mib", type=float, default=200.0)
    args = ap.parse_args()
    worst = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        baseline = Path(tmp) / "empty.yaml"
        baseline.write_text(HEAD)
        _, _, base = measure(baseline)
        print(f"{'case':40} {'bytes':>9} {'exit':>4} {'json out':>9} {'peak RSS':>9}")
        print(f"{'(one valid experiment: interpreter + imports)':40} {len(HEAD):>9} {'':>4} {'':>9} {base:>6.0f} MiB")
        for name, make in CASES.items():
            text = make()
            assert len(text.encode()) <= LIMIT, name
            f = Path(tmp) / "case.yaml"
            f.write_text(text)
            code, out_bytes, rss = measure(f)
            worst = max(worst, rss)
            print(f"{name:40} {len(text.encode()):>9} {code:>4} {out_bytes:>9} {rss:>6.0f} MiB")
    print(f"worst peak RSS: {worst:.0f} MiB (budget {args.budget_mib:.0f} MiB)")
    sys.exit(0 if worst < args.budget_mib else 1)


if __name__ == "__main__":
    main()
