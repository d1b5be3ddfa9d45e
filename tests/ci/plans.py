"""Saved plans made by the real CLI, for the CI tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa

from tests.cli_helpers import run_cli
from tests.integration.apply_support import Repo, cli_env, experiment, variant

SECRETS = {"PARTNER_A_KEY": "sk-partner-a-000111", "PARTNER_B_KEY": "sk-partner-b-000222"}


def two(name: str) -> list[dict[str, Any]]:
    return [variant("control", f"m-{name}-0", "env:PARTNER_A_KEY"),
            variant("candidate", f"m-{name}-1", "env:PARTNER_B_KEY", weight=3)]


def save_plan(tmp_path: Path, engine: sa.Engine, *docs: dict[str, Any], name: str = "plan.json",
              repo: Repo | None = None) -> Path:
    repo = repo or Repo(tmp_path)
    repo.put(*docs)
    out = tmp_path / name
    r = run_cli(["plan", "--out", str(out), repo.path], env=cli_env(engine, SECRETS))
    assert r.code == 0, r.all
    return out


def foo(name: str = "Foo bake-off", status: str = "draft") -> dict[str, Any]:
    return experiment("foo", "partner/foo", status, two("foo"), name=name)
