"""The stores' own credentials reach the run's redactor as soon as a resolver handles them, even
when the redactor is still empty (an empty Redactor once tested false, and every early
registration was thrown away). Real stores: moto's server and `bao server -dev`."""

from __future__ import annotations

import logging
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from expsync.secrets import Redactor, resolve_all
from expsync.secrets.redact import redact_every_record
from expsync.secrets.refs import parse_ref

if TYPE_CHECKING:
    from conftest import AwsStore, VaultStore


def test_an_empty_redactor_is_still_a_redactor() -> None:
    assert Redactor() and len(Redactor()) == 0


def test_aws_credentials_are_registered_before_any_request(aws: AwsStore, tmp_path: Path,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    aws.put("partners/foo", "sk-aws-value-0001")
    token = f"session-token-{uuid.uuid4().hex}"
    secret = f"secret-access-key-{uuid.uuid4().hex}"
    environ = {**aws.environ, "AWS_SECRET_ACCESS_KEY": secret, "AWS_SESSION_TOKEN": token}
    red = Redactor()
    redact_every_record(red)
    try:
        with caplog.at_level(logging.DEBUG):
            secrets, diags = resolve_all([parse_ref("aws-sm:partners/foo")], environ=environ, cwd=tmp_path,
                                         redactor=red)
    finally:
        redact_every_record(Redactor())
    assert not diags and len(secrets) == 1
    assert red.redact(f"{secret} {token}") == "*** ***"
    assert "BatchGetSecretValue" in caplog.text  # botocore logged the call at DEBUG ...
    assert "X-Amz-Security-Token" not in caplog.text  # ... without the request's headers
    assert token not in caplog.text and secret not in caplog.text


def test_vault_token_and_approle_secret_id_are_registered(vault: VaultStore, tmp_path: Path) -> None:
    vault.put("partners/early", {"api_key": "sk-vault-value-0001"})
    ref = parse_ref("vault:secret/partners/early#api_key")
    red = Redactor()
    _, diags = resolve_all([ref], environ=vault.environ(), cwd=tmp_path, redactor=red)
    assert not diags and red.redact(vault.root_token) == "***"

    secret_id = f"approle-secret-{uuid.uuid4().hex}"
    vault.client().auth.approle.create_custom_secret_id("expsync-ci", secret_id=secret_id)
    red = Redactor()
    env = {"VAULT_ADDR": vault.addr, "VAULT_ROLE_ID": vault.role_id, "VAULT_SECRET_ID": secret_id}
    _, diags = resolve_all([ref], environ=env, cwd=tmp_path, redactor=red)
    assert not diags
    assert red.redact(secret_id) == "***"
    # the login token AppRole returned is registered too: besides the secret id, the role's
    # id-less values are the document and the token
    assert len(red) >= 3
