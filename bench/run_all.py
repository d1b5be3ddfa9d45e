"""Every benchmark of the performance table, in one run (they are ratios measured side by side:
run them together on a quiet machine). Needs the local Postgres (and Redis for the peer replay).

    .venv/bin/python bench/run_all.py [--quick]

1. ``plan_nochange.py 2000 5000``: plan with no changes vs the shared floor; peak RSS; wire.
2. ``apply_hot_swaps.py``: apply of 1,000 hot swaps in a 5,000 folder vs a no-change plan; wire.
3. ``startup.py``: ``--version`` / ``validate`` vs importing click (+ yaml, pydantic).
4. ``peer.py``: peer_replay.py (admin API, one mutation at a time) on localhost and at 1 ms RTT.
5. ``peer_ceiling.py``: the same at N = 1,000 and 1 ms RTT, with the shared floor timed through the
   same proxy: the most any program doing the floor's work could gain over the admin API.

``--quick`` uses small sizes (a smoke test of the scripts, not figures). The summary lines of
every script are repeated at the end.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> None:
    quick = "--quick" in sys.argv
    steps = [
        ["plan_nochange.py", *(["200", "--reps", "2"] if quick else ["2000", "5000"])],
        ["apply_hot_swaps.py", *(["--n", "300", "--swaps", "100", "--reps", "2"] if quick else [])],
        ["startup.py", "3" if quick else "10"] if (HERE / "startup.py").exists() else None,
        ["peer.py", *(["--n", "10", "--reps", "1"] if quick else [])],
        ["peer_ceiling.py", *(["--n", "10", "--reps", "1"] if quick else [])],
    ]
    summaries = []
    for step in steps:
        if step is None:
            continue
        print(f"\n##### bench/{' '.join(step)}", flush=True)
        p = subprocess.Popen([sys.executable, str(HERE / step[0]), *step[1:]], stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
        assert p.stdout is not None
        out = []
        for line in p.stdout:  # streamed, so a long run shows progress
            print(line, end="", flush=True)
            if line.strip():
                out.append(line.rstrip())
        p.wait()
        summaries += out[-2:] if step[0] == "peer.py" else out[-1:]
        if p.returncode:
            summaries.append(f"bench/{step[0]} FAILED (exit {p.returncode})")
    print("\n##### summary")
    print("\n".join(summaries))


if __name__ == "__main__":
    main()
