"""`model_experiment.metadata` end to end under gateway profile 2026-06: plan shows it (create,
update, drift), apply writes it (SQL NULL when the YAML has none), completed experiments refuse
a change, and every plan format names the profile."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tests.cli_helpers import run_cli
from tests.integration.apply_support import Repo, cli_env, experiment, variant

MD = {"context_length": 200000, "max_completion_tokens": 32000,
      "opencode_settings": {"ai_sdk_provider": "mistral", "variants": {"fast": {"reasoning": {"effort": "low"}}}}}
SECRETS = {"KEY_A": "sk-meta-0001"}




def doc(status: str = "active", metadata: dict[str, Any] | None = MD) -> dict[str, Any]:
    d = experiment("meta", "partner/meta", status, [variant("a", "m-a", "env:KEY_A"), variant("b", "m-b", "env:KEY_A")])
    if metadata is not None:
        d["metadata"] = metadata
    return d


def stored(engine: sa.Engine) -> tuple[object, bool]:
    """(metadata value, whether the column is SQL NULL) of the one experiment."""
    with engine.connect() as c:
        row = c.execute(sa.text("SELECT metadata, metadata IS NULL FROM model_experiment")).one()
    return row[0], row[1]


def plan_json(repo: Repo, engine: sa.Engine, *extra: str) -> tuple[int, dict[str, Any], str]:
    r = run_cli(["plan", "--format", "json", *extra, repo.path], env=cli_env(engine, SECRETS))
    return r.code, (json.loads(r.out) if r.out.strip() else {}), r.err


def apply(repo: Repo, engine: sa.Engine, *extra: str) -> None:
    r = run_cli(["apply", "--yes", *extra, repo.path], env=cli_env(engine, SECRETS))
    assert r.code == 0, r.all


def test_create_writes_metadata_and_the_next_plan_is_empty(tmp_path: Path, pg_2026_06: sa.Engine) -> None:
    repo = Repo(tmp_path).put(doc())
    code, plan, err = plan_json(repo, pg_2026_06)
    assert code == 0 and plan["gateway_profile"] == "2026-06"
    assert "detected from the database" in err
    (create,) = [o for o in plan["operations"] if o["type"] == "create_experiment"]
    assert create["metadata"] == MD
    apply(repo, pg_2026_06)
    assert stored(pg_2026_06) == (MD, False)
    assert run_cli(["plan", "--detailed-exitcode", repo.path], env=cli_env(pg_2026_06, SECRETS)).code == 0


def test_update_and_removal_of_metadata(tmp_path: Path, pg_2026_06: sa.Engine) -> None:
    repo = Repo(tmp_path).put(doc())
    apply(repo, pg_2026_06)
    changed = {**MD, "supports_image_input": True}
    repo.put(doc(metadata=changed))
    code, plan, _ = plan_json(repo, pg_2026_06)
    assert code == 0
    (update,) = [o for o in plan["operations"] if o["type"] == "update_fields"]
    assert update["changes"] == [{"path": "metadata", "before": MD, "after": changed}]
    apply(repo, pg_2026_06)
    assert stored(pg_2026_06) == (changed, False)
    repo.put(doc(metadata=None))  # no metadata block: NULL (the catalog's defaults), as admin's null
    apply(repo, pg_2026_06)
    assert stored(pg_2026_06) == (None, True)


def test_metadata_changed_outside_git_is_drift_the_plan_reverts(tmp_path: Path, pg_2026_06: sa.Engine) -> None:
    repo = Repo(tmp_path).put(doc())
    apply(repo, pg_2026_06)
    with pg_2026_06.begin() as c:
        c.execute(sa.text("UPDATE model_experiment SET metadata = '{\"context_length\": 1, \"max_completion_tokens\": 1}'"))
    code, plan, _ = plan_json(repo, pg_2026_06)
    assert code == 0
    assert [(d["path"], d["reverted"]) for d in plan["drift"]] == [("metadata", True)]
    assert "W501" in [d["code"] for d in plan["diagnostics"]]
    apply(repo, pg_2026_06)
    assert stored(pg_2026_06) == (MD, False)


def test_metadata_cannot_change_on_a_completed_experiment(tmp_path: Path, pg_2026_06: sa.Engine) -> None:
    repo = Repo(tmp_path).put(doc())
    apply(repo, pg_2026_06)
    repo.put(doc(status="completed"))
    apply(repo, pg_2026_06)
    repo.put(doc(status="completed", metadata={**MD, "context_length": 1}))
    code, plan, _ = plan_json(repo, pg_2026_06)
    assert code == 4 and [d["code"] for d in plan["diagnostics"] if d["severity"] == "error"] == ["E221"]


def test_2026_05_never_reads_or_writes_metadata(tmp_path: Path, pg_2026_06: sa.Engine) -> None:
    # a database from the days between migration 0157 and the new upstream schema
    repo = Repo(tmp_path).put(doc(metadata=None))
    apply(repo, pg_2026_06, "--gateway-profile", "2026-05")
    with pg_2026_06.begin() as c:
        c.execute(sa.text("UPDATE model_experiment SET metadata = '{\"context_length\": 1, \"max_completion_tokens\": 1}'"))
    code, plan, _ = plan_json(repo, pg_2026_06, "--gateway-profile", "2026-05")
    assert code == 0 and plan["operations"] == [] and plan["gateway_profile"] == "2026-05"


@pytest.mark.parametrize(("fmt", "needle"), [("text", "Gateway profile: 2026-06."),
                                             ("markdown", "gateway profile `2026-06`"),
                                             ("json", '"gateway_profile": "2026-06"')])
def test_every_plan_format_names_the_profile(tmp_path: Path, pg_2026_06: sa.Engine, fmt: str, needle: str) -> None:
    repo = Repo(tmp_path).put(doc())
    r = run_cli(["plan", "--format", fmt, repo.path], env=cli_env(pg_2026_06, SECRETS))
    assert r.code == 0, r.all
    out = json.dumps(json.loads(r.out)) if fmt == "json" else r.out
    assert needle in out


def test_metadata_on_create_is_shown_in_text_and_markdown(tmp_path: Path, pg_2026_06: sa.Engine) -> None:
    repo = Repo(tmp_path).put(doc())
    for fmt in ("text", "markdown"):
        r = run_cli(["plan", "--format", fmt, repo.path], env=cli_env(pg_2026_06, SECRETS))
        assert r.code == 0 and "metadata" in r.out and "mistral" in r.out, r.all
