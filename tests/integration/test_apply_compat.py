"""Compatibility with the gateway (spec §1.1, §2): what `expsync apply` writes is read back
with the gateway's own reader and cache formula (tests/integration/gateway.py), on Postgres
and Redis, through a sequence of applies (create, hot swap, rotation, relabel, pause, resume,
complete + archive, activation of a draft)."""

from __future__ import annotations

import base64
import json
import re
import uuid
from pathlib import Path
from typing import Any

import pytest
import redis
import sqlalchemy as sa

from tests.cli_helpers import run_cli
from tests.integration.apply_support import Repo, cli_env, experiment, upstream, variant
from tests.integration.gateway import BY_PUBLIC_ID, MEMBERSHIP, decrypt, expected_membership, gateway_routes

B64 = re.compile(r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$")
UNI = "partner/modèle"
OTHER = "partner/other"
LATER = "partner/later"


class Gateway:
    """Reads rows and cache keys the way the gateway does; no expsync code involved."""

    def __init__(self, engine: sa.Engine, client: redis.Redis, prefix: str) -> None:
        self.engine, self.redis, self.prefix = engine, client, prefix

    def experiment(self, public_model_id: str) -> Any:
        with self.engine.connect() as c:
            return c.execute(sa.text("SELECT * FROM model_experiment WHERE public_model_id = :p"),
                             {"p": public_model_id}).one()

    def variants(self, public_model_id: str) -> dict[str, Any]:
        with self.engine.connect() as c:
            rows = c.execute(sa.text(
                "SELECT v.* FROM model_experiment_variant v JOIN model_experiment e ON e.id = v.experiment_id "
                "WHERE e.public_model_id = :p"), {"p": public_model_id}).all()
        return {r.label: r for r in rows}

    def versions(self) -> dict[uuid.UUID, Any]:
        with self.engine.connect() as c:
            rows = c.execute(sa.text(
                "SELECT x.*, x.encrypted_api_key::text AS enc_text, v.label, e.public_model_id "
                "FROM model_experiment_variant_version x JOIN model_experiment_variant v ON v.id = x.variant_id "
                "JOIN model_experiment e ON e.id = v.experiment_id")).all()
        return {r.id: r for r in rows}

    def current(self, public_model_id: str, label: str) -> Any:
        mine = [r for r in self.versions().values() if r.public_model_id == public_model_id and r.label == label]
        return max(mine, key=lambda r: (r.effective_at, r.id))

    def routes(self, public_model_id: str) -> list[dict]:
        with self.engine.connect() as c:
            return gateway_routes(c, public_model_id)

    def membership(self) -> bytes | None:
        return self.redis.get(self.prefix + MEMBERSHIP)

    def recomputed(self) -> bytes:
        with self.engine.connect() as c:
            return expected_membership(c)

    def per_id(self, public_model_id: str) -> str:
        return self.prefix + BY_PUBLIC_ID + public_model_id


def assert_gateway_format(enc: dict[str, str], plaintext: str) -> None:
    assert set(enc) == {"iv", "data", "authTag"}
    for v in enc.values():
        assert B64.match(v), v
    assert len(base64.b64decode(enc["iv"], validate=True)) == 12
    assert len(base64.b64decode(enc["authTag"], validate=True)) == 16
    assert len(base64.b64decode(enc["data"], validate=True)) == len(plaintext.encode())
    assert decrypt(enc) == plaintext


@pytest.fixture
def gw(pg_engine: sa.Engine, redis_url: str, redis_prefix: str) -> Gateway:
    return Gateway(pg_engine, redis.Redis.from_url(redis_url), redis_prefix)


def test_rows_and_cache_match_what_the_gateway_reads(tmp_path: Path, pg_engine: sa.Engine, redis_url: str,
                                                    redis_prefix: str, gw: Gateway) -> None:
    secrets = {"KEY_A": "sk-a-ünï-0001", "KEY_B": "sk-b-0002"}
    repo = Repo(tmp_path).put(
        experiment("uni", UNI, "active", [
            variant("rc1", upstream("uni-rc1", extra_body={"temperature": 0.2, "nested": {"x": [1, None]}}),
                    "env:KEY_A", key="rc1"),
            variant("rc2", upstream("uni-rc2", remove_from_body=["top_k"]), "env:KEY_A", weight=3),
        ]),
        experiment("other", OTHER, "active", [variant("a", "other-a", "env:KEY_B"), variant("b", "other-b", "env:KEY_B")]),
        experiment("later", LATER, "draft", [variant("a", "later-a", "env:KEY_B"), variant("b", "later-b", "env:KEY_B")]),
    )

    def apply(*extra: str) -> None:
        env = cli_env(pg_engine, secrets, EXPSYNC_REDIS_URL=redis_url, EXPSYNC_REDIS_KEY_PREFIX=redis_prefix)
        r = run_cli(["apply", "--yes", *extra, repo.path], env=env)
        assert r.code == 0, r.all
        assert gw.membership() == gw.recomputed()
        assert gw.redis.ttl(redis_prefix + MEMBERSHIP) == -1
        assert run_cli(["plan", "--detailed-exitcode", repo.path], env=env).code == 0

    # stale per-id keys under the prefix, and keys of another tenant without it
    for pid in (UNI, OTHER):
        gw.redis.set(gw.per_id(pid), "stale")
    gw.redis.set(MEMBERSHIP, "other-tenant")
    gw.redis.set(BY_PUBLIC_ID + UNI, "other-tenant")

    # 1. create, as --actor alice
    apply("--actor", "alice")
    assert gw.membership() == json.dumps(sorted([UNI, OTHER]), separators=(",", ":"), ensure_ascii=False).encode()
    assert gw.membership() == '["partner/modèle","partner/other"]'.encode()
    assert gw.redis.exists(gw.per_id(UNI), gw.per_id(OTHER)) == 0
    assert gw.redis.get(MEMBERSHIP) == b"other-tenant" and gw.redis.get(BY_PUBLIC_ID + UNI) == b"other-tenant"
    routes = gw.routes(UNI)
    assert [(r["status"], r["label"], r["weight"], r["api_key"]) for r in sorted(routes, key=lambda r: r["label"])] == [
        ("active", "rc1", 1, secrets["KEY_A"]), ("active", "rc2", 3, secrets["KEY_A"])]
    assert {r["label"]: r["upstream"] for r in routes}["rc1"] == {
        "internal_id": "uni-rc1", "base_url": "https://api.partner.example/v1",
        "extra_body": {"temperature": 0.2, "nested": {"x": [1, None]}}}
    versions = gw.versions()
    assert len(versions) == 6
    for row in versions.values():
        assert_gateway_format(row.encrypted_api_key, secrets["KEY_A" if row.public_model_id == UNI else "KEY_B"])
        assert row.created_by == "alice"
    uni = gw.experiment(UNI)
    assert uni.created_by_user_id == "alice" and uni.status == "active" and not uni.is_archived
    assert uni.started_at is not None and uni.ended_at is None
    later = gw.experiment(LATER)
    assert later.status == "draft" and later.started_at is None and later.created_by_user_id == "alice"
    first_started = uni.started_at

    # 2. hot swap of uni/rc1 (no actor: NULL); the key is unchanged, so its JSON is copied verbatim
    for pid in (UNI, OTHER):
        gw.redis.set(gw.per_id(pid), "stale")
    before = gw.versions()
    old_rc1 = gw.current(UNI, "rc1")
    doc = repo.edit("uni")
    doc["variants"][0]["upstream"]["internal_id"] = "uni-rc1-hotfix"
    repo.put(doc)
    apply()
    after = gw.versions()
    assert {k: tuple(v) for k, v in before.items()} == {k: tuple(after[k]) for k in before}  # old rows untouched
    (new_id,) = set(after) - set(before)
    new = after[new_id]
    assert new.variant_id == old_rc1.variant_id and new.created_by is None
    assert new.upstream["internal_id"] == "uni-rc1-hotfix"
    assert new.encrypted_api_key == old_rc1.encrypted_api_key and new.enc_text == old_rc1.enc_text
    assert gw.current(UNI, "rc1").id == new_id
    assert {r["label"]: r["upstream"]["internal_id"] for r in gw.routes(UNI)}["rc1"] == "uni-rc1-hotfix"
    assert gw.redis.get(gw.per_id(UNI)) is None
    assert gw.redis.get(gw.per_id(OTHER)) == b"stale"  # its routing data did not change

    # 3. rotation of other's key: encrypted afresh
    old_a = gw.current(OTHER, "a")
    secrets["KEY_B"] = "sk-b-rotated-0003"
    apply()
    new_a = gw.current(OTHER, "a")
    assert new_a.id != old_a.id and new_a.upstream == old_a.upstream
    assert new_a.encrypted_api_key["iv"] != old_a.encrypted_api_key["iv"]
    assert_gateway_format(new_a.encrypted_api_key, "sk-b-rotated-0003")
    assert {r["api_key"] for r in gw.routes(OTHER)} == {"sk-b-rotated-0003"}
    assert gw.redis.get(gw.per_id(OTHER)) is None

    # 4. rename + relabel: updated_at moves on the rows that changed, only those
    exp_before, vars_before = gw.experiment(UNI), gw.variants(UNI)
    other_before = gw.experiment(OTHER)
    doc = repo.edit("uni")
    doc["name"] = "Modèle renamed"
    doc["variants"][0]["label"] = "rc1 (hotfix)"
    repo.put(doc)
    apply()
    exp_after, vars_after = gw.experiment(UNI), gw.variants(UNI)
    assert exp_after.name == "Modèle renamed" and exp_after.updated_at > exp_before.updated_at
    assert exp_after.created_at == exp_before.created_at and exp_after.started_at == first_started
    assert vars_after["rc1 (hotfix)"].id == vars_before["rc1"].id
    assert vars_after["rc1 (hotfix)"].updated_at > vars_before["rc1"].updated_at
    assert vars_after["rc2"].updated_at == vars_before["rc2"].updated_at
    assert gw.experiment(OTHER).updated_at == other_before.updated_at

    # 5. pause: still a member (requests are refused, not routed elsewhere); started_at kept
    doc["status"] = "paused"
    repo.put(doc)
    gw.redis.set(gw.per_id(UNI), "stale")
    apply()
    paused = gw.experiment(UNI)
    assert paused.status == "paused" and paused.started_at == first_started and paused.updated_at > exp_after.updated_at
    assert UNI in json.loads(gw.membership()) and gw.redis.get(gw.per_id(UNI)) is None

    # 6. re-activate: started_at is still the first activation's
    doc["status"] = "active"
    repo.put(doc)
    apply()
    assert gw.experiment(UNI).started_at == first_started and gw.experiment(UNI).ended_at is None

    # 7. complete + archive: ended_at set, no longer a member
    doc["status"], doc["archived"] = "completed", True
    repo.put(doc)
    apply()
    done = gw.experiment(UNI)
    assert done.status == "completed" and done.is_archived and done.ended_at is not None
    assert done.started_at == first_started and done.ended_at >= done.started_at
    assert gw.routes(UNI) == []

    # 8. the draft's first activation sets started_at
    doc = repo.edit("later")
    doc["status"] = "active"
    repo.put(doc)
    apply()
    later = gw.experiment(LATER)
    assert later.status == "active" and later.started_at is not None and later.started_at > first_started
    assert gw.membership() == '["partner/later","partner/other"]'.encode()
    assert gw.redis.get(MEMBERSHIP) == b"other-tenant"
