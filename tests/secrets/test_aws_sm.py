"""``aws-sm:`` references against a real moto Secrets Manager server."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from expsync.diagnostics import Diagnostic
from expsync.secrets import resolve_all
from expsync.secrets.refs import parse_ref

if TYPE_CHECKING:
    from conftest import AwsStore


def resolve(
    aws: AwsStore, texts: list[str], tmp_path: Path, **env: str
) -> tuple[dict[str, str], dict[str, Diagnostic]]:
    """Resolve through the counting client; values by ref text, diagnostics by ref text."""
    secrets, diags = resolve_all(
        [parse_ref(t) for t in texts], environ={**aws.environ, **env}, cwd=tmp_path, resolvers=aws.resolvers()
    )
    return {str(r): s.reveal() for r, s in secrets.items()}, {ref_of(d): d for d in diags}


def ref_of(d: Diagnostic) -> str:
    """``"cannot resolve aws-sm:ID#F: reason"`` -> ``"aws-sm:ID#F"``."""
    return d.message.removeprefix("cannot resolve ").split(": ", 1)[0]


def test_plain_string_secret(aws: AwsStore, tmp_path: Path) -> None:
    aws.put("partners/foo", "sk-plain-1")
    values, diags = resolve(aws, ["aws-sm:partners/foo"], tmp_path)
    assert values == {"aws-sm:partners/foo": "sk-plain-1"} and not diags


def test_json_secret_with_field(aws: AwsStore, tmp_path: Path) -> None:
    aws.put("partners/foo", {"rc1_key": "sk-rc1", "rc2_key": "sk-rc2"})
    values, diags = resolve(aws, ["aws-sm:partners/foo#rc1_key", "aws-sm:partners/foo#rc2_key"], tmp_path)
    assert values == {"aws-sm:partners/foo#rc1_key": "sk-rc1", "aws-sm:partners/foo#rc2_key": "sk-rc2"}
    assert not diags
    # two fields of one secret: the secret is fetched once
    assert aws.batch_sizes == [1]


def test_secret_by_arn(aws: AwsStore, tmp_path: Path) -> None:
    arn = aws.admin.create_secret(Name="by-arn", SecretString="sk-arn")["ARN"]
    values, diags = resolve(aws, [f"aws-sm:{arn}"], tmp_path)
    assert values == {f"aws-sm:{arn}": "sk-arn"} and not diags


def test_missing_secret_is_e402(aws: AwsStore, tmp_path: Path) -> None:
    aws.put("exists", "sk-exists")
    values, diags = resolve(aws, ["aws-sm:exists", "aws-sm:partners/nope#k"], tmp_path)
    assert values == {"aws-sm:exists": "sk-exists"}
    assert diags["aws-sm:partners/nope#k"].code == "E402"
    assert "does not exist" in diags["aws-sm:partners/nope#k"].message


def test_missing_field_or_not_json_is_e404(aws: AwsStore, tmp_path: Path) -> None:
    aws.put("obj", {"other": "sk-other"})
    aws.put("text", "sk-not-json")
    aws.put("array", json.dumps(["sk-in-array"]))
    aws.put("typed", {"k": 12345678, "n": None})
    _, diags = resolve(aws, ["aws-sm:obj#k", "aws-sm:text#k", "aws-sm:array#k", "aws-sm:typed#k"], tmp_path)
    assert {ref: d.code for ref, d in diags.items()} == {
        "aws-sm:obj#k": "E404",
        "aws-sm:text#k": "E404",
        "aws-sm:array#k": "E404",
        "aws-sm:typed#k": "E404",
    }
    assert "has no field 'k'" in diags["aws-sm:obj#k"].message
    assert "is not JSON" in diags["aws-sm:text#k"].message
    assert "not a JSON object" in diags["aws-sm:array#k"].message
    assert "is a JSON number, not a string" in diags["aws-sm:typed#k"].message


def test_empty_value_is_e405(aws: AwsStore, tmp_path: Path) -> None:
    aws.put("blank", "   ")
    aws.put("obj", {"k": ""})
    _, diags = resolve(aws, ["aws-sm:blank", "aws-sm:obj#k"], tmp_path)
    assert {ref: d.code for ref, d in diags.items()} == {"aws-sm:blank": "E405", "aws-sm:obj#k": "E405"}


def test_binary_secret_is_refused(aws: AwsStore, tmp_path: Path) -> None:
    aws.admin.create_secret(Name="bin", SecretBinary=b"\x00\x01sk")
    _, diags = resolve(aws, ["aws-sm:bin"], tmp_path)
    assert diags["aws-sm:bin"].code == "E405" and "binary" in diags["aws-sm:bin"].message


def test_25_secrets_take_two_batch_calls(aws: AwsStore, tmp_path: Path) -> None:
    for i in range(25):
        aws.put(f"batch/s{i:02d}", {"key": f"sk-batch-{i}"})
    refs = [f"aws-sm:batch/s{i:02d}#key" for i in range(25)] + ["aws-sm:batch/missing"]
    values, diags = resolve(aws, refs, tmp_path)
    assert values == {f"aws-sm:batch/s{i:02d}#key": f"sk-batch-{i}" for i in range(25)}
    assert [d.code for d in diags.values()] == ["E402"]
    assert aws.calls == {"BatchGetSecretValue": 2}
    assert aws.batch_sizes == [20, 6]


def test_falls_back_to_get_secret_value_when_batch_is_not_permitted(aws: AwsStore, tmp_path: Path) -> None:
    """Many IAM policies grant only GetSecretValue: moto enforces IAM here, like AWS would."""
    for i in range(3):
        aws.put(f"fb/s{i}", f"sk-fallback-{i}")
    limited = aws.iam_user("get-only", ["secretsmanager:GetSecretValue"])
    aws.enforce_iam()
    values, diags = resolve(aws, [f"aws-sm:fb/s{i}" for i in range(3)] + ["aws-sm:fb/nope"], tmp_path, **limited)
    assert values == {f"aws-sm:fb/s{i}": f"sk-fallback-{i}" for i in range(3)}
    assert {ref: d.code for ref, d in diags.items()} == {"aws-sm:fb/nope": "E402"}
    assert aws.calls == {"BatchGetSecretValue": 1, "GetSecretValue": 4}


def test_access_denied_is_e403(aws: AwsStore, tmp_path: Path) -> None:
    aws.put("denied", "sk-denied")
    nothing = aws.iam_user("no-secrets", ["iam:GetUser"])
    aws.enforce_iam()
    _, diags = resolve(aws, ["aws-sm:denied", "aws-sm:denied#f"], tmp_path, **nothing)
    assert {ref: d.code for ref, d in diags.items()} == {"aws-sm:denied": "E403", "aws-sm:denied#f": "E403"}
    assert "access denied" in diags["aws-sm:denied"].message


def test_rejected_credentials_are_e406_and_stop_early(aws: AwsStore, tmp_path: Path) -> None:
    aws.put("s", "sk-s")
    aws.enforce_iam()
    bogus = {"AWS_ACCESS_KEY_ID": "AKIABOGUSBOGUSBOGUS", "AWS_SECRET_ACCESS_KEY": "bogus"}
    _, diags = resolve(aws, ["aws-sm:s", "aws-sm:t"], tmp_path, **bogus)
    assert {d.code for d in diags.values()} == {"E406"}
    assert "rejected the credentials" in diags["aws-sm:s"].message
    assert sum(aws.calls.values()) == 1


def test_unreachable_endpoint_is_e406(aws: AwsStore, tmp_path: Path, closed_url: str) -> None:
    start = time.monotonic()
    _, diags = resolve(aws, ["aws-sm:a", "aws-sm:b"], tmp_path, EXPSYNC_AWS_ENDPOINT_URL=closed_url)
    assert {d.code for d in diags.values()} == {"E406"}
    assert "cannot be reached" in diags["aws-sm:a"].message
    assert time.monotonic() - start < 15


def test_missing_region_is_e406(aws: AwsStore, tmp_path: Path) -> None:
    environ = {k: v for k, v in aws.environ.items() if k != "AWS_REGION"}
    secrets, diags = resolve_all([parse_ref("aws-sm:a")], environ=environ, cwd=tmp_path, resolvers=aws.resolvers())
    if secrets:  # a region from ~/.aws/config of the machine running the tests
        pytest.skip("a default AWS region is configured on this machine")
    assert diags[0].code == "E406" and "AWS_REGION" in diags[0].hint


def test_boto3_not_installed_names_the_extra(aws: AwsStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("boto3", "botocore"):
        monkeypatch.setitem(sys.modules, name, None)  # what `import` sees when it is not installed
    secrets, diags = resolve_all([parse_ref("aws-sm:a"), parse_ref("aws-sm:b#f")], environ=aws.environ, cwd=tmp_path)
    assert not secrets
    assert [d.code for d in diags] == ["E406", "E406"]
    assert "pip install 'expsync[aws]'" in diags[0].hint


@pytest.mark.parametrize("code", ["ThrottlingException", "InternalServiceError", "503"])
def test_a_throttled_or_failing_batch_is_not_multiplied_into_single_reads(
        aws: AwsStore, tmp_path: Path, code: str) -> None:
    """When BatchGetSecretValue still fails after botocore's own retries because the service
    is throttling or failing, reading every secret one by one (each with its own retries)
    would multiply the load on a throttled API: every reference is E406 after that one call.
    (A stand-in endpoint: moto cannot throttle.)"""
    from pytest_httpserver import HTTPServer
    from werkzeug import Response

    with HTTPServer() as server:
        status = {"ThrottlingException": 400, "InternalServiceError": 500}.get(code, 503)
        body = "<html>busy</html>" if code.isdigit() else json.dumps({"__type": code, "message": "stand-in"})
        server.expect_request("/", method="POST").respond_with_handler(
            lambda _req: Response(body, status=status, content_type="application/x-amz-json-1.1"))
        _, diags = resolve(aws, ["aws-sm:a", "aws-sm:b", "aws-sm:c#f"], tmp_path,
                           EXPSYNC_AWS_ENDPOINT_URL=server.url_for("/").rstrip("/"))
    assert {d.code for d in diags.values()} == {"E406"} and len(diags) == 3, diags
    assert code in diags["aws-sm:a"].message
    assert aws.calls == {"BatchGetSecretValue": 1}, aws.calls
