"""The most any program doing at least the floor's work could gain over the admin API at 1 ms RTT.

    .venv/bin/python bench/peer_ceiling.py [--n 1000] [--rtt-ms 1] [--reps 5] [--scenario no_change,hot_swap]

For each scenario, on peer_replay.py's own corpus and seed, three whole processes run in turn
(interleaved, each on its own clone of the seeded database, each reaching Postgres and Redis only
through ``latency_proxy.LatencyProxy`` at ``--rtt-ms``):

- ``peer``: peer_replay.py's worker (the admin API, one request at a time);
- ``expsync``: what peer_replay.py times (``plan --detailed-exitcode`` / ``apply --yes``);
- ``floor``: the shared ``floor.py`` on the same folder and database: a libyaml parse of every
  file and the three plain SELECTs (``../shared/bench/README.md``). It changes nothing, so it
  is a lower bound for ``apply`` as well as for ``plan``.

``peer/floor`` is then the ratio a program that did no more than the floor would reach: a
ceiling for any ``plan`` (which must at least parse the folder and read the state) and a loose
one for ``apply`` (which must also write). If it is below 10, "at least 10x faster than the admin
API" cannot be met in that scenario by anything that reads the files and the database. The
last line is a one-line summary.

Uses peer_replay.py's ``Bench`` (database seeding, the peer's job, both runners) unchanged.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import FLOOR, PEER, USER, compile_bytecode  # noqa: E402

sys.path.insert(0, str(PEER.parent))
import peer_replay  # noqa: E402
from latency_proxy import LatencyProxy  # noqa: E402

SIDES = ("peer", "expsync", "floor")


def _args(a: argparse.Namespace) -> argparse.Namespace:
    """The options peer_replay's Bench reads, at their defaults there."""
    return argparse.Namespace(dsn=f"postgresql://{USER}@127.0.0.1:5432/postgres", redis=a.redis, rtt_ms=a.rtt_ms,
                              peer_tx="autocommit", peer_redis="del+set", count=False, detail=False,
                              expsync=str(Path(sys.executable).parent / "expsync"), reps=a.reps)


def _floor(bench: peer_replay.Bench, dsn: str) -> float:
    t = time.perf_counter()
    p = subprocess.run([sys.executable, str(FLOOR), str(bench.tmp), dsn], env=bench.env, capture_output=True,
                       text=True, stdin=subprocess.DEVNULL, timeout=3600)
    secs = time.perf_counter() - t
    assert p.returncode == 0, p.stdout[-1500:] + p.stderr[-1500:]
    return secs


def one(bench: peer_replay.Bench, side: str, scenario: str, tpl: str, job: dict, rep: int) -> float:
    db = bench.create_db(f"peer_{bench.uid}_{side}_{rep}", tpl)
    bench.clear_redis()
    pg, rd = urlsplit(bench.args.dsn), urlsplit(bench.args.redis)
    try:
        with LatencyProxy((pg.hostname or "127.0.0.1", pg.port or 5432), bench.args.rtt_ms) as pp, \
                LatencyProxy((rd.hostname or "127.0.0.1", rd.port or 6379), bench.args.rtt_ms) as rp:
            dsn, rurl = peer_replay.dsn_for(bench.args.dsn, db, pp.port), peer_replay.redis_for(bench.args.redis, rp.port)
            if side == "peer":
                return bench.run_peer(job, dsn, rurl)["wall"]
            if side == "expsync":
                return bench.run_expsync(scenario, dsn, rurl)["wall"]
            return _floor(bench, dsn)
    finally:
        bench.drop_db(db)


def scenario(bench: peer_replay.Bench, name: str, n: int, reps: int) -> dict[str, float]:
    print(f"\n== {name}, N = {n}, rtt {bench.args.rtt_ms:g} ms", flush=True)
    peer_replay.write_corpus(bench.tmp / "experiments", n, "r0")
    tpl = bench.template(name, n)
    if name == "hot_swap":
        peer_replay.write_corpus(bench.tmp / "experiments", n, "r1")
    job = bench.peer_job(name, n, tpl)
    walls: dict[str, list[float]] = {s: [] for s in SIDES}
    try:
        for rep in range(1, reps + 1):
            order = SIDES[rep % 3:] + SIDES[:rep % 3]  # each side goes first in turn
            for side in order:
                walls[side].append(one(bench, side, name, tpl, job, rep))
            print(f"  rep {rep}: " + "  ".join(f"{s} {walls[s][-1]:.3f}s" for s in SIDES), flush=True)
    finally:
        bench.drop_db(tpl)
        bench.clear_redis()
    med = {s: statistics.median(walls[s]) for s in SIDES}
    print(f"  medians: peer {med['peer']:.3f}s  expsync {med['expsync']:.3f}s  floor {med['floor']:.3f}s;"
          f"  peer/expsync {med['peer'] / med['expsync']:.2f}x  peer/floor {med['peer'] / med['floor']:.2f}x"
          f"  expsync/floor {med['expsync'] / med['floor']:.2f}x", flush=True)
    return med


def main() -> None:
    compile_bytecode()
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--rtt-ms", type=float, default=1.0)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--scenario", default="no_change,hot_swap")
    ap.add_argument("--redis", default="redis://127.0.0.1:6379/10")
    a = ap.parse_args()
    if a.rtt_ms <= 0:
        ap.error("--rtt-ms must be > 0 (the ceiling is about latency)")
    bench = peer_replay.Bench(_args(a))
    rows = []
    try:
        for name in a.scenario.split(","):
            rows.append((name, scenario(bench, name, a.n, a.reps)))
    finally:
        bench.cleanup()
    print(f"peer_ceiling n={a.n} rtt_ms={a.rtt_ms:g} reps={a.reps} " + " ".join(
        f"{name}: peer={m['peer']:.3f}s expsync={m['expsync']:.3f}s floor={m['floor']:.3f}s "
        f"peer/expsync={m['peer'] / m['expsync']:.2f}x peer/floor={m['peer'] / m['floor']:.2f}x" for name, m in rows))


if __name__ == "__main__":
    main()
