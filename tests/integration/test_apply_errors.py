"""Apply fails cleanly (spec §6, §7, §9): refusals, a missing --yes and database rejections are
exit codes with a clear message, never a traceback, and leave the database as it was."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.cli_helpers import run_cli
from tests.integration.apply_support import Repo, cli_env, experiment, subprocess_env, variant
from tests.integration.gateway import dump_tables

SECRETS = {"KEY_A": "sk-a-0001"}


def two(i: str) -> list[dict]:
    return [variant("a", f"m-{i}-a", "env:KEY_A"), variant("b", f"m-{i}-b", "env:KEY_A")]


def snapshot(engine: sa.Engine) -> dict:
    with engine.connect() as c:
        return dump_tables(c)


def test_refused_by_the_state_machine_is_exit_4_and_writes_nothing(tmp_path: Path, db_engine: sa.Engine) -> None:
    env = cli_env(db_engine, SECRETS)
    repo = Repo(tmp_path).put(experiment("foo", "partner/foo", "active", two("foo")))
    assert run_cli(["apply", "--yes", repo.path], env=env).code == 0
    doc = repo.edit("foo")
    doc["variants"][0]["weight"] = 3  # weights are frozen after activation
    doc["variants"][1]["upstream"]["internal_id"] = "m-foo-b-v2"  # a legal change in the same plan
    repo.put(doc, experiment("bar", "partner/bar", "draft", two("bar")))
    before = snapshot(db_engine)
    r = run_cli(["apply", "--yes", repo.path], env=env)
    assert r.code == 4, r.all
    assert "E3" in r.all and "create a new experiment" in r.all and "Traceback" not in r.all
    assert snapshot(db_engine) == before  # nothing, not even the legal parts or an audit row


def test_apply_without_yes_off_a_terminal_is_exit_3(tmp_path: Path, db_engine: sa.Engine) -> None:
    env = cli_env(db_engine, SECRETS)
    repo = Repo(tmp_path).put(experiment("foo", "partner/foo", "active", two("foo")))
    before = snapshot(db_engine)
    r = run_cli(["apply", repo.path], env=env)
    assert r.code == 3 and "--yes" in r.err, r.all
    assert snapshot(db_engine) == before


def _run_on_terminal(args: list[str], env: dict, cwd: Path, answer: str, before_answer=None) -> tuple[int, str]:
    """The CLI with a pseudo-terminal as stdin/stdout, answering its confirmation prompt."""
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "expsync.cli", *args], env=subprocess_env(env | {"NO_COLOR": "1"}),
                            cwd=cwd, stdin=slave, stdout=slave, stderr=slave, close_fds=True)
    os.close(slave)
    out = b""
    deadline = time.monotonic() + 60
    try:
        while b"Only 'yes' will be accepted" not in out:
            assert time.monotonic() < deadline and proc.poll() is None, out.decode(errors="replace")
            if select.select([master], [], [], 0.1)[0]:
                out += os.read(master, 65536)
        if before_answer:
            before_answer()
        os.write(master, answer.encode() + b"\n")
        while True:
            if select.select([master], [], [], 0.1)[0]:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not chunk:
                    break
                out += chunk
            elif proc.poll() is not None:
                break
            assert time.monotonic() < deadline
        return proc.wait(timeout=30), out.decode(errors="replace")
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()


def test_confirmation_on_a_terminal(tmp_path: Path, pg_engine: sa.Engine) -> None:
    env = cli_env(pg_engine, SECRETS)
    repo = Repo(tmp_path).put(experiment("foo", "partner/foo", "active", two("foo")))
    before = snapshot(pg_engine)
    code, out = _run_on_terminal(["apply", repo.path], env, tmp_path, "no")
    assert code == 0 and "Apply cancelled; nothing was changed" in out, out
    assert snapshot(pg_engine) == before

    def admin_ui_takes_the_public_id() -> None:
        with pg_engine.begin() as c:
            c.execute(sa.text("INSERT INTO model_experiment (public_model_id, name, status) "
                              "VALUES ('partner/foo', 'ui', 'paused')"))

    # what was shown is what is applied: a change while the prompt waits makes it stale
    code, out = _run_on_terminal(["apply", repo.path], env, tmp_path, "yes", admin_ui_takes_the_public_id)
    assert code == 5 and "stale plan" in out, out
    assert {k: v for k, v in snapshot(pg_engine).items() if k != "model_experiment"} == {
        k: v for k, v in before.items() if k != "model_experiment"}
    with pg_engine.begin() as c:
        c.execute(sa.text("UPDATE model_experiment SET status = 'completed', ended_at = now(), updated_at = now()"))
    code, out = _run_on_terminal(["apply", repo.path], env, tmp_path, "yes")
    assert code == 0 and "Applied in one transaction" in out, out
    assert run_cli(["plan", "--detailed-exitcode", repo.path], env=env).code == 0


# Rejections by the database itself. The race they stand for (another writer that ignores the
# apply lock, e.g. the admin UI activating an experiment on the same public id between the
# re-plan and the UPDATE) cannot be timed from outside, so a trigger makes that writer act at
# exactly that moment, inside apply's own transaction.

RACE_PG = """
CREATE FUNCTION admin_ui_races() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO model_experiment (public_model_id, name, status) VALUES (NEW.public_model_id, 'admin UI', 'paused');
  RETURN NEW;
END $$;
CREATE TRIGGER admin_ui_races BEFORE UPDATE ON model_experiment FOR EACH ROW
  WHEN (OLD.status = 'draft' AND NEW.status = 'active' AND NEW.public_model_id = 'partner/contested')
  EXECUTE FUNCTION admin_ui_races();
"""
RACE_SQLITE = """
CREATE TRIGGER admin_ui_races BEFORE UPDATE ON model_experiment
  WHEN OLD.status = 'draft' AND NEW.status = 'active' AND NEW.public_model_id = 'partner/contested'
BEGIN
  INSERT INTO model_experiment (id, public_model_id, name, status)
  VALUES (lower(hex(randomblob(16))), NEW.public_model_id, 'admin UI', 'paused');
END;
"""
ARCHIVE_PG = """
CREATE FUNCTION sneaky_archive() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN NEW.is_archived := true; RETURN NEW; END $$;
CREATE TRIGGER sneaky_archive BEFORE UPDATE ON model_experiment FOR EACH ROW
  WHEN (NEW.status = 'active') EXECUTE FUNCTION sneaky_archive();
"""
ARCHIVE_SQLITE = """
CREATE TRIGGER sneaky_archive AFTER UPDATE OF status ON model_experiment WHEN NEW.status = 'active'
BEGIN UPDATE model_experiment SET is_archived = 1 WHERE id = NEW.id; END;
"""


def install(engine: sa.Engine, pg: str, sqlite: str) -> None:
    with engine.begin() as c:
        if engine.dialect.name == "postgresql":
            c.exec_driver_sql(pg)
        else:
            c.connection.driver_connection.executescript(sqlite)  # type: ignore[union-attr]


def test_routing_unique_index_race_is_a_friendly_conflict(tmp_path: Path, db_engine: sa.Engine) -> None:
    env = cli_env(db_engine, SECRETS)
    repo = Repo(tmp_path).put(experiment("quiet", "partner/quiet", "active", two("q")),
                              experiment("swapped", "partner/swapped", "active", two("s")))
    assert run_cli(["apply", "--yes", repo.path], env=env).code == 0
    doc = repo.edit("swapped")
    doc["variants"][0]["upstream"]["internal_id"] = "m-s-a-v2"
    repo.put(doc, experiment("contested", "partner/contested", "active", two("c")),
             experiment("elsewhere", "partner/elsewhere", "active", two("e")))
    install(db_engine, RACE_PG, RACE_SQLITE)
    before = snapshot(db_engine)
    r = run_cli(["apply", "--yes", repo.path], env=env)
    assert r.code == 5, r.all
    assert "partner/contested" in r.err and "routing unique index" in r.err and "nothing was applied" in r.err
    assert "partner/swapped" not in r.err and "partner/quiet" not in r.err
    assert "Traceback" not in r.all and "IntegrityError" not in r.all
    after = snapshot(db_engine)
    audit = after.pop("expsync_audit")
    assert after == {k: v for k, v in before.items() if k != "expsync_audit"}
    assert audit[: len(before["expsync_audit"])] == before["expsync_audit"]
    (failure,) = audit[len(before["expsync_audit"]):]
    assert "failed: ApplyConflict" in failure


def test_check_constraint_rejection_names_the_rule(tmp_path: Path, db_engine: sa.Engine) -> None:
    env = cli_env(db_engine, SECRETS)
    repo = Repo(tmp_path).put(experiment("foo", "partner/foo", "active", two("foo")))
    install(db_engine, ARCHIVE_PG, ARCHIVE_SQLITE)
    with db_engine.connect() as c:
        before = {k: v for k, v in dump_tables(c).items() if k != "expsync_audit"}
    r = run_cli(["apply", "--yes", repo.path], env=env)
    assert r.code == 5, r.all
    assert "model_experiment_active_not_archived" in r.err and "nothing was applied" in r.err
    assert "Traceback" not in r.all
    with db_engine.connect() as c:
        assert {k: v for k, v in dump_tables(c).items() if k != "expsync_audit"} == before


def test_unexpected_row_count_from_a_lock_ignoring_writer_rolls_back(tmp_path: Path, pg_engine: sa.Engine) -> None:
    """The executor checks what each statement changed: a row deleted under it by a writer
    that ignores the lock (here: a trigger deleting the row being activated) fails the apply."""
    env = cli_env(pg_engine, SECRETS)
    repo = Repo(tmp_path).put(experiment("foo", "partner/foo", "draft", two("foo")))
    assert run_cli(["apply", "--yes", repo.path], env=env).code == 0
    eid = uuid.UUID(str(snapshot(pg_engine)["model_experiment"][0][0]))
    with pg_engine.begin() as c:
        c.exec_driver_sql(f"""
            CREATE FUNCTION vanish() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$;
            CREATE TRIGGER vanish BEFORE UPDATE ON model_experiment FOR EACH ROW
              WHEN (OLD.id = '{eid}' AND NEW.status = 'active') EXECUTE FUNCTION vanish();""")
    doc = repo.edit("foo")
    doc["status"] = "active"
    repo.put(doc)
    before = {k: v for k, v in snapshot(pg_engine).items() if k != "expsync_audit"}
    r = run_cli(["apply", "--yes", repo.path], env=env)
    assert r.code == 5 and "changed by another writer" in r.err and "Traceback" not in r.all, r.all
    assert {k: v for k, v in snapshot(pg_engine).items() if k != "expsync_audit"} == before


@pytest.mark.parametrize("bad", ["not base64!!", "c2hvcnQ="])
def test_missing_or_bad_byok_key_is_exit_3_before_any_write(tmp_path: Path, pg_engine: sa.Engine, bad: str) -> None:
    repo = Repo(tmp_path).put(experiment("foo", "partner/foo", "draft", two("foo")))
    before = snapshot(pg_engine)
    r = run_cli(["apply", "--yes", repo.path], env=cli_env(pg_engine, SECRETS, BYOK_ENCRYPTION_KEY=bad))
    assert r.code == 3 and "openssl rand -base64 32" in r.err and "Traceback" not in r.all, r.all
    assert bad not in r.all
    assert snapshot(pg_engine) == before


def test_stored_keys_under_another_byok_key_are_exit_3(tmp_path: Path, pg_engine: sa.Engine) -> None:
    """Comparing keys needs decrypting the current versions: with a valid but different
    BYOK_ENCRYPTION_KEY that is E407, invalid input, and nothing is written."""
    repo = Repo(tmp_path).put(experiment("foo", "partner/foo", "active", two("foo")))
    assert run_cli(["apply", "--yes", repo.path], env=cli_env(pg_engine, SECRETS)).code == 0
    doc = repo.edit("foo")
    doc["variants"][0]["upstream"]["internal_id"] = "m-foo-a-v2"
    repo.put(doc)
    before = snapshot(pg_engine)
    other_key = "CAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAg="  # 32 bytes of 0x08
    r = run_cli(["apply", "--yes", repo.path], env=cli_env(pg_engine, SECRETS, BYOK_ENCRYPTION_KEY=other_key))
    assert r.code == 3 and "E407" in r.err and "Traceback" not in r.all, r.all
    assert snapshot(pg_engine) == before


def test_malformed_redis_url_is_invalid_input_before_anything_is_written(tmp_path, pg_engine) -> None:  # type: ignore[no-untyped-def]
    from tests.integration.apply_support import Repo, cli_env, experiment, upstream, variant
    from tests.integration.gateway import dump_tables

    repo = Repo(tmp_path)
    repo.put(experiment("x", "partner/x", "draft", [variant("a", upstream("m"), "env:K")]))
    with pg_engine.connect() as c:
        before = dump_tables(c)
    for url in ("foo://x", "redis://:pw@[broken"):
        for args in (["apply", "--yes", repo.path], ["plan", repo.path]):
            r = run_cli(args, env={**cli_env(pg_engine, {"K": "sk-x-000111"}), "EXPSYNC_REDIS_URL": url})
            assert r.code == 3 and "EXPSYNC_REDIS_URL" in r.err and "Traceback" not in r.all, r.all
    with pg_engine.connect() as c:
        assert dump_tables(c) == before


def test_actor_that_is_not_a_gateway_user_is_invalid_input(tmp_path, pg_engine) -> None:  # type: ignore[no-untyped-def]
    """In the gateway's database created_by_user_id references its users table."""
    import sqlalchemy as sa

    from tests.integration.apply_support import Repo, cli_env, experiment, upstream, variant

    with pg_engine.begin() as c:
        c.execute(sa.text("CREATE TABLE app_user (id text PRIMARY KEY)"))
        c.execute(sa.text("ALTER TABLE model_experiment ADD CONSTRAINT model_experiment_created_by_user_id_fkey "
                          "FOREIGN KEY (created_by_user_id) REFERENCES app_user (id)"))
    repo = Repo(tmp_path)
    repo.put(experiment("x", "partner/x", "draft", [variant("a", upstream("m"), "env:K")]))
    r = run_cli(["apply", "--yes", "--actor", "github-actions[bot]", repo.path], env=cli_env(pg_engine, {"K": "sk-x-000111"}))
    assert r.code == 3 and "--actor" in r.err and "Traceback" not in r.all, r.all
    with pg_engine.connect() as c:
        assert c.execute(sa.text("SELECT count(*) FROM model_experiment")).scalar_one() == 0
    r = run_cli(["apply", "--yes", repo.path], env=cli_env(pg_engine, {"K": "sk-x-000111"}))  # unset: NULL
    assert r.code == 0, r.all


@pytest.mark.parametrize("args", [["--lock-timeout", "nan"], ["--lock-timeout", "inf"], ["--lock-timeout", "1e12"]])
def test_bad_lock_timeouts_are_usage_errors(args: list[str], tmp_path: Path) -> None:
    r = run_cli(["apply", "--yes", *args, str(tmp_path)])
    assert r.code == 3 and "Traceback" not in r.all


def test_plan_file_that_is_not_a_plan_object(tmp_path: Path) -> None:
    f = tmp_path / "p.json"
    f.write_text("[1]")
    r = run_cli(["apply", "--yes", "--plan", str(f), str(tmp_path)])
    assert r.code == 3 and "not a plan file" in r.err


def test_saved_plan_needs_yes_off_a_terminal(tmp_path: Path) -> None:
    f = tmp_path / "p.json"
    f.write_text("{}")
    r = run_cli(["apply", "--plan", str(f), str(tmp_path)])
    assert r.code == 3 and "--yes" in r.err


def test_unwritable_plan_out_is_exit_3_before_any_work(tmp_path: Path) -> None:
    r = run_cli(["plan", "--out", str(tmp_path / "missing" / "p.json"), str(tmp_path)])
    assert r.code == 3 and "cannot write" in r.err and "Traceback" not in r.all


def test_deeply_nested_plan_file(tmp_path: Path) -> None:
    f = tmp_path / "p.json"
    f.write_text('{"a":' * 100000 + "1" + "}" * 100000)
    r = run_cli(["apply", "--yes", "--plan", str(f), str(tmp_path)])
    assert r.code == 3 and "not a plan file" in r.err


def test_the_confirmation_prompt_holds_no_transaction_open(tmp_path: Path, pg_engine: sa.Engine) -> None:
    """While a person reads the plan, expsync's session is idle, not idle in a transaction: the
    snapshot the plan was read in is over, so it holds no table lock that would queue a
    migration (and every gateway query behind it) and no xmin horizon."""
    import psycopg

    env = cli_env(pg_engine, SECRETS)
    repo = Repo(tmp_path).put(experiment("foo", "partner/foo", "active", two("foo")))
    seen: dict = {}
    u = pg_engine.url

    def while_the_prompt_waits() -> None:
        time.sleep(0.3)  # the prompt is shown; the answer has not come
        with psycopg.connect(host=u.host, port=u.port, user=u.username, dbname=u.database, autocommit=True) as a:
            seen["states"] = a.execute("SELECT state FROM pg_stat_activity WHERE application_name = 'expsync' "
                                       "AND datname = current_database()").fetchall()
            a.execute("SET lock_timeout = '2s'")
            try:
                a.execute("ALTER TABLE model_experiment ADD COLUMN migration_probe integer")
                a.execute("ALTER TABLE model_experiment DROP COLUMN migration_probe")
                seen["migration"] = "ran"
            except psycopg.errors.LockNotAvailable:
                seen["migration"] = "blocked"

    code, out = _run_on_terminal(["apply", repo.path], env, tmp_path, "yes", while_the_prompt_waits)
    assert code == 0 and "Applied in one transaction" in out, out
    assert seen == {"states": [("idle",)], "migration": "ran"}, seen


@pytest.mark.parametrize(("sqlstate", "code", "said"), [
    ("40P01", 5, "concurrent writer"),  # a deadlock with another writer (the admin UI)
    ("40001", 5, "concurrent writer"),  # a serialization failure
    ("57014", 1, "cancelled a statement"),  # the server cancelled it: its statement_timeout, pg_cancel_backend
])
def test_a_statement_the_server_aborts_is_a_clear_error_with_nothing_applied(
        tmp_path: Path, pg_engine: sa.Engine, sqlstate: str, code: int, said: str) -> None:
    """What the server reports with these SQLSTATEs, raised here by a trigger at the moment of
    apply's UPDATE: exit 5 for a conflict with another writer, 1 for a cancelled statement;
    never "unexpected", never a traceback, the rows as they were."""
    env = cli_env(pg_engine, SECRETS)
    repo = Repo(tmp_path).put(experiment("foo", "partner/foo", "active", two("foo")))
    assert run_cli(["apply", "--yes", repo.path], env=env).code == 0
    install(pg_engine, f"""
        CREATE FUNCTION aborted() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION 'aborted by the server' USING ERRCODE = '{sqlstate}'; END $$;
        CREATE TRIGGER aborted BEFORE UPDATE ON model_experiment FOR EACH ROW EXECUTE FUNCTION aborted();""", "")
    doc = repo.edit("foo")
    doc["name"] = "renamed"
    repo.put(doc)
    before = {k: v for k, v in snapshot(pg_engine).items() if k != "expsync_audit"}
    r = run_cli(["apply", "--yes", repo.path], env=env)
    assert r.code == code and said in r.err and "nothing was applied" in r.err, r.all
    assert "unexpected" not in r.err and "Traceback" not in r.all
    assert {k: v for k, v in snapshot(pg_engine).items() if k != "expsync_audit"} == before


def test_a_session_the_server_ended_during_the_confirmation_prompt_is_replaced(tmp_path: Path,
                                                                              pg_engine: sa.Engine) -> None:
    """While a person reads the plan the session sits idle, and the server (idle_session_timeout,
    a restart, a DBA) may end it: after "yes" apply begins on a new session, as the engine's
    check of a connection reused after idle would, instead of "lost the database connection"."""
    import psycopg

    env = cli_env(pg_engine, SECRETS)
    repo = Repo(tmp_path).put(experiment("foo", "partner/foo", "active", two("foo")))
    u = pg_engine.url
    ended: list[int] = []

    def the_server_ends_the_idle_session() -> None:
        with psycopg.connect(host=u.host, port=u.port, user=u.username, dbname=u.database, autocommit=True) as a:
            ended.extend(ok for ok, in a.execute(
                "SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity WHERE application_name = 'expsync' "
                "AND datname = current_database() AND state = 'idle'"))

    code, out = _run_on_terminal(["apply", repo.path], env, tmp_path, "yes", the_server_ends_the_idle_session)
    assert ended == [True]
    assert code == 0 and "Applied in one transaction" in out, out
    assert "lost the database connection" not in out and "WARNING" not in out
    with pg_engine.connect() as c:
        assert c.execute(sa.text("SELECT status FROM model_experiment")).scalar_one() == "active"
        assert c.execute(sa.text("SELECT outcome FROM expsync_audit")).scalars().all() == ["applied"]


def test_a_not_null_column_expsync_does_not_know_is_exit_1_naming_it(tmp_path: Path, pg_engine: sa.Engine) -> None:
    """A newer gateway schema with a NOT NULL column (no default) expsync writes nothing into:
    re-running plan cannot help, so it is not a concurrent conflict (exit 5) but exit 1, naming
    the table and column; nothing is applied."""
    env = cli_env(pg_engine, SECRETS)
    install(pg_engine, "ALTER TABLE model_experiment_variant_version ADD COLUMN region text NOT NULL;", "")
    repo = Repo(tmp_path).put(experiment("foo", "partner/foo", "draft", two("foo")))
    before = snapshot(pg_engine)
    r = run_cli(["apply", "--yes", repo.path], env=env)
    assert r.code == 1, r.all
    assert "model_experiment_variant_version.region" in r.err and "nothing was applied" in r.err, r.all
    assert "concurrent" not in r.err and "unexpected" not in r.err and "Traceback" not in r.all
    assert snapshot(pg_engine) == before
