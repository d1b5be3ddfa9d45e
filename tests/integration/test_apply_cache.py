"""The Redis refresh converges (spec §2.4, §6): a failed refresh never rolls back the database,
leaves its outbox rows, exits 6 and is finished by any later run or `expsync cache sync`;
afterwards Redis holds exactly what a fresh recomputation from the rows gives."""

from __future__ import annotations

import json
import socket
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis
import sqlalchemy as sa

from expsync.cache.refresh import REFRESH_LOCK, drain
from expsync.errors import CachePending
from tests.cli_helpers import run_cli
from tests.integration.apply_support import Repo, cli_env, experiment, spawn, variant
from tests.integration.gateway import BY_PUBLIC_ID, MEMBERSHIP, THIS_DB, expected_membership

SECRETS = {"KEY_A": "sk-a-0001"}


def closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there any more: connections are refused at once
    return port


def two(i: str) -> list[dict[str, Any]]:
    return [variant("a", f"m-{i}-a", "env:KEY_A"), variant("b", f"m-{i}-b", "env:KEY_A")]


def outbox(engine: sa.Engine) -> list[str]:
    with engine.connect() as c:
        return sorted(c.execute(sa.text("SELECT cache_key FROM expsync_cache_outbox")).scalars())


def assert_converged(engine: sa.Engine, client: redis.Redis, prefix: str) -> None:
    """Redis holds only the membership key, equal to a recomputation; no per-id key; outbox empty."""
    with engine.connect() as c:
        want = expected_membership(c)
    assert client.keys("*") == [(prefix + MEMBERSHIP).encode()]
    assert client.get(prefix + MEMBERSHIP) == want
    assert client.ttl(prefix + MEMBERSHIP) == -1
    assert outbox(engine) == []


@pytest.fixture
def client(redis_url: str) -> redis.Redis:
    return redis.Redis.from_url(redis_url)


@pytest.mark.parametrize("finisher", ["plan", "cache sync", "apply"])
def test_redis_down_commits_the_database_and_a_later_run_finishes_the_refresh(
        finisher: str, tmp_path: Path, pg_engine: sa.Engine, redis_url: str, redis_prefix: str,
        client: redis.Redis) -> None:
    repo = Repo(tmp_path).put(experiment("one", "partner/one", "active", two("1")),
                              experiment("two", "partner/two", "draft", two("2")))
    up = cli_env(pg_engine, SECRETS, EXPSYNC_REDIS_URL=redis_url, EXPSYNC_REDIS_KEY_PREFIX=redis_prefix)
    assert run_cli(["apply", "--yes", repo.path], env=up).code == 0
    # the gateway has cached stale data meanwhile
    for pid in ("partner/one", "partner/two", "partner/three"):
        client.set(redis_prefix + BY_PUBLIC_ID + pid, "stale")
    client.set(redis_prefix + MEMBERSHIP, '["partner/stale"]')

    doc = repo.edit("one")
    doc["variants"][0]["upstream"]["internal_id"] = "m-1-a-v2"
    doc2 = repo.edit("two")
    doc2["status"] = "active"
    repo.put(doc, doc2, experiment("three", "partner/three", "active", two("3")))
    down = dict(up, EXPSYNC_REDIS_URL=f"redis://127.0.0.1:{closed_port()}/0")
    r = run_cli(["apply", "--yes", repo.path], env=down)
    assert r.code == 6, r.all
    assert "expsync cache sync" in r.err and "Traceback" not in r.all
    assert "Applied in one transaction" in r.out
    with pg_engine.connect() as c:  # committed
        assert sorted(c.execute(sa.text("SELECT public_model_id FROM model_experiment WHERE status = 'active'"))
                      .scalars()) == ["partner/one", "partner/three", "partner/two"]
    assert outbox(pg_engine) == sorted(redis_prefix + BY_PUBLIC_ID + p for p in ("partner/one", "partner/three",
                                                                                "partner/two")) + [redis_prefix + MEMBERSHIP]
    assert client.get(redis_prefix + MEMBERSHIP) == b'["partner/stale"]'  # untouched while down

    # another run while Redis is still down keeps the outbox (and says so, without failing a plan)
    p = run_cli(["plan", repo.path], env=down)
    assert p.code == 0 and "expsync cache sync" in p.err and outbox(pg_engine)

    if finisher == "plan":
        r = run_cli(["plan", "--detailed-exitcode", repo.path], env=up)
        assert r.code == 0 and "finished a pending cache refresh" in r.err, r.all
    elif finisher == "cache sync":
        r = run_cli(["cache", "sync"], env=up)
        assert r.code == 0 and "cache synced" in r.out, r.all
    else:
        r = run_cli(["apply", "--yes", repo.path], env=up)
        assert r.code == 0 and "No changes" in r.out, r.all
    assert_converged(pg_engine, client, redis_prefix)
    assert client.get(redis_prefix + MEMBERSHIP) == b'["partner/one","partner/three","partner/two"]'


def test_cache_sync_from_scratch(tmp_path: Path, pg_engine: sa.Engine, redis_url: str, redis_prefix: str,
                                 client: redis.Redis) -> None:
    repo = Repo(tmp_path).put(experiment("one", "partner/one", "active", two("1")),
                              experiment("uni", "partner/modèle", "active", two("u")),
                              experiment("two", "partner/two", "draft", two("2")))
    env = cli_env(pg_engine, SECRETS)
    r = run_cli(["apply", "--yes", repo.path], env=env)  # no Redis configured
    assert r.code == 0 and "cache refresh skipped: EXPSYNC_REDIS_URL is not set" in r.err
    with pg_engine.begin() as c:  # and a routing experiment made in the admin UI
        c.execute(sa.text("INSERT INTO model_experiment (public_model_id, name, status) "
                          "VALUES ('partner/ui-only', 'ui', 'paused')"))
    for pid in ("partner/one", "partner/modèle", "partner/ui-only"):
        client.set(redis_prefix + BY_PUBLIC_ID + pid, "stale")
    client.set(redis_prefix + MEMBERSHIP, "[]")

    synced = run_cli(["cache", "sync"], env=dict(env, EXPSYNC_REDIS_URL=redis_url,
                                                  EXPSYNC_REDIS_KEY_PREFIX=redis_prefix))
    assert synced.code == 0, synced.all
    assert_converged(pg_engine, client, redis_prefix)
    assert client.get(redis_prefix + MEMBERSHIP) == '["partner/modèle","partner/one","partner/ui-only"]'.encode()
    assert run_cli(["cache", "sync"], env=env).code == 3  # no Redis configured: says so


class PausingRedis(redis.Redis):
    """A real client that stops before writing until told to go (to interleave two refreshes)."""

    reached: threading.Event
    go: threading.Event

    def pipeline(self, *args: Any, **kwargs: Any) -> Any:
        self.reached.set()
        assert self.go.wait(60)
        return super().pipeline(*args, **kwargs)


def test_a_slow_refresh_cannot_overwrite_a_newer_one(tmp_path: Path, pg_engine: sa.Engine, redis_url: str,
                                                     redis_prefix: str, client: redis.Redis) -> None:
    """A refresh that read the rows before another apply committed must not SET its older
    membership value after that apply's own refresh SET the newer one."""
    repo = Repo(tmp_path).put(experiment("one", "partner/one", "active", two("1")))
    env = cli_env(pg_engine, SECRETS, EXPSYNC_REDIS_URL=redis_url, EXPSYNC_REDIS_KEY_PREFIX=redis_prefix)
    assert run_cli(["apply", "--yes", repo.path], env=env).code == 0

    slow = PausingRedis.from_url(redis_url)
    slow.reached, slow.go = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def sync() -> None:
        try:
            drain(pg_engine, slow, prefix=redis_prefix, full=True)
        except BaseException as e:  # noqa: BLE001 - reported by the test thread
            errors.append(e)

    t = threading.Thread(target=sync)
    t.start()
    try:
        assert slow.reached.wait(30)  # it has read ["partner/one"] and is about to write
        repo.put(experiment("two", "partner/two", "active", two("2")))
        proc = spawn(["apply", "--yes", repo.path], env, tmp_path)
        deadline = time.monotonic() + 60
        while proc.poll() is None and not waiting_on_advisory_lock(pg_engine):
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        slow.go.set()
        t.join(60)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, out + err
    assert not errors, errors
    assert_converged(pg_engine, client, redis_prefix)
    assert json.loads(client.get(redis_prefix + MEMBERSHIP)) == ["partner/one", "partner/two"]


def waiting_on_advisory_lock(engine: sa.Engine) -> bool:
    with engine.connect() as c:
        return bool(c.execute(sa.text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
                                      f"AND {THIS_DB}"))
                    .scalar_one())


def test_refresh_lock_not_free_is_cache_pending(tmp_path: Path, db_engine: sa.Engine, redis_url: str,
                                                 client: redis.Redis) -> None:
    """A refresh that cannot take the refresh lock in time is 'cache pending' (exit 6), not an
    unexpected error, and keeps the outbox (SQLite: another writer holds the database)."""
    repo = Repo(tmp_path).put(experiment("one", "partner/one", "active", two("1")))
    assert run_cli(["apply", "--yes", repo.path], env=cli_env(db_engine, SECRETS)).code == 0  # no Redis: pending
    assert outbox(db_engine)
    u = db_engine.url
    if db_engine.dialect.name == "postgresql":
        other = psycopg.connect(host=u.host, port=u.port, user=u.username, dbname=u.database, autocommit=True)
        other.execute("SELECT pg_advisory_lock(%s)", (REFRESH_LOCK,))
    else:
        other = sqlite3.connect(u.database, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(CachePending, match="expsync cache sync"):
            drain(db_engine, client, lock_timeout=0.2)
    finally:
        other.close()
    assert outbox(db_engine) and client.keys("*") == []
    drain(db_engine, client)
    assert_converged(db_engine, client, "")
