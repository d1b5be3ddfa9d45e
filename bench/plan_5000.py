"""Plan budget (spec §8): `expsync plan` with no changes on N experiments x 3 variants x 10
versions each, against the floor: a whole Python process that parses the same YAML with the
libyaml loader and runs three plain SELECTs of the same rows.

    .venv/bin/python bench/plan_5000.py [N]      (default 5000; needs the local Postgres)

Prints both wall times (best of 3), the ratio, the plan's peak RSS and its statement count.
"""

from __future__ import annotations

import base64
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import psycopg
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gen import write_corpus  # noqa: E402

from expsync.crypto import encrypt_api_key  # noqa: E402
from expsync.plan import last_applied_of  # noqa: E402
from expsync.desired.loader import load_desired  # noqa: E402
from expsync.state.db import init_db, make_engine  # noqa: E402
from expsync.state.tables import experiment, managed, variant, version  # noqa: E402

PG = "postgresql+psycopg://postgres@127.0.0.1:5432/"
VERSIONS = 10

FLOOR = r"""
import sys, yaml, psycopg
from pathlib import Path
for f in sorted(Path(sys.argv[1]).rglob("*.yaml")):
    yaml.load(f.read_text(), Loader=yaml.CSafeLoader)
with psycopg.connect(sys.argv[2]) as c:
    c.execute("SELECT * FROM model_experiment").fetchall()
    c.execute("SELECT * FROM model_experiment_variant").fetchall()
    c.execute("SELECT * FROM model_experiment_variant_version").fetchall()
"""


def seed(engine: sa.Engine, root: Path, byok: bytes, keys: dict[str, str]) -> None:
    desired, diags = load_desired([str(root)])
    assert not [d for d in diags if d.is_error], diags[:3]
    now = datetime.now(timezone.utc)
    exps, vars_, vers, recs = [], [], [], []
    enc = {name: encrypt_api_key(value, byok) for name, value in keys.items()}
    for d in desired.experiments.values():
        exps.append({"id": d.resolved_id, "public_model_id": d.public_model_id, "name": d.name,
                     "description": d.description, "status": d.status.value, "is_archived": d.archived})
        for v in d.variants:
            vid = d.variant_id(v)
            vars_.append({"id": vid, "experiment_id": d.resolved_id, "label": v.label, "weight": v.weight})
            for i in range(VERSIONS):
                up = v.upstream if i == VERSIONS - 1 else {**v.upstream, "internal_id": f"old-{i}"}
                vers.append({"id": uuid.uuid4(), "variant_id": vid, "upstream": up, "encrypted_api_key": enc[v.api_key.locator],
                             "effective_at": now - timedelta(days=VERSIONS - i)})
        recs.append({"key": d.key, "experiment_id": d.resolved_id, "last_applied": last_applied_of(d)})
    with engine.begin() as conn:
        for table, rows in ((experiment, exps), (variant, vars_), (version, vers), (managed, recs)):
            for i in range(0, len(rows), 5000):
                conn.execute(sa.insert(table), rows[i : i + 5000])
        conn.execute(sa.text("ANALYZE"))


def timed(cmd: list[str], env: dict[str, str], runs: int = 3) -> tuple[float, int, str]:
    best, out = float("inf"), ""
    for _ in range(runs):
        t0 = time.perf_counter()
        p = subprocess.run(cmd, env=env, capture_output=True, text=True)
        best = min(best, time.perf_counter() - t0)
        out = p.stdout + p.stderr
        if p.returncode != 0:
            raise SystemExit(f"{cmd[:3]} exited {p.returncode}:\n{out[-3000:]}")
    return best, p.returncode, out


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
    dbname = f"expsync_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect("host=127.0.0.1 user=postgres dbname=postgres", autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{dbname}"')
    url = PG + dbname
    try:
        engine = make_engine(url)
        init_db(engine)
        byok = os.urandom(32)
        keys = {f"BENCH_KEY_{i}": f"sk-bench-{i}-{uuid.uuid4().hex}" for i in range(3)}
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp) / "experiments"
            size = write_corpus(root, n)
            t0 = time.perf_counter()
            seed(engine, root, byok, keys)
            print(f"seeded {n} experiments x 3 variants x {VERSIONS} versions in {time.perf_counter() - t0:.1f}s "
                  f"({size / 1e6:.1f} MB of YAML)")
            env = {**os.environ, **keys, "EXPSYNC_DATABASE_URL": url,
                   "BYOK_ENCRYPTION_KEY": base64.b64encode(byok).decode()}
            env.pop("EXPSYNC_REDIS_URL", None)
            exe = str(Path(sys.executable).parent / "expsync")
            # plan runs first: RUSAGE_CHILDREN's max RSS is then the plan's own peak
            took, _, out = timed([exe, "plan", "--detailed-exitcode", str(root)], env)
            rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
            assert "No changes" in out, out[-2000:]
            floor, _, _ = timed([sys.executable, "-c", FLOOR, str(root), f"host=127.0.0.1 user=postgres dbname={dbname}"], env)
        # statement count of the read side, in-process
        from expsync.state.reader import read_actual

        count = 0

        def tick(*_: object) -> None:
            nonlocal count
            count += 1

        sa.event.listen(engine, "before_cursor_execute", tick)
        with engine.connect() as conn:
            ids = [r[0] for r in conn.execute(sa.select(experiment.c.id))]
            pids = [r[0] for r in conn.execute(sa.select(experiment.c.public_model_id))]
            count = 0
            read_actual(conn, experiment_ids=ids, public_model_ids=pids, now=datetime.now(timezone.utc))
        engine.dispose()
        print(f"floor (libyaml parse + 3 SELECTs, whole process): {floor:.2f}s")
        print(f"expsync plan, no changes (whole process):          {took:.2f}s")
        print(f"ratio: {took / floor:.2f}x (budget 2x, target 1.5x)   peak RSS of plan: {rss:.0f} MiB")
        print(f"read_actual statements: {count}")
    finally:
        with psycopg.connect("host=127.0.0.1 user=postgres dbname=postgres", autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')


if __name__ == "__main__":
    main()
