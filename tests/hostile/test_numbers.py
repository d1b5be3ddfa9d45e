"""Integers beyond a double: the gateway's JSON.parse reads them as Infinity (sent as null), and
pydantic's number check raised OverflowError (exit 1) converting them."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli_helpers import run_cli

DOC = """\
key: a
public_model_id: partner/a
name: A
status: draft
variants:
  - label: one
    weight: 1
    upstream:
      internal_id: a1
      base_url: https://api.partner.example/v1
{extra}    api_key: env:PARTNER_A_KEY
{meta}"""
HUGE = "1" + "0" * 400


@pytest.mark.parametrize(("extra", "meta"), [
    ("", f"metadata: {{context_length: {HUGE}, max_completion_tokens: 1}}\n"),
    ("", f"metadata: {{context_length: 1, max_completion_tokens: -{HUGE}}}\n"),
    (f"      extra_body: {{n: {HUGE}}}\n", ""),
    (f"      extra_body: {{n: [{{m: {HUGE}}}]}}\n", ""),
])
def test_an_integer_beyond_a_double_is_e122(tmp_path: Path, extra: str, meta: str) -> None:
    (tmp_path / "a.yaml").write_text(DOC.format(extra=extra, meta=meta))
    r = run_cli(["validate", "--gateway-profile", "2026-06", str(tmp_path)])
    assert r.code == 3 and "E122" in r.all and "unexpected error" not in r.all, r.all


def test_a_large_integer_within_a_double_is_fine(tmp_path: Path) -> None:
    big = "9" * 300
    (tmp_path / "a.yaml").write_text(DOC.format(extra=f"      extra_body: {{n: {big}}}\n",
                                                meta=f"metadata: {{context_length: {big}, max_completion_tokens: 1}}\n"))
    r = run_cli(["validate", "--gateway-profile", "2026-06", str(tmp_path)])
    assert r.code == 0, r.all
