"""One definition of a credential-looking name, used to refuse literals in the upstream JSON and
credentials in base_url, and to mask every URL expsync shows (database and Redis alike)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa

from expsync.credentials import is_credential_name
from expsync.errors import DatabaseUnavailable
from expsync.state.db import make_engine, safe_url
from expsync.urls import mask_url, url_secrets
from tests.cli_helpers import run_cli
from tests.integration.apply_support import Repo, cli_env, experiment, upstream, variant

CANARY = "CANARYpw7q"


@pytest.mark.parametrize("name", [
    "api_key", "apiKey", "API-KEY", "apikey", "x-api-key", "X-Api-Key", "authorization", "Authorization", "token",
    "access_token", "refreshToken", "password", "passwd", "secret", "client_secret", "subscription-key", "auth",
    "x-auth-token", "sig", "signature", "X-Amz-Security-Token", "sslpassword", "partnerApiKey", "bearer", "cookie",
    "oauth_consumer_key", "authtoken", "clientsecret", "jwt", "X-Amz-Credential",
])
def test_credential_names(name: str) -> None:
    assert is_credential_name(name)


@pytest.mark.parametrize("name", [
    "max_tokens", "max_completion_tokens", "cache_key", "author", "temperature", "keywords", "monkey", "top_k",
    "sslmode", "application_name", "connect_timeout", "reasoning", "user", "stop", "prompt_prefix",
])
def test_ordinary_names(name: str) -> None:
    assert not is_credential_name(name)


def _validate(tmp_path: Path, up: dict[str, object]) -> list[dict[str, object]]:
    repo = Repo(tmp_path).put(experiment("foo", "partner/foo", "draft", [variant("a", up, "env:PARTNER_KEY")]))
    r = run_cli(["validate", "--format", "json", repo.path])
    assert CANARY not in r.all
    diags: list[dict[str, object]] = json.loads(r.out)["diagnostics"]
    return diags


@pytest.mark.parametrize(("extra", "path"), [
    ({"api_key": f"sk-{CANARY}"}, "extra_body.api_key"),
    ({"apiKey": f"sk-{CANARY}"}, "extra_body.apiKey"),
    ({"headers": {"Authorization": f"Bearer {CANARY}"}}, "extra_body.headers.Authorization"),
    ({"auth": {"type": "basic", "password": f"{CANARY}"}}, "extra_body.auth.password"),
    ({"tools": [{"x-api-key": f"{CANARY}"}]}, "extra_body.tools[0].x-api-key"),
    ({"access_token": 123456789}, "extra_body.access_token"),
])
def test_credential_literal_anywhere_in_upstream_is_e411(tmp_path: Path, extra: dict[str, object], path: str) -> None:
    diags = _validate(tmp_path, upstream("m-a", extra_body=extra))
    e411 = [d for d in diags if d["code"] == "E411"]
    assert len(e411) == 1, diags
    assert e411[0]["path"] == f"variants[0].upstream.{path}" and isinstance(e411[0]["line"], int)


@pytest.mark.parametrize("header", ["Authorization", "X-Api-Key", "api-key", "Proxy-Authorization", "Cookie"])
def test_credential_headers_in_extra_headers_are_e411(tmp_path: Path, header: str) -> None:
    diags = _validate(tmp_path, upstream("m-a", extra_headers={"X-Trace": "on", header: f"Bearer {CANARY}"}))
    assert [(d["code"], d["path"]) for d in diags] == [("E411", f"variants[0].upstream.extra_headers.{header}")]


def test_ordinary_upstream_fields_pass(tmp_path: Path) -> None:
    extra = {"max_tokens": 100, "cache_key": "conversation", "token_budget": {"enabled": True}, "api_key": "",
             "password": None, "reasoning": {"effort": "high"}}
    assert _validate(tmp_path, upstream("m-a", extra_body=extra, remove_from_body=["api_key", "authorization"])) == []


@pytest.mark.parametrize("query", ["?api_key=x", "?apiKey=x", "?access_token=x", "?sig=x", "?X-Amz-Signature=x",
                                   "?subscription-key=x"])
def test_base_url_credentials_use_the_same_definition(tmp_path: Path, query: str) -> None:
    diags = _validate(tmp_path, upstream("m-a", base_url="https://api.partner.example/v1" + query))
    assert [d["code"] for d in diags] == ["E114"]


# URLs -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("url", "shown"), [
    (f"postgresql://app:{CANARY}@db.internal:5432/gw", "postgresql://app:***@db.internal:5432/gw"),
    (f"postgresql://app@db.internal/gw?password={CANARY}&sslmode=require",
     "postgresql://app@db.internal/gw?password=***&sslmode=require"),
    (f"postgresql://db.internal/gw?sslmode=verify-full&sslpassword={CANARY}",
     "postgresql://db.internal/gw?sslmode=verify-full&sslpassword=***"),
    (f"postgresql+psycopg://u:{CANARY}@h/d?password={CANARY}2", "postgresql+psycopg://u:***@h/d?password=***"),
    (f"redis://:{CANARY}@cache.internal:6379/0", "redis://:***@cache.internal:6379/0"),
    (f"rediss://default:{CANARY}@cache.internal:6380/0?token={CANARY}", "rediss://default:***@cache.internal:6380/0?token=***"),
    (f"redis://cache.internal:6379/0?password={CANARY}", "redis://cache.internal:6379/0?password=***"),
    (f"postgresql://u:p/{CANARY}@h/d", "postgresql://***@h/d"),  # an unescaped '/' in a password
    ("postgresql://u@h:5432/d?sslmode=require", "postgresql://u@h:5432/d?sslmode=require"),
])
def test_mask_url(url: str, shown: str) -> None:
    assert mask_url(url) == shown
    if url.startswith("postgres"):
        assert safe_url(url) == shown
    if CANARY in url:
        assert url_secrets(url) and all(CANARY in v for v in url_secrets(url))
    else:
        assert url_secrets(url) == []


def test_safe_url_masks_a_sqlalchemy_url_object() -> None:
    url = sa.make_url(f"postgresql+psycopg://app:{CANARY}@db/gw?password={CANARY}")
    assert CANARY not in safe_url(url)


@pytest.mark.parametrize("form", ["query", "userinfo", "sslpassword"])
def test_cannot_reach_database_message_masks_every_password(tmp_path: Path, form: str) -> None:
    port = 1  # nothing listens there
    url = {
        "query": f"postgresql://postgres@127.0.0.1:{port}/gw?password={CANARY}",
        "userinfo": f"postgresql://postgres:{CANARY}@127.0.0.1:{port}/gw",
        "sslpassword": f"postgresql://postgres@127.0.0.1:{port}/gw?sslpassword={CANARY}",
    }[form]
    with pytest.raises(DatabaseUnavailable) as caught:  # the message itself, before any redactor
        with make_engine(url, create=False).connect():
            pass
    assert "127.0.0.1" in str(caught.value) and CANARY not in str(caught.value)
    repo = Repo(tmp_path).put(experiment("foo", "partner/foo", "draft", [variant("a", "m-a", "env:PARTNER_KEY")]))
    env = {"EXPSYNC_DATABASE_URL": url, "PARTNER_KEY": "sk-partner-0001", "BYOK_ENCRYPTION_KEY": None,
           "EXPSYNC_REDIS_URL": None}
    for args in (["plan", repo.path], ["--debug", "plan", repo.path], ["db", "init"]):
        r = run_cli(args, env=env, cwd=tmp_path)
        assert r.code == 1 and "cannot reach the database" in r.err, r.all
        assert "127.0.0.1" in r.err and CANARY not in r.all


def test_redis_url_credentials_never_shown(tmp_path: Path, pg_engine: sa.Engine) -> None:
    """A Redis that cannot be reached after an apply: the refresh stays pending (exit 6) and no
    part of the URL's password is printed, with --debug on."""
    repo = Repo(tmp_path).put(experiment("foo", "partner/foo", "active", [
        variant("a", "m-a", "env:PARTNER_KEY"), variant("b", "m-b", "env:PARTNER_KEY")]))
    env = cli_env(pg_engine, {"PARTNER_KEY": "sk-partner-0001"},
                  EXPSYNC_REDIS_URL=f"redis://default:{CANARY}@127.0.0.1:1/0?password={CANARY}x")
    r = run_cli(["--debug", "apply", "--yes", repo.path], env=env, cwd=tmp_path)
    assert r.code == 6, r.all
    assert CANARY not in r.all


def test_store_addresses_are_named_by_origin_only() -> None:
    from expsync.urls import origin

    assert origin(f"https://ci:{CANARY}@vault.internal:8200/v1?token={CANARY}") == "https://vault.internal:8200"
    assert origin("https://vault.internal:99999") == "https://vault.internal"
    assert origin("not a url") is None
