"""``extra_headers`` names the gateway's fetch refuses ("invalid header name"): its admin API
stores them, then every request of the variant fails. expsync refuses them (E131)."""

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
      extra_headers: {{{name}: v}}
    api_key: env:PARTNER_A_KEY
"""


@pytest.mark.parametrize("name", ["'Bad Header'", "''", "'X-A:'", "'X(A)'", "'X/A'", "'Ünïcode'", "'X\"A'"])
def test_invalid_header_names_are_e131(tmp_path: Path, name: str) -> None:
    (tmp_path / "a.yaml").write_text(DOC.format(name=name))
    r = run_cli(["validate", "--gateway-profile", "2026-06", str(tmp_path)])
    assert r.code == 3 and "E131" in r.all and "a.yaml:11:" in r.all, r.all


@pytest.mark.parametrize("name", ["X-Request-Source", "anthropic-beta", "x_custom", "X.Y", "a!#$%&'*+^`|~"])
def test_valid_header_names_pass(tmp_path: Path, name: str) -> None:
    (tmp_path / "a.yaml").write_text(DOC.format(name=f'"{name}"'))
    r = run_cli(["validate", "--gateway-profile", "2026-06", str(tmp_path)])
    assert r.code == 0, r.all


@pytest.mark.parametrize("value", ["'gold €'", "'Ā'", "'\U0001F600'", "'日本'"])
def test_header_values_the_gateways_fetch_cannot_send_are_e132(tmp_path: Path, value: str) -> None:
    # fetch's Headers take ByteStrings: a character above U+00FF throws ("Cannot convert
    # argument to a ByteString") for every request of the variant; the admin API stores it
    (tmp_path / "a.yaml").write_text(DOC.format(name="x-tier").replace("x-tier: v", f"x-tier: {value}"))
    r = run_cli(["validate", "--gateway-profile", "2026-06", str(tmp_path)])
    assert r.code == 3 and "E132" in r.all and "a.yaml:11:" in r.all, r.all


@pytest.mark.parametrize("value", ["gold", "'café ÿ'", "'a b'", "''"])
def test_latin1_header_values_pass(tmp_path: Path, value: str) -> None:
    (tmp_path / "a.yaml").write_text(DOC.format(name="x-tier").replace("x-tier: v", f"x-tier: {value}"))
    r = run_cli(["validate", "--gateway-profile", "2026-06", str(tmp_path)])
    assert r.code == 0, r.all


@pytest.mark.parametrize("header", ["Transfer-Encoding: chunked", "keep-alive: timeout=5", "Upgrade: h2c",
                                    "Expect: 100-continue", "connection: upgrade", "Content-Length: '42'"])
def test_headers_the_gateways_fetch_refuses_for_every_request_are_e133(tmp_path: Path, header: str) -> None:
    # undici (Node's fetch) throws for these ("invalid transfer-encoding header", "expect header
    # not supported", ...), and a fixed content-length never matches the body the gateway rewrites
    (tmp_path / "a.yaml").write_text(DOC.format(name="x-tier").replace("x-tier: v", header))
    r = run_cli(["validate", "--gateway-profile", "2026-06", str(tmp_path)])
    assert r.code == 3 and "E133" in r.all and "a.yaml:11:" in r.all, r.all


@pytest.mark.parametrize("header", ["Connection: close", "connection: Keep-Alive", "Host: api.partner.example",
                                    "x-upgrade: v", "TE: trailers"])
def test_headers_fetch_sends_pass(tmp_path: Path, header: str) -> None:
    (tmp_path / "a.yaml").write_text(DOC.format(name="x-tier").replace("x-tier: v", header))
    r = run_cli(["validate", "--gateway-profile", "2026-06", str(tmp_path)])
    assert r.code == 0, r.all
