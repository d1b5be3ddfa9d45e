"""What a plan sends over the wire on Postgres, counted by a proxy that parses the frontend
protocol (``bench/pgwire.py``): round trips and server-side executions, constant whatever the
number of experiments; the reads (clock included) are one round trip."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import sqlalchemy as sa

from bench.pgwire import WireCounter
from expsync.desired.loader import load_desired
from expsync.model import Secret, SecretRef
from expsync.pipeline import Settings, check_initialized, compute_plan
from expsync.state.db import begin, make_engine
from tests.cli_helpers import run_cli
from tests.integration.apply_support import Repo, cli_env, experiment, upstream, url_of, variant

SECRETS = {"K": "sk-stmt-000111"}


def _repo(tmp: Path, n: int) -> Repo:
    repo = Repo(tmp)
    repo.put(*[experiment(f"e{i}", f"partner/e{i}", "active", [variant("a", upstream(f"m{i}"), "env:K"),
                                                              variant("b", upstream(f"n{i}"), "env:K")])
               for i in range(n)])
    return repo


def test_plan_reads_in_one_round_trip(tmp_path: Path, pg_engine: sa.Engine) -> None:
    """The database clock and the reader's five statements go out as one pipelined batch."""
    reads = []
    for n in (1, 40):
        repo = _repo(tmp_path / str(n), n)
        assert run_cli(["apply", "--yes", repo.path], env=cli_env(pg_engine, SECRETS)).code == 0
        desired, _ = load_desired([repo.path])
        secrets = {SecretRef("env", "K"): Secret(SECRETS["K"])}
        settings = Settings(environ=dict(cli_env(pg_engine, SECRETS)))  # type: ignore[arg-type]
        with WireCounter() as w:
            engine = make_engine(w.url(url_of(pg_engine)))
            try:
                with begin(engine, snapshot=True) as conn:
                    check_initialized(conn)
                    before = w.stats()
                    computed = compute_plan(conn, desired, secrets, settings, now=datetime.now(timezone.utc))
                    after = w.stats()
                    conn.rollback()
            finally:
                engine.dispose()
        assert not computed.plan.has_changes
        reads.append((after["round_trips"] - before["round_trips"], after["executes"] - before["executes"]))
    # BEGIN (psycopg waits for it; the table check above needed no transaction), then one batch:
    # SELECT now() + the reader's 4
    assert reads == [(2, 6), (2, 6)]


def test_whole_plan_command_round_trips_are_few_and_constant(tmp_path: Path, pg_engine: sa.Engine) -> None:
    """`expsync plan` on Postgres (a bare psycopg connection, no SQLAlchemy): connect (startup
    only: no dialect questions); the gateway profile's detection (table check and column lookup
    in one question, no transaction); then one batch: the read-only snapshot's BEGIN, the table
    check again (inside the snapshot), now() and the four reads. No ROLLBACK round trip: closing
    the connection ends the snapshot."""
    seen = []
    for n in (1, 40):
        repo = _repo(tmp_path / str(n), n)
        assert run_cli(["apply", "--yes", repo.path], env=cli_env(pg_engine, SECRETS)).code == 0
        with WireCounter(log=True) as w:
            r = run_cli(["plan", "--detailed-exitcode", repo.path],
                        env=cli_env(pg_engine, SECRETS, EXPSYNC_DATABASE_URL=w.url(url_of(pg_engine))))
            stats = w.stats()
            log = list(w.log or [])
        assert r.code == 0, r.out + r.err
        seen.append((stats["connections"], stats["round_trips"], stats["executes"]))
        assert [line.split()[1] for line in log] == ["SELECT", "BEGIN", "SELECT", "SELECT", "SELECT", "SELECT",
                                                     "SELECT", "SELECT"], log
        assert "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY" in log[1]
    # round trips: startup, detection, batch; executions: 1 + (BEGIN, table check, now(), 4 reads)
    assert seen == [(1, 3, 8), (1, 3, 8)]
