"""The plan-side safety features end to end through the real CLI on SQLite: security-relevant
changes first, ``--no-secrets`` hiding unmanaged experiments, and E504 / ``--allow-empty``."""

from __future__ import annotations

import json
import uuid
import shutil
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.cli_helpers import run_cli

ROOT = Path(__file__).resolve().parents[2]
BYOK = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc="
FOO = ROOT / "experiments" / "foo-rc-bakeoff.yaml"
BAR = ROOT / "experiments" / "bar-reasoning-draft.yaml"


@pytest.fixture
def repo(tmp_path: Path) -> tuple[Path, dict[str, str | None]]:
    (tmp_path / "experiments").mkdir()
    shutil.copy(FOO, tmp_path / "experiments" / FOO.name)
    shutil.copy(BAR, tmp_path / "experiments" / BAR.name)
    env: dict[str, str | None] = {
        "EXPSYNC_DATABASE_URL": f"sqlite:///{tmp_path / 'gw.db'}", "BYOK_ENCRYPTION_KEY": BYOK,
        "FOO_PARTNER_KEY": "sk-foo-value-1", "BAR_PARTNER_KEY": "sk-bar-value-2", "OTHER_KEY": "sk-other-3",
        "GITHUB_ACTIONS": None, "GITHUB_OUTPUT": None, "GITHUB_STEP_SUMMARY": None, "EXPSYNC_REDIS_URL": None,
        "EXPSYNC_SECRET_REFS": "*",
    }
    assert run_cli(["db", "init"], env=env, cwd=tmp_path).code == 0
    r = run_cli(["apply", "--yes", "experiments"], env=env, cwd=tmp_path)
    assert r.code == 0, r.all
    return tmp_path, env


def test_security_changes_come_first_and_are_annotated_in_github(repo: tuple[Path, dict[str, str | None]]) -> None:
    root, env = repo
    f = root / "experiments" / FOO.name
    text = f.read_text()
    # rc1: new host and another key reference in one version
    text = text.replace("base_url: https://api.partner.example/v1", "base_url: https://Attacker.Example:443/v1", 1)
    assert "Attacker" in text
    f.write_text(text.replace("api_key: env:FOO_PARTNER_KEY", "api_key: env:OTHER_KEY", 1))
    r = run_cli(["plan", "experiments"], env=env | {"GITHUB_ACTIONS": "true"}, cwd=root)
    assert r.code == 0, r.all
    first = r.out.split("\n")[:2]
    assert first == ["Security-relevant changes (1):",
                     '    ! warning: experiment "foo-rc-bakeoff", variant "rc1": the key from env:OTHER_KEY will be '
                     "sent to https://attacker.example (was the key from env:FOO_PARTNER_KEY sent to "
                     "https://api.partner.example)"]
    assert ("::warning file=experiments/foo-rc-bakeoff.yaml,line=" in r.err
            and "title=security-relevant change::" in r.err and "env:OTHER_KEY will be sent to" in r.err)
    js = json.loads(run_cli(["plan", "--format", "json", "experiments"], env=env, cwd=root).out)
    assert [(x["code"], x["origin"]) for x in js["security"]] == [("key_sent_to_new_origin", "https://attacker.example")]
    md = run_cli(["plan", "--format", "markdown", "experiments"], env=env, cwd=root).out
    assert md.index(":lock: Security-relevant changes (1)") < md.index("#### Experiments")


def test_no_secrets_shows_no_value_of_an_unmanaged_experiment(repo: tuple[Path, dict[str, str | None]]) -> None:
    root, env = repo
    # neither experiment is managed by expsync any more (as if created in the admin UI)
    engine = sa.create_engine(str(env["EXPSYNC_DATABASE_URL"]))
    with engine.begin() as conn:
        eid = conn.execute(sa.text("SELECT experiment_id FROM expsync_managed WHERE key = 'bar-reasoning-trial'")).scalar_one()
        conn.execute(sa.text("DELETE FROM expsync_managed"))
    engine.dispose()
    (root / "experiments" / FOO.name).unlink()
    variant = "  - label: control\n    weight: 9\n    upstream: {internal_id: m, base_url: 'https://x.example/v1'}\n" \
              "    api_key: env:BAR_PARTNER_KEY\n"
    # a fork PR pins the draft's id, and activates a new experiment on the public id the other one routes
    (root / "experiments" / BAR.name).write_text(
        f"key: fork-pr\nid: {uuid.UUID(str(eid))}\npublic_model_id: partner/bar-reasoning\nname: Fork PR\nstatus: draft\n"
        f"variants:\n{variant}")
    (root / "experiments" / "new.yaml").write_text(
        f"key: fork-new\npublic_model_id: partner/preview-foo\nname: Fork new\nstatus: active\nvariants:\n{variant}")
    hidden = ("Bar reasoning traces in content", "Checks whether injecting", "reasoning-in-content", "bar-large-2",
              "inference.bar.example", "Foo RC1 vs RC2", "rc2 (new checkpoint)", "foo-rc2", "api.partner.example")
    for fmt in ("text", "json", "markdown"):
        shown = run_cli(["plan", "--format", fmt, "experiments"], env=env, cwd=root)  # trusted: values shown
        assert "Bar reasoning traces in content" in shown.out and "Foo RC1 vs RC2" in shown.out, shown.all
        r = run_cli(["plan", "--no-secrets", "--format", fmt, "experiments"], env=env, cwd=root)
        assert r.code == 4 and "E310" in r.all, r.all
        assert [h for h in hidden if h in r.all] == [], fmt
        assert "Fork PR" in r.out and "an experiment not managed by expsync" in r.out


def test_removing_every_managed_experiment_needs_allow_empty(repo: tuple[Path, dict[str, str | None]]) -> None:
    root, env = repo
    engine = sa.create_engine(str(env["EXPSYNC_DATABASE_URL"]))
    with engine.begin() as conn:  # only the draft is managed (the active one was adopted elsewhere)
        conn.execute(sa.text("DELETE FROM expsync_managed WHERE key = 'foo-rc-bakeoff'"))
    for f in (root / "experiments").iterdir():
        f.unlink()
    r = run_cli(["plan", "experiments"], env=env, cwd=root)
    assert r.code == 4 and "E504" in r.all and "--allow-empty" in r.all, r.all
    r = run_cli(["apply", "--yes", "experiments"], env=env, cwd=root)
    assert r.code == 4 and "E504" in r.all, r.all
    count = "SELECT count(*) FROM model_experiment"
    with engine.connect() as conn:
        assert conn.execute(sa.text(count)).scalar_one() == 2  # nothing was written
    r = run_cli(["plan", "--allow-empty", "experiments"], env=env, cwd=root)
    assert r.code == 0 and 'experiment "bar-reasoning-trial" will be deleted' in r.out, r.all
    r = run_cli(["apply", "--yes", "--allow-empty", "experiments"], env=env, cwd=root)
    assert r.code == 0, r.all
    with engine.connect() as conn:
        assert conn.execute(sa.text(count)).scalar_one() == 1
    engine.dispose()
