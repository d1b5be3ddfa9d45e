"""A killed apply leaves the database fully before or fully after, and the cache converges on
the next run (spec §9): SIGKILL at the last statement of the transaction, and after COMMIT
before the Redis refresh."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import psycopg
import redis
import sqlalchemy as sa

from expsync.cache.refresh import REFRESH_LOCK
from tests.cli_helpers import run_cli
from tests.integration.apply_support import Repo, cli_env, experiment, spawn, variant
from tests.integration.gateway import BY_PUBLIC_ID, MEMBERSHIP, THIS_DB, dump_tables, expected_membership

SECRETS = {"KEY_A": "sk-a-0001", "KEY_B": "sk-b-0002"}


def expsync_backend(engine: sa.Engine) -> tuple[int, str, str | None] | None:
    with engine.connect() as c:
        row = c.execute(sa.text(
            "SELECT pid, query, wait_event_type FROM pg_stat_activity WHERE datname = current_database() "
            "AND application_name = 'expsync' AND pid <> pg_backend_pid()")).first()
    return tuple(row) if row else None  # type: ignore[return-value]


def test_sigkill_at_the_last_statement_leaves_the_database_as_before(tmp_path: Path, pg_engine: sa.Engine) -> None:
    env = cli_env(pg_engine, SECRETS)
    repo = Repo(tmp_path).put(
        experiment("existing", "partner/existing", "active",
                   [variant("a", "existing-a", "env:KEY_A"), variant("b", "existing-b", "env:KEY_A")]),
        experiment("old-draft", "partner/old-draft", "draft", [variant("a", "d-a", "env:KEY_A")]),
    )
    assert run_cli(["apply", "--yes", repo.path], env=env).code == 0

    # the big change: 300 new experiments, a hot swap, a rotation, a pause and a deleted draft
    repo.put(*[
        experiment(f"bulk-{i:03d}", f"partner/bulk-{i:03d}", "active" if i % 3 else "draft",
                   [variant("a", f"bulk-{i}-a", "env:KEY_A"), variant("b", f"bulk-{i}-b", "env:KEY_B", weight=2)])
        for i in range(300)
    ])
    doc = repo.edit("existing")
    doc["status"] = "paused"
    doc["variants"][0]["upstream"]["internal_id"] = "existing-a-v2"
    doc["variants"][1]["api_key"] = "env:KEY_B"
    repo.put(doc)
    repo.remove("old-draft")
    with pg_engine.connect() as c:
        before = dump_tables(c)

    u = pg_engine.url
    blocker = psycopg.connect(host=u.host, port=u.port, user=u.username, dbname=u.database)
    try:
        blocker.execute("LOCK TABLE expsync_audit IN ACCESS EXCLUSIVE MODE")  # held until rollback
        proc = spawn(["apply", "--yes", repo.path], env, tmp_path)
        deadline = time.monotonic() + 60
        while True:
            backend = expsync_backend(pg_engine)
            if backend and backend[2] == "Lock":
                break
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, backend
            time.sleep(0.05)
        pid, query, _ = backend
        assert query.lstrip().upper().startswith("INSERT INTO EXPSYNC_AUDIT"), query
        with pg_engine.connect() as c:  # by now its transaction has written to every other table
            written = set(c.execute(sa.text(
                "SELECT relation::regclass::text FROM pg_locks WHERE pid = :pid AND mode = 'RowExclusiveLock' "
                "AND granted AND locktype = 'relation'"), {"pid": pid}).scalars())
        assert {"model_experiment", "model_experiment_variant", "model_experiment_variant_version",
                "expsync_managed", "expsync_cache_outbox"} <= written, written
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        assert proc.returncode == -signal.SIGKILL
    finally:
        blocker.rollback()
        blocker.close()

    deadline = time.monotonic() + 30
    while expsync_backend(pg_engine) is not None:  # the orphaned backend notices and rolls back
        assert time.monotonic() < deadline
        time.sleep(0.05)
    with pg_engine.connect() as c:
        assert dump_tables(c) == before

    r = run_cli(["apply", "--yes", repo.path], env=env)
    assert r.code == 0 and "Applied in one transaction" in r.out, r.all
    assert run_cli(["plan", "--detailed-exitcode", repo.path], env=env).code == 0
    with pg_engine.connect() as c:
        assert c.execute(sa.text("SELECT count(*) FROM model_experiment")).scalar_one() == 301


def _stopped_at_the_refresh_lock(engine: sa.Engine, args: list[str], env: dict, cwd: Path,
                                 sig: signal.Signals) -> subprocess.Popen[str]:
    """``expsync args`` committed and waiting for the refresh lock (another refresh holds it),
    then sent ``sig``; returns the finished process."""
    u = engine.url
    blocker = psycopg.connect(host=u.host, port=u.port, user=u.username, dbname=u.database, autocommit=True)
    try:
        blocker.execute("SELECT pg_advisory_lock(%s)", (REFRESH_LOCK,))
        proc = spawn(args, env, cwd)
        deadline = time.monotonic() + 60
        while True:
            with engine.connect() as c:
                waiting = c.execute(sa.text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                                            f"AND NOT granted AND {THIS_DB}")).scalar_one()
            if waiting:
                break
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.05)
        proc.send_signal(sig)
        proc.wait(timeout=30)
    finally:
        blocker.close()
    return proc


def test_sigkill_after_commit_before_the_cache_refresh_converges_on_the_next_run(
        tmp_path: Path, pg_engine: sa.Engine, redis_url: str, redis_prefix: str) -> None:
    """Killed between COMMIT and the Redis refresh (held there by another refresh holding the
    refresh lock): the database is fully after, the outbox remembers, the next plan finishes."""
    env = cli_env(pg_engine, SECRETS, EXPSYNC_REDIS_URL=redis_url, EXPSYNC_REDIS_KEY_PREFIX=redis_prefix)
    repo = Repo(tmp_path).put(experiment("one", "partner/one", "active",
                                         [variant("a", "one-a", "env:KEY_A"), variant("b", "one-b", "env:KEY_A")]))
    client = redis.Redis.from_url(redis_url)
    client.set(redis_prefix + BY_PUBLIC_ID + "partner/one", "stale")
    _stopped_at_the_refresh_lock(pg_engine, ["apply", "--yes", repo.path], env, tmp_path, signal.SIGKILL)
    with pg_engine.connect() as c:
        assert c.execute(sa.text("SELECT status FROM model_experiment")).scalar_one() == "active"  # committed
        assert c.execute(sa.text("SELECT count(*) FROM expsync_cache_outbox")).scalar_one() == 2
    assert client.get(redis_prefix + BY_PUBLIC_ID + "partner/one") == b"stale"

    r = run_cli(["plan", "--detailed-exitcode", repo.path], env=env)
    assert r.code == 0 and "finished a pending cache refresh" in r.err, r.all
    with pg_engine.connect() as c:
        assert client.get(redis_prefix + MEMBERSHIP) == expected_membership(c) == b'["partner/one"]'
        assert c.execute(sa.text("SELECT count(*) FROM expsync_cache_outbox")).scalar_one() == 0
    assert client.keys("*") == [(redis_prefix + MEMBERSHIP).encode()]


def test_ctrl_c_after_commit_says_applied_and_is_exit_6(tmp_path: Path, pg_engine: sa.Engine, redis_url: str,
                                                       redis_prefix: str) -> None:
    """Ctrl-C (SIGINT) once the transaction committed, while the refresh waits: the change
    stands, so it is exit 6 "applied; cache refresh pending" as every failure after the commit,
    never 130 "Aborted." (which reads as "nothing happened"); the next run finishes the refresh."""
    env = cli_env(pg_engine, SECRETS, EXPSYNC_REDIS_URL=redis_url, EXPSYNC_REDIS_KEY_PREFIX=redis_prefix)
    repo = Repo(tmp_path).put(experiment("one", "partner/one", "active",
                                         [variant("a", "one-a", "env:KEY_A"), variant("b", "one-b", "env:KEY_A")]))
    proc = _stopped_at_the_refresh_lock(pg_engine, ["apply", "--yes", repo.path], env, tmp_path, signal.SIGINT)
    out, err = proc.communicate()
    assert proc.returncode == 6, (proc.returncode, out, err)
    assert "applied; cache refresh pending (interrupted)" in err and "cache sync" in err, err
    assert "Aborted" not in err and "Traceback" not in err
    with pg_engine.connect() as c:
        assert c.execute(sa.text("SELECT status FROM model_experiment")).scalar_one() == "active"  # committed
        assert c.execute(sa.text("SELECT count(*) FROM expsync_cache_outbox")).scalar_one() == 2
        assert c.execute(sa.text("SELECT outcome FROM expsync_audit")).scalars().all() == ["applied"]

    r = run_cli(["plan", "--detailed-exitcode", repo.path], env=env)
    assert r.code == 0 and "finished a pending cache refresh" in r.err, r.all
    with pg_engine.connect() as c:
        assert redis.Redis.from_url(redis_url).get(redis_prefix + MEMBERSHIP) == expected_membership(c)
        assert c.execute(sa.text("SELECT count(*) FROM expsync_cache_outbox")).scalar_one() == 0
