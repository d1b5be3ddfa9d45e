"""The audit trail (spec §6) and apply's statement budget (spec §8)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa

from expsync.apply.lock import LOCK_STATEMENTS
from expsync.apply.run import ApplyResult, apply
from expsync.pipeline import Settings
from expsync.secrets import Redactor, resolve_all, uses_in
from expsync.desired.loader import LoadOptions, load_desired
from tests.cli_helpers import run_cli
from tests.integration.apply_support import Repo, cli_env, experiment, variant
from tests.integration.gateway import TEST_KEY_B64

SECRETS = {"KEY_A": "sk-a-0001", "KEY_B": "sk-b-0002"}


def two(i: object) -> list[dict]:
    return [variant("v0", f"m-{i}-0", "env:KEY_A"), variant("v1", f"m-{i}-1", "env:KEY_B", weight=2)]


def audit_rows(engine: sa.Engine) -> list:
    with engine.connect() as c:
        return c.execute(sa.text("SELECT actor, revision, plan_digest, summary, outcome, statements, started_at, "
                                 "finished_at FROM expsync_audit ORDER BY id")).all()


def test_one_audit_row_per_apply(tmp_path: Path, db_engine: sa.Engine) -> None:
    env = cli_env(db_engine, SECRETS)
    repo = Repo(tmp_path).put(experiment("foo", "partner/foo", "active", two("foo")),
                              experiment("bar", "partner/bar", "draft", two("bar")))
    plan_file = tmp_path / "plan.json"
    assert run_cli(["plan", "--out", str(plan_file), repo.path], env=env).code == 0
    saved = json.loads(plan_file.read_text())
    r = run_cli(["apply", "--plan", str(plan_file), "--yes", "--actor", "alice", "--revision", "0123abc", repo.path],
                env=env)
    assert r.code == 0, r.all
    (row,) = audit_rows(db_engine)
    assert row.actor == "alice" and row.revision == "0123abc" and row.outcome == "applied"
    assert row.plan_digest == saved["digests"]["ops"]
    summary = row.summary if isinstance(row.summary, dict) else json.loads(row.summary)
    assert summary["experiments"] == ["bar", "foo"]
    assert summary["digests"] == saved["digests"]
    assert summary["counts"]["create"] == 2 and summary["operations"]["InsertVersion"] == 4
    printed = int(re.search(r"(\d+) statement\(s\)", r.out).group(1))
    assert row.statements == printed > 0
    assert row.started_at <= row.finished_at

    # from the CI environment: EXPSYNC_ACTOR and GITHUB_SHA
    doc = repo.edit("foo")
    doc["variants"][0]["upstream"]["internal_id"] = "m-foo-0-v2"
    repo.put(doc)
    ci = cli_env(db_engine, SECRETS, EXPSYNC_ACTOR="github-actions", GITHUB_SHA="f" * 40)
    assert run_cli(["apply", "--yes", repo.path], env=ci).code == 0
    # a no-op apply is recorded too; its actor unset is NULL
    assert run_cli(["apply", "--yes", repo.path], env=env).code == 0
    rows = audit_rows(db_engine)
    assert [(x.actor, x.revision, x.outcome) for x in rows] == [
        ("alice", "0123abc", "applied"), ("github-actions", "f" * 40, "applied"), (None, None, "no_changes")]
    summary = rows[1].summary if isinstance(rows[1].summary, dict) else json.loads(rows[1].summary)
    assert summary["experiments"] == ["foo"] and summary["operations"] == {"InsertVersion": 1, "RecordManaged": 1}
    # not bound to a plan: the plan digest and the key binding, not digests of the whole state
    assert set(summary["digests"]) == {"ops", "secrets"} and summary["digests"]["ops"] == rows[1].plan_digest
    assert rows[2].statements and rows[2].statements > 0

    # refusals write nothing, not even an audit row
    doc["variants"][0]["weight"] = 7
    repo.put(doc)
    assert run_cli(["apply", "--yes", repo.path], env=env).code == 4
    assert len(audit_rows(db_engine)) == 3


def test_hot_swap_statement_count_does_not_grow_with_swaps(
        tmp_path: Path, db_engine: sa.Engine, count_statements: Callable) -> None:
    repo = Repo(tmp_path)
    env = {"BYOK_ENCRYPTION_KEY": TEST_KEY_B64, **SECRETS}
    settings = Settings(environ=env, cwd=tmp_path)

    def apply_repo() -> tuple[ApplyResult, int]:
        desired, diags = load_desired([repo.path], LoadOptions())
        assert not [d for d in diags if d.is_error], diags
        secrets, diags = resolve_all(uses_in(desired), environ=env, cwd=tmp_path, redactor=Redactor())
        assert not diags
        with count_statements(db_engine) as log:
            result = apply(db_engine, desired, secrets, settings)
        return result, log.count

    def swap(indexes: range, tag: str) -> None:
        for i in indexes:
            doc = repo.edit(f"exp-{i:03d}")
            doc["variants"][0]["upstream"]["internal_id"] = f"m-{i}-0-{tag}"
            repo.put(doc)

    repo.put(*[experiment(f"exp-{i:03d}", f"partner/exp-{i:03d}", "active", two(i)) for i in range(200)])
    apply_repo()

    swap(range(10), "a")
    r10, n10 = apply_repo()
    swap(range(200), "b")
    r200, n200 = apply_repo()
    assert r10.plan.op_counts()["InsertVersion"] == 10 and r200.plan.op_counts()["InsertVersion"] == 200
    assert n10 == n200, (n10, n200)
    assert r10.statements == r200.statements
    # 15 before the row locks; + LOCK_STATEMENTS on Postgres (lock experiments, lock variants, re-read versions)
    assert n200 <= 15 + (LOCK_STATEMENTS if db_engine.dialect.name == "postgresql" else 0), n200
    with db_engine.connect() as c:
        assert c.execute(sa.text("SELECT count(*) FROM model_experiment_variant_version")).scalar_one() == 610
