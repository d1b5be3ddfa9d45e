"""expsync vs the gateway's admin API replaying the same changes one mutation at a time
(``../shared/bench/peer_replay.py``), on localhost and with 1 ms RTT.

    .venv/bin/python bench/peer.py [--n 10,100,1000] [--reps 3] [--rtts 0,1] [--scenario ...]

Runs peer_replay.py once per RTT (0 = direct, otherwise behind its latency proxies) with this
virtualenv's ``expsync``; prints its output and, last, each run's one-line summary
(``ratio`` = peer seconds / expsync seconds: above 1, expsync is faster; goal > 1 at every
N >= 10 on localhost and >= 10 at N = 1000 with 1 ms RTT). Two runs at once must not share
the Redis database (``--redis``): both rewrite the same membership key and the final-state
check then fails.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import PEER, USER, compile_bytecode  # noqa: E402


def main() -> None:
    compile_bytecode()
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", default="10,100,1000")
    ap.add_argument("--reps", default="3")
    ap.add_argument("--rtts", default="0,1")
    ap.add_argument("--scenario", default="hot_swap,create,no_change")
    ap.add_argument("--redis", default="redis://127.0.0.1:6379/10")
    a = ap.parse_args()
    lines = []
    for rtt in a.rtts.split(","):
        cmd = [sys.executable, str(PEER), "--dsn", f"postgresql://{USER}@127.0.0.1:5432/postgres", "--redis", a.redis,
               "--n", a.n, "--scenario", a.scenario, "--reps", a.reps, "--expsync",
               str(Path(sys.executable).parent / "expsync")]
        if float(rtt):
            cmd += ["--rtt-ms", rtt]
        print(f"\n== peer_replay, rtt {rtt} ms: {' '.join(cmd[1:])}", flush=True)
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert p.stdout is not None
        last = ""
        for line in p.stdout:  # streamed: a run at N = 1000 takes many minutes
            print(line, end="", flush=True)
            last = line.strip() or last
        if p.wait():
            raise SystemExit(f"peer_replay.py exited {p.returncode}")
        lines.append(last)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
