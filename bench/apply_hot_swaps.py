"""Apply budget (spec §8): `apply` of 1,000 hot swaps in under 2 s, with a statement count that
does not grow with the number of swaps.

    .venv/bin/python bench/apply_hot_swaps.py [N]      (default 1000; needs the local Postgres)

On a fresh database (created on 127.0.0.1 and dropped afterwards) it creates N active
experiments x 2 variants through apply, then changes every variant-0 upstream (N hot swaps)
and times applying that: in-process (lock -> re-plan -> execute -> audit -> commit; best of
3 rounds, each with new upstreams) and as a whole `expsync apply --yes` process. Prints the
statements issued (counted with a SQLAlchemy before_cursor_execute listener), the rows
inserted, and the statement count of 10 swaps for comparison.
"""

from __future__ import annotations

import base64
import os
import re
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg
import sqlalchemy as sa
import yaml
from sqlalchemy import event

from expsync.apply.run import ApplyResult, apply
from expsync.pipeline import Settings
from expsync.secrets import Redactor, resolve_all, uses_in
from expsync.desired.loader import LoadOptions, load_desired
from expsync.state.db import init_db, make_engine

HOST = "127.0.0.1"
USER = os.environ.get("PGUSER") or "postgres"
TABLES = ("model_experiment", "model_experiment_variant", "model_experiment_variant_version", "expsync_managed",
          "expsync_cache_outbox", "expsync_audit")


def write_experiments(root: Path, n: int, tag: str, *, only: int | None = None) -> None:
    """N active experiments x 2 variants; variant 0's internal_id carries ``tag`` (for the
    first ``only`` experiments; the others keep their file)."""
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n if only is None else only):
        doc = {
            "key": f"swap-{i:05d}", "public_model_id": f"partner/swap-{i:05d}", "name": f"Hot swap bench {i}",
            "status": "active",
            "variants": [
                {"label": "v0", "weight": 1, "api_key": "env:BENCH_KEY_A",
                 "upstream": {"internal_id": f"model-{i}-v0-{tag}", "base_url": "https://api.partner.example/v1",
                              "extra_body": {"temperature": 0.2}, "remove_from_body": ["reasoning_effort"]}},
                {"label": "v1", "weight": 1, "api_key": "env:BENCH_KEY_B",
                 "upstream": {"internal_id": f"model-{i}-v1", "base_url": "https://api.partner.example/v1",
                              "opencode_settings": {"ai_sdk_provider": "openai-compatible"}}},
            ],
        }
        (root / f"swap-{i:05d}.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))


def counts(engine: sa.Engine) -> dict[str, int]:
    with engine.connect() as c:
        return {t: c.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar_one() for t in TABLES}


class Counter:
    def __init__(self, engine: sa.Engine) -> None:
        self.n = 0
        self.kinds: dict[str, int] = {}
        event.listen(engine, "before_cursor_execute", self)

    def __call__(self, conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool) -> None:
        self.n += 1
        head = " ".join(statement.split()[:3])
        self.kinds[head] = self.kinds.get(head, 0) + 1

    def reset(self) -> None:
        self.n, self.kinds = 0, {}


def apply_dir(engine: sa.Engine, root: Path, env: dict[str, str]) -> tuple[ApplyResult, float]:
    desired, diags = load_desired([str(root)], LoadOptions())
    assert not [d for d in diags if d.is_error], diags[:3]
    secrets, diags = resolve_all(uses_in(desired), environ=env, cwd=root, redactor=Redactor())
    assert not diags, diags
    t0 = time.perf_counter()
    result = apply(engine, desired, secrets, Settings(environ=env, cwd=root))
    return result, time.perf_counter() - t0


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    name = f"expsync_bench_apply_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(host=HOST, user=USER, dbname="postgres", autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = f"postgresql+psycopg://{USER}@{HOST}:5432/{name}"
    env = {**os.environ, "EXPSYNC_DATABASE_URL": url, "BENCH_KEY_A": "sk-bench-a-0001", "BENCH_KEY_B": "sk-bench-b-0002",
           "BYOK_ENCRYPTION_KEY": base64.b64encode(os.urandom(32)).decode()}
    for k in ("EXPSYNC_REDIS_URL", "EXPSYNC_ACTOR", "GITHUB_SHA"):
        env.pop(k, None)
    engine = make_engine(url)
    try:
        init_db(engine)
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp) / "experiments"
            write_experiments(root, n, "r0")
            created, secs = apply_dir(engine, root, env)
            print(f"setup: created {n} active experiments x 2 variants through apply in {secs:.2f}s "
                  f"({created.statements} statements)")
            with engine.connect() as c:
                c.execute(sa.text("ANALYZE"))

            counter = Counter(engine)
            rounds = []
            for r in (1, 2, 3):
                write_experiments(root, n, f"r{r}")
                before = counts(engine)
                counter.reset()
                result, secs = apply_dir(engine, root, env)
                issued, kinds_seen = counter.n, dict(counter.kinds)
                after = counts(engine)
                swaps = result.plan.op_counts().get("InsertVersion", 0)
                assert swaps == n, result.plan.op_counts()
                rounds.append((secs, issued, kinds_seen, {t: after[t] - before[t] for t in TABLES}))
            best = min(rounds, key=lambda x: x[0])
            secs, statements, kinds, delta = best
            print(f"\n{n} hot swaps, in-process apply (lock -> re-plan -> execute -> audit -> commit):")
            print(f"  wall time        best {secs:.3f}s of 3 rounds ({', '.join(f'{x[0]:.3f}s' for x in rounds)});"
                  f" budget 2 s")
            print(f"  statements       {statements} (every round: {[x[1] for x in rounds]})")
            for k, v in sorted(kinds.items(), key=lambda kv: -kv[1]):
                print(f"      {v:3d}  {k} ...")
            print(f"  rows inserted    {delta['model_experiment_variant_version']} versions, "
                  f"{delta['expsync_cache_outbox']} outbox, {delta['expsync_audit']} audit; expsync_managed "
                  f"rewritten ({n} rows deleted and inserted); no experiment or variant row "
                  f"({delta['model_experiment']}/{delta['model_experiment_variant']})")

            write_experiments(root, n, "small", only=10)
            counter.reset()
            small, _ = apply_dir(engine, root, env)
            issued = counter.n
            assert small.plan.op_counts().get("InsertVersion") == 10
            print(f"  10 hot swaps     {issued} statements (same count: {issued == statements})")

            write_experiments(root, n, "cli")
            t0 = time.perf_counter()
            p = subprocess.run([sys.executable, "-m", "expsync.cli", "apply", "--yes", str(root)], env=env,
                               capture_output=True, text=True, stdin=subprocess.DEVNULL)
            wall = time.perf_counter() - t0
            assert p.returncode == 0, p.stdout[-2000:] + p.stderr
            m = re.search(r"(\d+) operation\(s\), (\d+) statement\(s\), ([\d.]+)s", p.stdout)
            assert m, p.stdout[-500:]
            print(f"\n{n} hot swaps, whole `expsync apply --yes` process: {wall:.2f}s wall "
                  f"(apply transaction {m.group(3)}s, {m.group(2)} statements; the rest is start-up, loading "
                  f"{n} YAML files, resolving secrets and rendering the {n}-experiment plan)")
    finally:
        engine.dispose()
        with psycopg.connect(host=HOST, user=USER, dbname="postgres", autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
