"""End to end: canary api keys from every provider (env, file, AWS Secrets Manager on moto,
Vault KV v2 on `bao server -dev`) go through validate, plan (every format, saved plan file),
apply, rotation and a refused plan; the canaries appear in no output, log, plan file or table
cell (audit rows included) - the one intended exception being GitHub's ``::add-mask::`` lines,
printed first. The stores' own credentials (AWS secret key and session token, which botocore
logs at DEBUG; the Vault token; an AppRole secret id) and a database password given as a URL
query parameter are canaries too."""

from __future__ import annotations

import json
import logging
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.cli_helpers import Result, run_cli
from tests.integration.gateway import TEST_KEY_B64, decrypt, dump_tables

CANARY = "CANARY7f3e"
VALUES = {
    "env": f"sk-live-{CANARY}-env-000111",
    "file": f"sk-live-{CANARY}-file-000222",
    "aws": f"sk-live-{CANARY}-aws-000333",
    "vault": f"sk-live-{CANARY}-vault-000444",
}


def doc(key: str, status: str, ref: str, pid: str | None = None) -> str:
    variants = "".join(
        f"  - label: v{i}\n    weight: 1\n    upstream: {{internal_id: m{i}, base_url: 'https://api.example/v1'}}\n"
        f"    api_key: {ref}\n" for i in range(2))
    return f"key: {key}\npublic_model_id: {pid or 'partner/' + key}\nname: {key}\nstatus: {status}\nvariants:\n{variants}"


def assert_clean(r: Result, *, github: bool = False) -> None:
    text = r.all
    if github:
        # log records of the in-process moto server (caplog turns DEBUG on) may interleave
        lines = [ln for ln in r.err.splitlines() if not ln.startswith(("DEBUG ", "INFO "))]
        masks = [ln for ln in lines if ln.startswith("::add-mask::")]
        assert masks and lines[: len(masks)] == masks  # announced before anything else, on stderr
        assert CANARY not in r.out  # stdout (a PR comment, a JSON document) never carries a value
        text = r.out + "\n".join(ln for ln in lines if not ln.startswith("::add-mask::"))
    assert CANARY not in text, text
    assert "Traceback" not in text


@pytest.fixture
def setup(tmp_path: Path, aws, vault, pg_engine: sa.Engine):  # type: ignore[no-untyped-def]
    (tmp_path / "keyfile").write_text(VALUES["file"] + "\n")
    aws.put("partners/canary", {"api_key": VALUES["aws"]})
    vault.put("partners/canary", {"api_key": VALUES["vault"]})
    exp = tmp_path / "experiments"
    exp.mkdir()
    refs = {"env": "env:CANARY_KEY", "file": "file:keyfile", "aws": "aws-sm:partners/canary#api_key",
            "vault": "vault:secret/partners/canary#api_key"}
    for name, ref in refs.items():
        (exp / f"{name}.yaml").write_text(doc(f"canary-{name}", "active", ref))
    # the stores' own credentials: moto accepts any key pair; Vault gets a token with a canary id
    token = f"{CANARY}-vault-token-{uuid.uuid4().hex[:8]}"
    vault.client().auth.token.create(id=token, policies=["read-partners"], ttl="1h")
    creds = {"AWS_ACCESS_KEY_ID": f"AKIA{CANARY}KEYID", "AWS_SECRET_ACCESS_KEY": f"{CANARY}-aws-secret-access-key",
             "AWS_SESSION_TOKEN": f"{CANARY}-aws-session-token", "VAULT_TOKEN": token}
    # trust auth ignores the password, but libpq still takes it from the query string
    db_url = pg_engine.url.render_as_string(hide_password=False) + f"?password={CANARY}-db-password"
    # as in CI: CI=true, and the job's allowlist naming exactly these references
    allow = "env:CANARY_*, file:keyfile\naws-sm:partners/*, vault:secret/partners/*"
    env = {**aws.environ, **vault.environ(), **creds, "CANARY_KEY": VALUES["env"], "BYOK_ENCRYPTION_KEY": TEST_KEY_B64,
           "EXPSYNC_DATABASE_URL": db_url, "CI": "true", "EXPSYNC_SECRET_REFS": allow}
    return tmp_path, exp, env, aws, vault


def test_canaries_never_leak(setup, pg_engine: sa.Engine, caplog: pytest.LogCaptureFixture) -> None:  # type: ignore[no-untyped-def]
    tmp_path, exp, env, aws, vault = setup
    caplog.set_level(logging.DEBUG)
    for fmt in ("text", "json"):
        assert_clean(run_cli(["validate", "--format", fmt, str(exp)], env=env, cwd=tmp_path))
    for fmt in ("text", "json", "markdown"):
        r = run_cli(["--debug", "plan", "--format", fmt, "--out", str(tmp_path / f"plan-{fmt}.json"), str(exp)],
                    env=env, cwd=tmp_path)
        assert r.code == 0, r.all
        assert_clean(r)
        assert CANARY not in (tmp_path / f"plan-{fmt}.json").read_text()
    for fmt in ("markdown", "json"):
        gh = run_cli(["plan", "--format", fmt, str(exp)], env={**env, "GITHUB_ACTIONS": "true"}, cwd=tmp_path)
        assert_clean(gh, github=True)
        if fmt == "json":
            json.loads(gh.out)  # stdout is the JSON document alone
    r = run_cli(["--debug", "apply", "--yes", "--actor", "ci", str(exp)], env=env, cwd=tmp_path)
    assert r.code == 0, r.all
    assert_clean(r)

    # the keys are stored encrypted, decryptable by the gateway to exactly the canary values
    with pg_engine.connect() as c:
        tables = dump_tables(c)
        stored = [decrypt(row[0]) for row in c.execute(sa.text(
            "SELECT encrypted_api_key FROM model_experiment_variant_version"))]
    assert sorted(set(stored)) == sorted(VALUES.values())
    assert CANARY not in repr(tables)

    # rotate every value at its source, then plan (decrypt + compare) and apply again
    (tmp_path / "keyfile").write_text(VALUES["file"] + "-rotated\n")
    with caplog.at_level(logging.WARNING):  # the test's own admin calls are not expsync's logs
        aws.admin.put_secret_value(SecretId="partners/canary", SecretString='{"api_key": "%s-rotated"}' % VALUES["aws"])
        vault.put("partners/canary", {"api_key": VALUES["vault"] + "-rotated"})
    env2 = {**env, "CANARY_KEY": VALUES["env"] + "-rotated"}
    r = run_cli(["--debug", "plan", "--format", "json", str(exp)], env=env2, cwd=tmp_path)
    assert r.code == 0, r.all
    ops = json.loads(r.out)["operations"]
    assert [o["key_change"] for o in ops if o["type"] == "insert_version"] == ["rotated"] * 8
    assert_clean(r)
    r = run_cli(["apply", "--yes", str(exp)], env=env2, cwd=tmp_path)
    assert r.code == 0, r.all
    assert_clean(r)

    # a refused plan (active -> draft does not exist) with every secret resolved
    (exp / "env.yaml").write_text(doc("canary-env", "draft", "env:CANARY_KEY"))
    r = run_cli(["--debug", "plan", str(exp)], env=env2, cwd=tmp_path)
    assert r.code == 4
    assert_clean(r)
    r = run_cli(["--debug", "apply", "--yes", str(exp)], env=env2, cwd=tmp_path)
    assert r.code == 4
    assert_clean(r)

    with pg_engine.connect() as c:
        assert CANARY not in repr(dump_tables(c))
    assert CANARY not in caplog.text


def test_no_secrets_plan_needs_no_store_and_apply_always_resolves(setup) -> None:  # type: ignore[no-untyped-def]
    tmp_path, exp, env, aws, vault = setup
    bare = {"EXPSYNC_DATABASE_URL": env["EXPSYNC_DATABASE_URL"]}  # a fork PR: no secrets at all
    r = run_cli(["plan", "--no-secrets", str(exp)], env=bare, cwd=tmp_path)
    assert r.code == 0, r.all
    assert "W503" in r.all
    r = run_cli(["apply", "--yes", str(exp)], env=bare, cwd=tmp_path)
    assert r.code == 3 and "E402" in r.err and "E406" in r.err  # env missing, stores not configured
    assert_clean(r)


def test_store_credentials_never_leak_with_debug(setup) -> None:  # type: ignore[no-untyped-def]
    """botocore logs every request's headers at DEBUG, X-Amz-Security-Token included (dropped
    while secrets are fetched; the value is masked anyway); the Vault AppRole secret id and the
    token it yields are credentials too."""
    tmp_path, exp, env, aws, vault = setup
    r = run_cli(["--debug", "plan", "--format", "json", str(exp)], env=env, cwd=tmp_path)
    assert r.code == 0, r.all
    assert "BatchGetSecretValue" in r.err  # botocore logged the call at DEBUG
    assert "X-Amz-Security-Token" not in r.err and "Signature=" not in r.err  # but not its headers
    assert_clean(r)

    secret_id = f"{CANARY}-approle-secret-{uuid.uuid4().hex[:8]}"
    vault.client().auth.approle.create_custom_secret_id("expsync-ci", secret_id=secret_id)
    approle = {k: v for k, v in env.items() if k != "VAULT_TOKEN"} | {"VAULT_ROLE_ID": vault.role_id,
                                                                        "VAULT_SECRET_ID": secret_id}
    r = run_cli(["--debug", "plan", "--format", "json", str(exp)], env=approle | {"VAULT_TOKEN": None}, cwd=tmp_path)
    assert r.code == 0, r.all
    assert_clean(r)
    assert "auth/approle/login" in r.err  # the login happened, under --debug


def test_web_identity_credentials_never_leak_with_debug(setup) -> None:  # type: ignore[no-untyped-def]
    """Without keys in the environment boto3 assumes a role with a web identity token (GitHub
    OIDC, EKS IRSA, the default chain docs/secrets.md describes). The token buys the role's keys,
    the STS session token comes from a response (never known to the redactor), and a SigV4
    signature lets anyone replay the signed request (GetSecretValue: the secret) for minutes.
    botocore logs all three at DEBUG, in request dumps and signing details."""
    tmp_path, exp, env, aws, vault = setup
    jwt = f"eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJyZXBvOm9yZy9yZXBvIn0.{CANARY}-web-identity-token"
    (tmp_path / "oidc-token").write_text(jwt)
    web_identity = env | {
        "AWS_ACCESS_KEY_ID": None, "AWS_SECRET_ACCESS_KEY": None, "AWS_SESSION_TOKEN": None, "AWS_PROFILE": None,
        "AWS_CONFIG_FILE": str(tmp_path / "no-config"), "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-creds"),
        "AWS_ROLE_ARN": "arn:aws:iam::123456789012:role/expsync-ci",
        "AWS_WEB_IDENTITY_TOKEN_FILE": str(tmp_path / "oidc-token"), "AWS_ENDPOINT_URL_STS": aws.url,
    }
    r = run_cli(["--debug", "plan", "--format", "json", str(exp)], env=web_identity, cwd=tmp_path)
    assert r.code == 0, r.all
    assert "AssumeRoleWithWebIdentity" in r.err  # the role was assumed, under --debug
    assert_clean(r)
    assert "FQoGZXIvYXdzEBYaD" not in r.all  # moto's prefix of every STS session token
    assert "Signature=" not in r.all and "Signature:" not in r.all
