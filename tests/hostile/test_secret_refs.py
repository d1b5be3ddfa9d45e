"""A pull request reaching around the secret-reference allowlist or the credential-literal rule."""

from __future__ import annotations

from pathlib import Path

import pytest

from expsync.secrets.refs import RefSyntaxError, parse_ref
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
{extra}    api_key: {ref}
"""


def _write(tmp_path: Path, ref: str, extra: str = "") -> Path:
    folder = tmp_path / "experiments"
    folder.mkdir()
    (folder / "a.yaml").write_text(DOC.format(ref=ref, extra=extra))
    return folder


@pytest.mark.parametrize("ref", [
    "vault:secret/partners/../prod/db#password",
    "vault:secret/partners/./../../sys/x#f",
    "vault:../secret/partners/x#f",
    "vault:secret/partners/..#f",
])
def test_vault_dot_segments_cannot_walk_out_of_an_allowlisted_path(tmp_path: Path, ref: str) -> None:
    # the HTTP client and Vault collapse `..`: `secret/partners/../prod/db` matched the pattern
    # `vault:secret/partners/*` and read `secret/prod/db`
    with pytest.raises(RefSyntaxError):
        parse_ref(ref)
    r = run_cli(["validate", "--gateway-profile", "2026-05", str(_write(tmp_path, ref))],
                env={"EXPSYNC_SECRET_REFS": "vault:secret/partners/*"})
    assert r.code == 3 and "E401" in r.all, r.all


def test_vault_dots_inside_names_stay_valid() -> None:
    assert parse_ref("vault:secret/partners/foo.v2#api_key").locator == "secret/partners/foo.v2"


@pytest.mark.parametrize("extra", [
    "      extra_body: {api_key: [sk-live-123]}\n",
    "      extra_body: {auth: {value: sk-live-123}}\n",
    "      extra_body: {credentials: [{user: u, pass: sk-live-123}]}\n",
    "      extra_body: {x: [{client_secret: [[sk-live-123]]}]}\n",
])
def test_credential_named_key_holding_a_list_or_object_of_literals_is_refused(tmp_path: Path, extra: str) -> None:
    r = run_cli(["validate", "--gateway-profile", "2026-05", str(_write(tmp_path, "env:PARTNER_A_KEY", extra))])
    assert r.code == 3 and "E411" in r.all, r.all


def test_credential_named_key_holding_no_literal_is_fine(tmp_path: Path) -> None:
    extra = "      extra_body: {auth: {enabled: true}, token_budget: [], tokens: {}}\n"
    r = run_cli(["validate", "--gateway-profile", "2026-05", str(_write(tmp_path, "env:PARTNER_A_KEY", extra))])
    assert r.code == 0, r.all
