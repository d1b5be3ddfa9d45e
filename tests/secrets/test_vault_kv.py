"""``vault:`` references against a real OpenBao dev server (Vault's API, KV v2)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from expsync.diagnostics import Diagnostic
from expsync.secrets import resolve_all
from expsync.secrets.refs import parse_ref

if TYPE_CHECKING:
    from conftest import VaultStore


def resolve(environ: dict[str, str], texts: list[str], tmp_path: Path) -> tuple[dict[str, str], dict[str, Diagnostic]]:
    secrets, diags = resolve_all([parse_ref(t) for t in texts], environ=environ, cwd=tmp_path)
    by_ref = {d.message.removeprefix("cannot resolve ").split(": ", 1)[0]: d for d in diags}
    return {str(r): s.reveal() for r, s in secrets.items()}, by_ref


@pytest.fixture(scope="module", autouse=True)
def _seed(vault: VaultStore) -> None:
    vault.put("partners/foo", {"rc1_key": "sk-vault-rc1", "rc2_key": "sk-vault-rc2", "count": 3, "blank": ""})
    vault.put("allowed/bar", {"api_key": "sk-vault-allowed"})


def test_reads_fields_of_a_kv2_secret(vault: VaultStore, tmp_path: Path) -> None:
    values, diags = resolve(
        vault.environ(), ["vault:secret/partners/foo#rc1_key", "vault:secret/partners/foo#rc2_key"], tmp_path
    )
    assert values == {
        "vault:secret/partners/foo#rc1_key": "sk-vault-rc1",
        "vault:secret/partners/foo#rc2_key": "sk-vault-rc2",
    }
    assert not diags


def test_missing_path_is_e402(vault: VaultStore, tmp_path: Path) -> None:
    _, diags = resolve(vault.environ(), ["vault:secret/partners/nope#k"], tmp_path)
    assert diags["vault:secret/partners/nope#k"].code == "E402"


def test_deleted_latest_version_is_e402(vault: VaultStore, tmp_path: Path) -> None:
    vault.put("partners/deleted", {"k": "sk-old"})
    vault.client().secrets.kv.v2.delete_latest_version_of_secret(path="partners/deleted", mount_point="secret")
    _, diags = resolve(vault.environ(), ["vault:secret/partners/deleted#k"], tmp_path)
    assert diags["vault:secret/partners/deleted#k"].code == "E402"


def test_policy_that_cannot_read_the_path_is_e403(vault: VaultStore, tmp_path: Path) -> None:
    environ = vault.environ(VAULT_TOKEN=vault.limited_token)
    values, diags = resolve(
        environ, ["vault:secret/allowed/bar#api_key", "vault:secret/partners/foo#rc1_key"], tmp_path
    )
    assert values == {"vault:secret/allowed/bar#api_key": "sk-vault-allowed"}
    assert diags["vault:secret/partners/foo#rc1_key"].code == "E403"
    assert "permission denied" in diags["vault:secret/partners/foo#rc1_key"].message


def test_missing_field_or_non_string_field_is_e404_and_empty_field_e405(vault: VaultStore, tmp_path: Path) -> None:
    _, diags = resolve(
        vault.environ(),
        ["vault:secret/partners/foo#nope", "vault:secret/partners/foo#count", "vault:secret/partners/foo#blank"],
        tmp_path,
    )
    assert {ref: d.code for ref, d in diags.items()} == {
        "vault:secret/partners/foo#nope": "E404",
        "vault:secret/partners/foo#count": "E404",
        "vault:secret/partners/foo#blank": "E405",
    }


def test_approle_login_then_read(vault: VaultStore, tmp_path: Path) -> None:
    environ = {"VAULT_ADDR": vault.addr, "VAULT_ROLE_ID": vault.role_id, "VAULT_SECRET_ID": vault.secret_id}
    values, diags = resolve(environ, ["vault:secret/partners/foo#rc1_key"], tmp_path)
    assert values == {"vault:secret/partners/foo#rc1_key": "sk-vault-rc1"} and not diags
    # the role's policy covers partners/* only
    _, diags = resolve(environ, ["vault:secret/allowed/bar#api_key"], tmp_path)
    assert diags["vault:secret/allowed/bar#api_key"].code == "E403"


def test_failed_approle_login_is_e406(vault: VaultStore, tmp_path: Path) -> None:
    environ = {"VAULT_ADDR": vault.addr, "VAULT_ROLE_ID": vault.role_id, "VAULT_SECRET_ID": "not-the-secret-id"}
    _, diags = resolve(environ, ["vault:secret/partners/foo#rc1_key", "vault:secret/partners/foo#rc2_key"], tmp_path)
    assert {d.code for d in diags.values()} == {"E406"}
    assert "AppRole login" in diags["vault:secret/partners/foo#rc1_key"].message


def test_wrong_approle_mount_is_e406(vault: VaultStore, tmp_path: Path) -> None:
    environ = {
        "VAULT_ADDR": vault.addr,
        "VAULT_ROLE_ID": vault.role_id,
        "VAULT_SECRET_ID": vault.secret_id,
        "VAULT_APPROLE_MOUNT": "elsewhere",
    }
    _, diags = resolve(environ, ["vault:secret/partners/foo#rc1_key"], tmp_path)
    assert diags["vault:secret/partners/foo#rc1_key"].code == "E406"


@pytest.mark.parametrize(
    ("environ", "fragment"),
    [
        ({}, "VAULT_ADDR is not set"),
        ({"VAULT_ADDR": "http://127.0.0.1:9"}, "no Vault credentials"),
    ],
)
def test_missing_configuration_is_e406(environ: dict[str, str], fragment: str, tmp_path: Path) -> None:
    _, diags = resolve(environ, ["vault:secret/partners/foo#k"], tmp_path)
    assert diags["vault:secret/partners/foo#k"].code == "E406"
    assert fragment in diags["vault:secret/partners/foo#k"].message


def test_unreachable_vault_is_e406(tmp_path: Path, closed_url: str) -> None:
    _, diags = resolve({"VAULT_ADDR": closed_url, "VAULT_TOKEN": "t"}, ["vault:secret/partners/foo#k"], tmp_path)
    diag = diags["vault:secret/partners/foo#k"]
    assert diag.code == "E406" and "cannot be reached" in diag.message


def test_hvac_not_installed_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "hvac", None)  # what `import` sees when it is not installed
    _, diags = resolve({"VAULT_ADDR": "http://x", "VAULT_TOKEN": "t"}, ["vault:secret/a/b#k"], tmp_path)
    assert diags["vault:secret/a/b#k"].code == "E406"
    assert "pip install 'expsync[vault]'" in diags["vault:secret/a/b#k"].hint


def test_rejected_token_is_e406_and_stops_early(vault: VaultStore, tmp_path: Path) -> None:
    """Vault answers an invalid, expired or revoked token with 403 "permission denied", as it does
    a policy that does not cover a path: the token is the problem (E406), not the paths (E403)."""
    revoked = vault.client().auth.token.create(policies=["read-partners"], ttl="1h")["auth"]["client_token"]
    vault.client().auth.token.revoke(revoked)
    paths = [f"vault:secret/partners/p{i}#k" for i in range(5)]
    for token in ("not-a-vault-token", revoked):
        _, diags = resolve(vault.environ(VAULT_TOKEN=token), paths, tmp_path)
        assert {ref: d.code for ref, d in diags.items()} == dict.fromkeys(paths, "E406")
        assert "Vault rejected VAULT_TOKEN" in diags[paths[0]].message
    # a valid token whose policy does not cover a path is still E403 for that path alone
    values, diags = resolve(vault.environ(VAULT_TOKEN=vault.limited_token),
                            ["vault:secret/allowed/bar#api_key", *paths], tmp_path)
    assert values == {"vault:secret/allowed/bar#api_key": "sk-vault-allowed"}
    assert {d.code for d in diags.values()} == {"E403"}
