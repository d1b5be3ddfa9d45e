"""Concurrent applies serialize on the apply lock (spec §6): the second waits, then re-plans on
the first's result and finds nothing to do; a lock held too long is exit 5 naming the holder."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa

from expsync.apply.run import APPLY_LOCK
from tests.cli_helpers import run_cli
from tests.integration.apply_support import Repo, cli_env, experiment, spawn, variant
from tests.integration.gateway import THIS_DB, dump_tables

SECRETS = {"KEY_A": "sk-a-0001"}


def desired(tmp_path: Path) -> Repo:
    return Repo(tmp_path).put(*[
        experiment(f"exp-{i}", f"partner/exp-{i}", "active" if i % 2 else "draft",
                   [variant("a", f"m-{i}-a", "env:KEY_A"), variant("b", f"m-{i}-b", "env:KEY_A", weight=2)])
        for i in range(6)
    ])


@pytest.fixture
def holder(pg_engine: sa.Engine) -> Iterator[psycopg.Connection]:
    """A session of another program (named, so the timeout message can name it)."""
    u = pg_engine.url
    conn = psycopg.connect(host=u.host, port=u.port, user=u.username, dbname=u.database, autocommit=True,
                           application_name="ops-maintenance-window")
    try:
        yield conn
    finally:
        conn.close()


def waiting_for_apply_lock(engine: sa.Engine) -> int:
    with engine.connect() as c:
        return c.execute(sa.text(
            f"SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND {THIS_DB} "
            "AND ((classid::bigint << 32) | objid::bigint) = :k"), {"k": APPLY_LOCK}).scalar_one()


def test_two_simultaneous_applies_serialize(tmp_path: Path, pg_engine: sa.Engine, holder: psycopg.Connection) -> None:
    repo = desired(tmp_path)
    env = cli_env(pg_engine, SECRETS)
    holder.execute("SELECT pg_advisory_lock(%s)", (APPLY_LOCK,))
    procs = [spawn(["apply", "--yes", "--lock-timeout", "60", repo.path], env, tmp_path) for _ in range(2)]
    try:
        deadline = time.monotonic() + 30
        while waiting_for_apply_lock(pg_engine) < 2:
            assert time.monotonic() < deadline, [p.poll() for p in procs]
            assert all(p.poll() is None for p in procs), [p.communicate() for p in procs]
            time.sleep(0.05)
    finally:
        holder.execute("SELECT pg_advisory_unlock(%s)", (APPLY_LOCK,))
    outs = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    applied = [o for o, _ in outs if "Applied in one transaction" in o]
    unchanged = [o for o, _ in outs if "No changes" in o]
    assert len(applied) == 1 and len(unchanged) == 1, outs
    with pg_engine.connect() as c:
        assert c.execute(sa.text("SELECT count(*) FROM model_experiment_variant_version")).scalar_one() == 12
        assert sorted(c.execute(sa.text("SELECT outcome FROM expsync_audit")).scalars()) == ["applied", "no_changes"]
    assert run_cli(["plan", "--detailed-exitcode", repo.path], env=env).code == 0


def test_lock_timeout_names_the_holder_and_writes_nothing(tmp_path: Path, pg_engine: sa.Engine,
                                                          holder: psycopg.Connection) -> None:
    repo = desired(tmp_path)
    env = cli_env(pg_engine, SECRETS)
    with pg_engine.connect() as c:
        before = dump_tables(c)
    holder.execute("SELECT pg_advisory_lock(%s)", (APPLY_LOCK,))
    started = time.monotonic()
    r = run_cli(["apply", "--yes", "--lock-timeout", "1", repo.path], env=env)
    assert r.code == 5, r.all
    assert 1 <= time.monotonic() - started < 10
    assert "could not take the apply lock within 1s" in r.err
    assert "ops-maintenance-window" in r.err and f"pid {holder.info.backend_pid}" in r.err
    assert "Traceback" not in r.all
    with pg_engine.connect() as c:
        assert dump_tables(c) == before
    holder.execute("SELECT pg_advisory_unlock(%s)", (APPLY_LOCK,))
    assert run_cli(["apply", "--yes", "--lock-timeout", "1", repo.path], env=env).code == 0


def test_sqlite_lock_timeout(tmp_path: Path, sqlite_engine: sa.Engine) -> None:
    repo = desired(tmp_path)
    env = cli_env(sqlite_engine, SECRETS)
    with sqlite_engine.connect() as c:
        before = dump_tables(c)
    other = sqlite3.connect(sqlite_engine.url.database, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # another writer holds the write lock
        r = run_cli(["apply", "--yes", "--lock-timeout", "1", repo.path], env=env)
        assert r.code == 5, r.all
        assert "could not take the apply lock within 1s" in r.err and "Traceback" not in r.all
        other.execute("ROLLBACK")
    finally:
        other.close()
    with sqlite_engine.connect() as c:
        assert dump_tables(c) == before
    assert run_cli(["apply", "--yes", "--lock-timeout", "1", repo.path], env=env).code == 0
    assert run_cli(["plan", "--detailed-exitcode", repo.path], env=env).code == 0
