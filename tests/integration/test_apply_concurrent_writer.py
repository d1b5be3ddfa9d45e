"""A writer that does not take expsync's apply lock - the gateway's admin API, statement for
statement as ../shared/bench/peer_replay.py replays it (autocommit, one write per mutation) -
never has a change silently lost by apply:

* it commits between apply's re-plan and apply's row locks: apply sees the fresh rows after
  locking and exits 5 (E509) having written nothing, or the routing index refuses (exit 5);
* it starts after apply locked the rows: its statement waits for apply's commit (a foreign-key
  check or a row lock) and then lands on top of apply's change.

Real connections and threads on Postgres; the moment is chosen from the statement hook of
expsync's psycopg connection (``BEFORE_STATEMENT``) in this process (the writer runs on its own
psycopg connection)."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
from psycopg.types.json import Jsonb

from expsync.state.connection import BEFORE_STATEMENT
from tests.cli_helpers import run_cli
from tests.integration.apply_support import Repo, cli_env, experiment, upstream, variant
from tests.integration.gateway import admin_add_variant, admin_add_version, admin_create_experiment, dump_tables

SECRETS = {"KEY_A": "sk-a-0001"}
ROUTING = ["active", "paused"]


class AdminApi:
    """The admin router's mutations on one autocommit connection (peer_replay.Router)."""

    def __init__(self, engine: sa.Engine) -> None:
        u = engine.url
        self.conn = psycopg.connect(host=u.host, port=u.port, user=u.username, dbname=u.database, autocommit=True,
                                    application_name="admin-ui")
        self.pid = self.conn.info.backend_pid

    def q(self, sql: str, params: tuple[Any, ...] = ()) -> Any:
        return self.conn.execute(sql, params)

    def swap_variant_version(self, variant_id: uuid.UUID, up: dict[str, Any]) -> None:
        var = self.q("SELECT id, experiment_id, label, weight FROM model_experiment_variant WHERE id = %s LIMIT 1",
                     (variant_id,)).fetchone()
        exp = self.q("SELECT id, public_model_id, status FROM model_experiment WHERE id = %s LIMIT 1",
                     (var[1],)).fetchone()
        assert exp[2] != "completed"
        prev = self.q("SELECT encrypted_api_key FROM model_experiment_variant_version WHERE variant_id = %s "
                      "ORDER BY effective_at DESC, id DESC LIMIT 1", (var[0],)).fetchone()
        self.q("INSERT INTO model_experiment_variant_version (variant_id, upstream, encrypted_api_key, created_by) "
               "VALUES (%s, %s, %s, %s) RETURNING id", (var[0], Jsonb(up), Jsonb(prev[0]), "admin-ui"))

    def rename(self, experiment_id: uuid.UUID, name: str) -> None:
        self.q("UPDATE model_experiment SET name = %s, updated_at = now() WHERE id = %s RETURNING id",
               (name, experiment_id))

    def activate(self, experiment_id: uuid.UUID) -> None:
        exp = self.q("SELECT id, public_model_id, status, started_at FROM model_experiment WHERE id = %s LIMIT 1",
                     (experiment_id,)).fetchone()
        variants = self.q("SELECT id FROM model_experiment_variant WHERE experiment_id = %s ORDER BY id",
                          (exp[0],)).fetchall()
        self.q("SELECT id FROM model_experiment_variant_version WHERE variant_id = ANY(%s) "
               "ORDER BY variant_id, effective_at DESC, id DESC", ([v[0] for v in variants],)).fetchall()
        if self.q("SELECT id FROM model_experiment WHERE public_model_id = %s AND status = ANY(%s) AND id <> %s "
                  "LIMIT 1", (exp[1], ROUTING, exp[0])).fetchone():
            raise RuntimeError(f"Another active or paused experiment exists for {exp[1]}")
        self.q("UPDATE model_experiment SET status = 'active', started_at = now(), updated_at = now() "
               "WHERE id = %s RETURNING id", (exp[0],))

    def close(self) -> None:
        self.conn.close()


@pytest.fixture
def admin(pg_engine: sa.Engine) -> Iterator[AdminApi]:
    api = AdminApi(pg_engine)
    yield api
    api.close()


@pytest.fixture
def on_statement() -> Iterator[Callable[[Callable[[str], bool], Callable[[], None]], None]]:
    """``on_statement(match, action)``: run ``action`` once, just before the first statement of
    an apply (any engine in this process) for which ``match(statement)`` is true."""
    added = []

    def add(match: Callable[[str], bool], action: Callable[[], None]) -> None:
        done = []

        def before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            if not done and match(statement):
                done.append(True)
                action()

        def hook(conn: Any, statement: str) -> None:
            before(conn, None, statement)

        BEFORE_STATEMENT.append(hook)
        added.append(hook)

    yield add
    for fn in added:
        BEFORE_STATEMENT.remove(fn)


def is_row_lock(statement: str) -> bool:
    return "FOR UPDATE" in statement and "model_experiment " in statement.replace("\n", " ") + " "


def is_first_write(statement: str) -> bool:
    return statement.lstrip().upper().startswith(("INSERT INTO MODEL_EXPERIMENT", "UPDATE MODEL_EXPERIMENT"))


def ids(engine: sa.Engine, public_model_id: str) -> tuple[uuid.UUID, dict[str, uuid.UUID]]:
    with engine.connect() as c:
        eid = c.execute(sa.text("SELECT id FROM model_experiment WHERE public_model_id = :p AND name NOT LIKE 'UI %'"),
                        {"p": public_model_id}).scalar_one()
        labels = dict(c.execute(sa.text("SELECT label, id FROM model_experiment_variant WHERE experiment_id = :e"),
                                {"e": eid}).all())
    return eid, labels


def versions_of(engine: sa.Engine, variant_id: uuid.UUID) -> list[tuple[str, str | None]]:
    """(internal_id, created_by) newest first."""
    with engine.connect() as c:
        return [(r[0]["internal_id"], r[1]) for r in c.execute(sa.text(
            "SELECT upstream, created_by FROM model_experiment_variant_version WHERE variant_id = :v "
            "ORDER BY effective_at DESC, id DESC"), {"v": variant_id}).all()]


def gateway_rows(engine: sa.Engine) -> dict[str, list]:
    with engine.connect() as c:
        d = dump_tables(c)
    return {k: v for k, v in d.items() if k != "expsync_audit"}


@pytest.fixture
def foo(tmp_path: Path, pg_engine: sa.Engine) -> Repo:
    """``foo`` active on partner/foo, applied; the YAML then hot-swaps variant ``a``."""
    repo = Repo(tmp_path).put(experiment("foo", "partner/foo", "active",
                                         [variant("a", "foo-a", "env:KEY_A"), variant("b", "foo-b", "env:KEY_A")]))
    assert run_cli(["apply", "--yes", repo.path], env=cli_env(pg_engine, SECRETS)).code == 0
    doc = repo.edit("foo")
    doc["variants"][0]["upstream"]["internal_id"] = "foo-a-git"
    repo.put(doc)
    return repo


@pytest.mark.parametrize("change", ["insert_version", "rename"])
def test_writer_between_replan_and_locks_makes_apply_exit_5(pg_engine: sa.Engine, foo: Repo, admin: AdminApi,
                                                            on_statement: Callable[..., None], change: str) -> None:
    eid, variants = ids(pg_engine, "partner/foo")
    writes = {"insert_version": lambda: admin.swap_variant_version(variants["a"], upstream("foo-a-admin")),
              "rename": lambda: admin.rename(eid, "renamed in the admin UI")}
    snapshots: list[dict[str, list]] = []

    def writer_commits() -> None:  # on its own connection, committed before apply locks
        writes[change]()
        snapshots.append(gateway_rows(pg_engine))

    on_statement(is_row_lock, writer_commits)
    r = run_cli(["apply", "--yes", foo.path], env=cli_env(pg_engine, SECRETS))
    assert snapshots, "the writer did not run"
    assert r.code == 5, r.all
    assert "E509" in r.err and "partner/foo" in r.err and "nothing was applied" in r.err and "Traceback" not in r.all
    assert gateway_rows(pg_engine) == snapshots[0]  # the writer's change stands; apply wrote nothing
    # a fresh run plans on the new rows (the admin's change shows as drift) and applies
    r = run_cli(["apply", "--yes", foo.path], env=cli_env(pg_engine, SECRETS))
    assert r.code == 0, r.all
    assert versions_of(pg_engine, variants["a"])[0] == ("foo-a-git", None)


def _blocked(engine: sa.Engine, pid: int) -> bool:
    with engine.connect() as c:
        return c.execute(sa.text("SELECT wait_event_type FROM pg_stat_activity WHERE pid = :p"),
                         {"p": pid}).scalar() == "Lock"


@pytest.mark.parametrize("change", ["insert_version", "rename"])
def test_writer_after_the_locks_waits_and_lands_on_top(pg_engine: sa.Engine, foo: Repo, admin: AdminApi,
                                                       on_statement: Callable[..., None], change: str) -> None:
    eid, variants = ids(pg_engine, "partner/foo")
    writes = {"insert_version": lambda: admin.swap_variant_version(variants["a"], upstream("foo-a-admin")),
              "rename": lambda: admin.rename(eid, "renamed in the admin UI")}
    errors: list[BaseException] = []
    threads: list[threading.Thread] = []

    def run_writer() -> None:
        try:
            writes[change]()
        except BaseException as e:  # noqa: BLE001 - reported by the test
            errors.append(e)

    def writer_starts_and_waits() -> None:
        t = threading.Thread(target=run_writer)
        t.start()
        threads.append(t)
        deadline = time.monotonic() + 20
        while not _blocked(pg_engine, admin.pid):  # the admin API now waits on apply's row locks
            assert t.is_alive() and not errors, f"the writer did not wait for apply's locks: {errors}"
            assert time.monotonic() < deadline
            time.sleep(0.02)

    on_statement(is_first_write, writer_starts_and_waits)
    r = run_cli(["apply", "--yes", foo.path], env=cli_env(pg_engine, SECRETS))
    assert threads, "the writer did not run"
    threads[0].join(20)
    assert r.code == 0, r.all
    assert not errors and not threads[0].is_alive()
    if change == "insert_version":  # apply's version first, the admin's on top: both kept, in order
        assert [v for v, _ in versions_of(pg_engine, variants["a"])[:3]] == ["foo-a-admin", "foo-a-git", "foo-a"]
    else:
        assert versions_of(pg_engine, variants["a"])[0] == ("foo-a-git", None)
        with pg_engine.connect() as c:
            assert c.execute(sa.text("SELECT name FROM model_experiment WHERE id = :e"),
                             {"e": eid}).scalar_one() == "renamed in the admin UI"
    # neither change is silent: the next plan shows the admin's change as drift from git
    r = run_cli(["plan", foo.path], env=cli_env(pg_engine, SECRETS))
    assert r.code == 0 and "W501" in r.all, r.all


def test_another_experiment_activated_on_the_public_id_is_exit_5(tmp_path: Path, pg_engine: sa.Engine,
                                                                 admin: AdminApi,
                                                                 on_statement: Callable[..., None]) -> None:
    repo = Repo(tmp_path).put(experiment("bar", "partner/bar", "draft", [variant("a", "bar-a", "env:KEY_A")]))
    env = cli_env(pg_engine, SECRETS)
    assert run_cli(["apply", "--yes", repo.path], env=env).code == 0
    with pg_engine.begin() as c:  # a draft made in the admin UI on the same public id
        other = admin_create_experiment(c, "partner/bar", "UI bar")
        admin_add_version(c, admin_add_variant(c, other, "ui", 1), upstream("bar-ui"), "sk-ui")
    doc = repo.edit("bar")
    doc["status"] = "active"
    repo.put(doc)
    snapshots: list[dict[str, list]] = []

    def writer_commits() -> None:
        admin.activate(other)
        snapshots.append(gateway_rows(pg_engine))

    on_statement(is_row_lock, writer_commits)
    r = run_cli(["apply", "--yes", repo.path], env=env)
    assert snapshots, "the writer did not run"
    assert r.code == 5, r.all
    assert "partner/bar" in r.err and "nothing was applied" in r.err and "Traceback" not in r.all
    assert gateway_rows(pg_engine) == snapshots[0]
    with pg_engine.connect() as c:
        assert c.execute(sa.text("SELECT name FROM model_experiment WHERE public_model_id = 'partner/bar' "
                                 "AND status = 'active'")).scalars().all() == ["UI bar"]


def test_locks_are_one_statement_per_table_in_id_order_whatever_the_rows(tmp_path: Path, pg_engine: sa.Engine) -> None:
    env = cli_env(pg_engine, SECRETS)
    repo = Repo(tmp_path).put(*[experiment(f"e{i}", f"partner/e{i}", "active",
                                           [variant("a", f"e{i}-a", "env:KEY_A"), variant("b", f"e{i}-b", "env:KEY_A")])
                                for i in range(12)])
    assert run_cli(["apply", "--yes", repo.path], env=env).code == 0
    seen: list[str] = []

    def log(conn: Any, statement: str) -> None:
        seen.append(" ".join(statement.split()))

    for count in (2, 12):  # hot swaps in 2, then in all 12 experiments
        for i in range(count):
            doc = repo.edit(f"e{i}")
            doc["variants"][0]["upstream"]["internal_id"] = f"e{i}-a-{count}"
            repo.put(doc)
        seen.clear()
        BEFORE_STATEMENT.append(log)
        try:
            assert run_cli(["apply", "--yes", repo.path], env=env).code == 0
        finally:
            BEFORE_STATEMENT.remove(log)
        locks = [s for s in seen if s.endswith("FOR UPDATE")]
        assert [s.split(" FROM ")[1].split()[0] for s in locks] == ["model_experiment", "model_experiment_variant"]
        assert all("= ANY(" in s and " ORDER BY id FOR UPDATE" in s for s in locks), locks
