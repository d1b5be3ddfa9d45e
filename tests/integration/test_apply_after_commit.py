"""After apply commits, a lost database connection is never exit 1: a session the server ended
while it was idle after the commit is replaced (as a pool's pre-ping would) and the refresh goes
on; a connection lost during the refresh is exit 6 ("applied; cache refresh pending") with the
outbox kept for `cache sync`.

The backend is terminated for real (``pg_terminate_backend`` from a second session), at the
point named by each test, from the statement hook of expsync's psycopg connection
(``BEFORE_STATEMENT``) in this process."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
from expsync.state.connection import BEFORE_STATEMENT, PgConnection

from tests.cli_helpers import run_cli
from tests.integration.apply_support import Repo, cli_env, experiment, variant

SECRETS = {"KEY_A": "sk-a-0001"}


def _terminate(engine: sa.Engine, pid: int) -> None:
    u = engine.url
    with psycopg.connect(host=u.host, port=u.port, user=u.username, dbname=u.database, autocommit=True) as admin:
        assert admin.execute("SELECT pg_terminate_backend(%s, 10000)", (pid,)).fetchone() == (True,)


@pytest.fixture
def hooks() -> Iterator[Callable[[Callable[[PgConnection, str], None]], None]]:
    """``hooks(fn)``: ``fn(connection, statement)`` before each statement of expsync's psycopg
    connections, for the test's duration."""
    added: list[Callable[[PgConnection, str], None]] = []

    def add(fn: Callable[[PgConnection, str], None]) -> None:
        BEFORE_STATEMENT.append(fn)
        added.append(fn)

    yield add
    for fn in added:
        BEFORE_STATEMENT.remove(fn)


def _committed_hot_swap(tmp_path: Path, engine: sa.Engine, redis_url: str, redis_prefix: str) -> tuple[Repo, dict]:
    repo = Repo(tmp_path).put(experiment("foo", "partner/foo", "active",
                                         [variant("a", "foo-a", "env:KEY_A"), variant("b", "foo-b", "env:KEY_A")]))
    env = cli_env(engine, SECRETS, EXPSYNC_REDIS_URL=redis_url, EXPSYNC_REDIS_KEY_PREFIX=redis_prefix)
    assert run_cli(["apply", "--yes", repo.path], env=env).code == 0
    doc = repo.edit("foo")
    doc["variants"][0]["upstream"]["internal_id"] = "foo-a-v2"
    repo.put(doc)
    return repo, env


def _audit_seen(state: dict[str, Any]) -> Callable[[PgConnection, str], None]:
    def before(conn: PgConnection, statement: str) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO EXPSYNC_AUDIT"):
            state["pid"] = conn.raw.info.backend_pid
    return before


def _versions_and_outbox(engine: sa.Engine) -> tuple[int, int]:
    with engine.connect() as c:
        return (c.execute(sa.text("SELECT count(*) FROM model_experiment_variant_version")).scalar_one(),
                c.execute(sa.text("SELECT count(*) FROM expsync_cache_outbox")).scalar_one())


def test_idle_connection_killed_after_commit_is_replaced(tmp_path: Path, pg_engine: sa.Engine, redis_url: str,
                                                         redis_prefix: str, hooks: Callable[..., None]) -> None:
    repo, env = _committed_hot_swap(tmp_path, pg_engine, redis_url, redis_prefix)
    state: dict[str, Any] = {}
    hooks(_audit_seen(state))

    def before(conn: PgConnection, statement: str) -> None:
        # committed, idle: the server ends apply's session just before the refresh's first statement
        if "pid" in state and "pg_advisory_xact_lock" in statement and not state.get("killed"):
            state["killed"] = True
            _terminate(pg_engine, state["pid"])

    hooks(before)
    r = run_cli(["apply", "--yes", repo.path], env=env)
    assert state.get("killed"), "the hook did not run"
    assert r.code == 0, r.all
    assert "cache refreshed" in r.out
    assert _versions_and_outbox(pg_engine) == (3, 0)


def test_connection_lost_during_the_refresh_is_exit_6_and_cache_sync_finishes(
        tmp_path: Path, pg_engine: sa.Engine, redis_url: str, redis_prefix: str, hooks: Callable[..., None]) -> None:
    repo, env = _committed_hot_swap(tmp_path, pg_engine, redis_url, redis_prefix)
    state: dict[str, Any] = {}
    hooks(_audit_seen(state))

    def before(conn: PgConnection, statement: str) -> None:
        # the refresh, holding its lock and about to read the outbox after apply's commit, loses its connection
        if "pid" in state and "UNION ALL" in statement and not state.get("killed"):
            state["killed"] = True
            _terminate(pg_engine, conn.raw.info.backend_pid)

    hooks(before)
    r = run_cli(["apply", "--yes", repo.path], env=env)
    assert state.get("killed"), "the hook did not run"
    assert r.code == 6, r.all
    assert "applied; cache refresh pending" in r.err and "cache sync" in r.err and "Traceback" not in r.all
    assert "Applied in one transaction" in r.out
    versions, outbox = _versions_and_outbox(pg_engine)
    assert versions == 3 and outbox > 0  # the change stands; its cache keys wait in the outbox

    r = run_cli(["cache", "sync"], env=env)
    assert r.code == 0, r.all
    assert _versions_and_outbox(pg_engine) == (3, 0)
    assert run_cli(["plan", "--detailed-exitcode", repo.path], env=env).code == 0
