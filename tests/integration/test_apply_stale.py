"""A saved plan is bound to what it was computed from (spec §5.7, §6): `apply --plan FILE`
refuses with exit 5 and writes nothing when the database or the YAML changed since; a
`--no-secrets` plan is never applyable."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.cli_helpers import run_cli
from tests.integration.apply_support import Repo, cli_env, experiment, variant
from tests.integration.gateway import dump_tables

SECRETS = {"KEY_A": "sk-a-0001"}


@pytest.fixture
def applied(tmp_path: Path, pg_engine: sa.Engine) -> Repo:
    repo = Repo(tmp_path).put(experiment("foo", "partner/foo", "active",
                                         [variant("a", "foo-a", "env:KEY_A"), variant("b", "foo-b", "env:KEY_A")]))
    assert run_cli(["apply", "--yes", repo.path], env=cli_env(pg_engine, SECRETS)).code == 0
    return repo


def hot_swap(repo: Repo) -> None:
    doc = repo.edit("foo")
    doc["variants"][0]["upstream"]["internal_id"] = "foo-a-v2"
    repo.put(doc)


def snapshot(engine: sa.Engine) -> dict:
    with engine.connect() as c:
        return dump_tables(c)


def test_plan_made_stale_by_the_admin_ui_is_refused(tmp_path: Path, pg_engine: sa.Engine, applied: Repo) -> None:
    env = cli_env(pg_engine, SECRETS)
    hot_swap(applied)
    plan_file = tmp_path / "plan.json"
    assert run_cli(["plan", "--out", str(plan_file), applied.path], env=env).code == 0
    with pg_engine.begin() as c:  # meanwhile someone pauses it in the admin UI
        c.execute(sa.text("UPDATE model_experiment SET status = 'paused', updated_at = now() "
                          "WHERE public_model_id = 'partner/foo'"))
    before = snapshot(pg_engine)
    r = run_cli(["apply", "--plan", str(plan_file), "--yes", applied.path], env=env)
    assert r.code == 5, r.all
    assert "stale plan" in r.err and "actual" in r.err and "re-run plan" in r.err and "Traceback" not in r.all
    assert snapshot(pg_engine) == before  # no audit row either

    # a fresh plan refuses to resume what was paused outside git, until the YAML says so
    assert run_cli(["plan", applied.path], env=env).code == 4
    doc = applied.edit("foo")
    doc["status"] = "paused"
    applied.put(doc)
    assert run_cli(["plan", "--out", str(plan_file), applied.path], env=env).code == 0
    r = run_cli(["apply", "--plan", str(plan_file), "--yes", applied.path], env=env)
    assert r.code == 0 and "Applied in one transaction" in r.out, r.all
    assert run_cli(["plan", "--detailed-exitcode", applied.path], env=env).code == 0
    # applying the same saved plan again: the database moved on
    r = run_cli(["apply", "--plan", str(plan_file), "--yes", applied.path], env=env)
    assert r.code == 5 and "stale plan" in r.err


def test_plan_made_stale_by_a_rename_then_fresh_plan_applies(tmp_path: Path, pg_engine: sa.Engine,
                                                             applied: Repo) -> None:
    env = cli_env(pg_engine, SECRETS)
    hot_swap(applied)
    plan_file = tmp_path / "plan.json"
    assert run_cli(["plan", "--out", str(plan_file), applied.path], env=env).code == 0
    with pg_engine.begin() as c:
        c.execute(sa.text("UPDATE model_experiment SET name = 'renamed in the UI', updated_at = now()"))
    before = snapshot(pg_engine)
    assert run_cli(["apply", "--plan", str(plan_file), "--yes", applied.path], env=env).code == 5
    assert snapshot(pg_engine) == before
    assert run_cli(["plan", "--out", str(plan_file), applied.path], env=env).code == 0
    assert run_cli(["apply", "--plan", str(plan_file), "--yes", applied.path], env=env).code == 0
    assert run_cli(["plan", "--detailed-exitcode", applied.path], env=env).code == 0
    with pg_engine.connect() as c:  # the drift was reverted to git
        assert c.execute(sa.text("SELECT name FROM model_experiment")).scalar_one() == "Experiment foo"


def test_plan_made_stale_by_a_yaml_change_is_refused(tmp_path: Path, pg_engine: sa.Engine, applied: Repo) -> None:
    env = cli_env(pg_engine, SECRETS)
    hot_swap(applied)
    plan_file = tmp_path / "plan.json"
    assert run_cli(["plan", "--out", str(plan_file), applied.path], env=env).code == 0
    doc = applied.edit("foo")
    doc["name"] = "edited after the plan was reviewed"
    applied.put(doc)
    before = snapshot(pg_engine)
    r = run_cli(["apply", "--plan", str(plan_file), "--yes", applied.path], env=env)
    assert r.code == 5 and "desired" in r.err, r.all
    assert snapshot(pg_engine) == before


def test_rotated_secret_after_the_plan_is_refused(tmp_path: Path, pg_engine: sa.Engine, applied: Repo) -> None:
    """Same YAML, same rows, but the secret store's value changed: the ops differ."""
    env = cli_env(pg_engine, SECRETS)
    plan_file = tmp_path / "plan.json"
    assert run_cli(["plan", "--out", str(plan_file), applied.path], env=env).code == 0  # no changes
    before = snapshot(pg_engine)
    r = run_cli(["apply", "--plan", str(plan_file), "--yes", applied.path],
                env=cli_env(pg_engine, {"KEY_A": "sk-a-rotated-0002"}))
    assert r.code == 5 and "stale plan" in r.err, r.all
    assert snapshot(pg_engine) == before


def test_no_secrets_plan_is_never_applied(tmp_path: Path, pg_engine: sa.Engine, applied: Repo) -> None:
    env = cli_env(pg_engine, SECRETS)
    applied.put(experiment("bar", "partner/bar", "draft", [variant("a", "bar-a", "env:KEY_A")]))  # a create only
    plan_file = tmp_path / "plan.json"
    r = run_cli(["plan", "--no-secrets", "--out", str(plan_file), applied.path],
                env={k: v for k, v in env.items() if k not in ("KEY_A", "BYOK_ENCRYPTION_KEY")})
    assert r.code == 0 and json.loads(plan_file.read_text())["applyable"] is False
    before = snapshot(pg_engine)
    r = run_cli(["apply", "--plan", str(plan_file), "--yes", applied.path], env=env)
    assert r.code == 3, r.all
    assert "--no-secrets" in r.err and "Traceback" not in r.all
    assert snapshot(pg_engine) == before


def test_a_file_that_is_not_a_plan_is_invalid_input(tmp_path: Path, pg_engine: sa.Engine, applied: Repo) -> None:
    bogus = tmp_path / "plan.json"
    bogus.write_text('{"format_version": "1"}')
    r = run_cli(["apply", "--plan", str(bogus), "--yes", applied.path], env=cli_env(pg_engine, SECRETS))
    assert r.code == 3 and "not a plan file" in r.err and "Traceback" not in r.all
