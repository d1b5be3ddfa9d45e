"""Canary: a resolved value must never show up in any output (spec §9).

One canary value is stored in every provider and every failure path is forced on material that
contains it. Everything expsync produces - diagnostics in every format, reprs, exception texts
and tracebacks, everything logged at DEBUG by expsync *and* by boto3/hvac/urllib3, stdout and
stderr - must not contain it. The positive checks prove the canary really went through.
"""

from __future__ import annotations

import json
import logging
import traceback
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from expsync.crypto import DecryptError, decrypt_api_key, encrypt_api_key, load_key
from expsync.diagnostics import Diagnostic
from expsync.errors import ConfigError
from expsync.model import SecretRef
from expsync.secrets import RESOLVERS, Redactor, ResolveContext, resolve_all
from expsync.secrets.base import Outcome
from expsync.secrets.refs import parse_ref

if TYPE_CHECKING:
    from conftest import AwsStore, VaultStore

CANARY = f"canary-{uuid.uuid4().hex}"


class LeakyClientResolver:
    """A store client whose exception text quotes the value (as some libraries' errors do)."""

    def resolve(self, refs: Sequence[SecretRef], ctx: ResolveContext) -> dict[SecretRef, Outcome]:
        raise RuntimeError(f"unexpected response {{'SecretString': '{CANARY}'}}")


def texts_of(diags: Iterable[Diagnostic]) -> list[str]:
    return [t for d in diags for t in (d.format(), json.dumps(d.as_dict()), repr(d), d.hint)]


def texts_of_exception(exc: BaseException) -> list[str]:
    return [str(exc), repr(exc), "".join(traceback.format_exception(exc))]


def test_canary_never_leaks(
    aws: AwsStore,
    vault: VaultStore,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (tmp_path / "key.txt").write_text(CANARY + "\n")
    (tmp_path / "binary.bin").write_bytes(CANARY.encode() + b"\xff\xfe")
    aws.put("canary/plain", CANARY)
    aws.put("canary/json", {"k": CANARY, "list": [CANARY]})
    vault.put("canary/x", {"k": CANARY, "obj": {"nested": CANARY}})
    # Only now: the seeding above is the test writing the canary itself, and botocore logs that.
    caplog.set_level(logging.DEBUG)  # every logger, including botocore.*, urllib3.*, hvac

    good = [
        "env:CANARY_ENV",
        "file:key.txt",
        "aws-sm:canary/plain",
        "aws-sm:canary/json#k",
        "vault:secret/canary/x#k",
    ]
    bad = {
        "aws-sm:canary/json#missing": "E404",
        "aws-sm:canary/json#list": "E404",  # a non-string field holding the canary
        "aws-sm:canary/plain#k": "E404",  # not JSON: its text is the canary
        "aws-sm:canary/absent": "E402",
        "vault:secret/canary/x#missing": "E404",
        "vault:secret/canary/x#obj": "E404",
        "vault:secret/canary/absent#k": "E402",
        "file:binary.bin": "E405",
        "env:ABSENT": "E402",
        "env:BLANK": "E405",
    }
    environ = {**aws.environ, **vault.environ(), "CANARY_ENV": CANARY, "BLANK": " "}
    redactor = Redactor()
    secrets, diags = resolve_all(
        [parse_ref(t) for t in [*good, *bad]],
        environ=environ,
        cwd=tmp_path,
        redactor=redactor,
        resolvers=aws.resolvers(),
    )

    # positive: the canary was really resolved everywhere, and every failure path was taken
    assert {str(r): s.reveal() for r, s in secrets.items()} == {t: CANARY for t in good}
    assert {d.message.removeprefix("cannot resolve ").split(": ", 1)[0]: d.code for d in diags} == bad
    assert redactor.redact(f"x{CANARY}y") == "x***y"

    outputs: list[str] = [repr(secrets), str(secrets), repr(redactor), *texts_of(diags)]
    outputs += [repr(s) for s in secrets.values()] + [str(s) for s in secrets.values()]

    # access denied (Vault policy; AWS IAM) on the canary's secrets
    _, denied = resolve_all(
        [parse_ref("vault:secret/canary/x#k")], environ=vault.environ(VAULT_TOKEN=vault.limited_token), cwd=tmp_path
    )
    assert [d.code for d in denied] == ["E403"]
    outputs += texts_of(denied)
    creds = aws.iam_user("no-read", ["iam:GetUser"])
    aws.enforce_iam()
    _, denied = resolve_all(
        [parse_ref("aws-sm:canary/json#k")], environ={**aws.environ, **creds}, cwd=tmp_path, resolvers=aws.resolvers()
    )
    assert [d.code for d in denied] == ["E403"]
    outputs += texts_of(denied)

    # a store client failing with the value in its own exception text
    _, crashed = resolve_all(
        [parse_ref("aws-sm:canary/plain")],
        environ={},
        cwd=tmp_path,
        resolvers={**RESOLVERS, "aws-sm": LeakyClientResolver()},
    )
    assert [d.code for d in crashed] == ["E406"]
    outputs += texts_of(crashed)

    # crypto: wrong key, tampered data, and a canary pasted as BYOK_ENCRYPTION_KEY
    enc = encrypt_api_key(secrets[parse_ref("env:CANARY_ENV")], b"\x07" * 32)
    assert CANARY not in json.dumps(enc)
    for attempt in (
        lambda: decrypt_api_key(enc, b"\x08" * 32),
        lambda: decrypt_api_key({**enc, "iv": CANARY}, b"\x07" * 32),
    ):
        with pytest.raises(DecryptError) as info:
            attempt()
        outputs += texts_of_exception(info.value)
    with pytest.raises(ConfigError) as cfg:
        load_key(CANARY)
    outputs += texts_of_exception(cfg.value)
    assert decrypt_api_key(enc, b"\x07" * 32).reveal() == CANARY

    for text in outputs:
        assert CANARY not in text, text
    captured = capsys.readouterr()
    assert CANARY not in captured.out and CANARY not in captured.err
    assert caplog.records, "DEBUG logging was on: the libraries did log"
    assert CANARY not in caplog.text
    for record in caplog.records:
        assert CANARY not in record.getMessage()
        assert not record.exc_info or CANARY not in "".join(traceback.format_exception(*record.exc_info))
