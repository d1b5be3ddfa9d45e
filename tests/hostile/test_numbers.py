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


@pytest.mark.parametrize("number", ["2e-1", "1e3", "1.5e3", "-.5e1", "1E400", "0e0"])
def test_an_exponent_number_yaml_11_reads_as_text_is_refused(tmp_path: Path, number: str) -> None:
    # YAML 1.2 (the editor's schema check, JSON) reads 2e-1 as 0.2; libyaml's YAML 1.1 resolver
    # reads it as the text "2e-1", which the gateway would have sent upstream as a string
    (tmp_path / "a.yaml").write_text(DOC.format(extra=f"      extra_body: {{temperature: {number}}}\n", meta=""))
    r = run_cli(["validate", "--gateway-profile", "2026-06", str(tmp_path)])
    assert r.code == 3 and "E113" in r.all and "a.yaml:11:" in r.all and "quote it" in r.all, r.all


@pytest.mark.parametrize("number", ["'2e-1'", "2.0e-1", "1.5E+3", "0.2"])
def test_unambiguous_numbers_and_quoted_text_pass(tmp_path: Path, number: str) -> None:
    (tmp_path / "a.yaml").write_text(DOC.format(extra=f"      extra_body: {{temperature: {number}}}\n", meta=""))
    r = run_cli(["validate", "--gateway-profile", "2026-06", str(tmp_path)])
    assert r.code == 0, r.all


def test_an_exponent_number_as_a_mapping_key_is_e121(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(DOC.format(extra="      extra_body: {1e3: x}\n", meta=""))
    r = run_cli(["validate", "--gateway-profile", "2026-06", str(tmp_path)])
    assert r.code == 3 and "E121" in r.all, r.all
