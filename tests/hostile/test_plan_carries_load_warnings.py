"""Warnings the YAML loader finds (``W301``: one variant takes all traffic) reach the plan a
reviewer reads, in every format, not only ``validate``."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli_helpers import run_cli
from tests.integration.gateway import TEST_KEY_B64

DOC = """\
key: solo
public_model_id: partner/solo
name: Solo
status: active
variants:
  - label: only
    weight: 1
    upstream:
      internal_id: m1
      base_url: https://api.partner.example/v1
    api_key: env:PARTNER_SOLO_KEY
"""


def test_w301_is_in_the_plan(tmp_path: Path) -> None:
    (tmp_path / "experiments").mkdir()
    (tmp_path / "experiments" / "solo.yaml").write_text(DOC)
    env = {"BYOK_ENCRYPTION_KEY": TEST_KEY_B64, "PARTNER_SOLO_KEY": "k-solo", "EXPSYNC_GATEWAY_PROFILE": "2026-06"}
    assert "W301" in run_cli(["validate", "experiments"], env=env, cwd=tmp_path).all
    for fmt in ("text", "markdown"):
        r = run_cli(["plan", "--format", fmt, "experiments"], env=env, cwd=tmp_path)
        assert r.code == 0 and "W301" in r.out, r.all
    r = run_cli(["plan", "--format", "json", "experiments"], env=env, cwd=tmp_path)
    plan = json.loads(r.out)
    assert plan["summary"]["warnings"] == 1 and [d["code"] for d in plan["diagnostics"]] == ["W301"]
    # the saved plan is shown to the same bytes
    r = run_cli(["plan", "--out", "p.json", "--format", "markdown", "experiments"], env=env, cwd=tmp_path)
    assert run_cli(["show", "p.json", "--format", "markdown"], env={}, cwd=tmp_path).out == r.out


def test_w301_is_in_what_apply_prints(tmp_path: Path) -> None:
    (tmp_path / "experiments").mkdir()
    (tmp_path / "experiments" / "solo.yaml").write_text(DOC)
    env = {"BYOK_ENCRYPTION_KEY": TEST_KEY_B64, "PARTNER_SOLO_KEY": "k-solo", "EXPSYNC_GATEWAY_PROFILE": "2026-06",
           "EXPSYNC_DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}"}
    assert run_cli(["db", "init"], env=env, cwd=tmp_path).code == 0
    r = run_cli(["apply", "--yes", "experiments"], env=env, cwd=tmp_path)
    assert r.code == 0 and "W301" in r.out, r.all
