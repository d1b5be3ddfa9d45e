"""`apply --plan FILE` executes only what the file stands for: a file whose operations were
edited is refused (exit 5, E507), and so is a plan whose api key values changed since it was
made (exit 5, E508) - the values are bound by a keyed fingerprint, never stored."""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from expsync.crypto import api_keys_digest
from expsync.model import Secret, SecretRef
from tests.cli_helpers import run_cli
from tests.integration.apply_support import Repo, cli_env, experiment, variant
from tests.integration.gateway import dump_tables

V1, V2, V3 = "sk-rot-0001-first", "sk-rot-0002-second", "sk-rot-0003-third"


def snapshot(engine: sa.Engine) -> dict:
    with engine.connect() as c:
        return dump_tables(c)


@pytest.fixture
def applied(tmp_path: Path, pg_engine: sa.Engine) -> Repo:
    repo = Repo(tmp_path).put(experiment("foo", "partner/foo", "active",
                                         [variant("a", "foo-a", "env:KEY_A"), variant("b", "foo-b", "env:KEY_A")]))
    assert run_cli(["apply", "--yes", repo.path], env=cli_env(pg_engine, {"KEY_A": V1})).code == 0
    return repo


def test_edited_operations_with_the_digests_kept_are_refused(tmp_path: Path, pg_engine: sa.Engine,
                                                              applied: Repo) -> None:
    env = cli_env(pg_engine, {"KEY_A": V1})
    doc = applied.edit("foo")
    doc["variants"][0]["upstream"]["internal_id"] = "foo-a-v2"
    applied.put(doc)
    plan_file = tmp_path / "plan.json"
    assert run_cli(["plan", "--out", str(plan_file), applied.path], env=env).code == 0
    data = json.loads(plan_file.read_text(encoding="utf-8"))
    for op in [*data["operations"], *data["experiments"][0]["operations"]]:
        if op["type"] == "insert_version":  # what a reviewer of the file now sees
            op["upstream_after"]["internal_id"] = "foo-a-reviewed"
    plan_file.write_text(json.dumps(data, indent=2), encoding="utf-8")
    before = snapshot(pg_engine)
    r = run_cli(["apply", "--plan", str(plan_file), "--yes", applied.path], env=env)
    assert r.code == 5, r.all
    assert "E507" in r.err and "edited" in r.err and "Traceback" not in r.all
    assert snapshot(pg_engine) == before


def test_a_key_value_changed_after_plan_out_makes_the_plan_stale(tmp_path: Path, pg_engine: sa.Engine,
                                                                 applied: Repo) -> None:
    plan_file = tmp_path / "plan.json"
    r = run_cli(["plan", "--out", str(plan_file), applied.path], env=cli_env(pg_engine, {"KEY_A": V2}))
    assert r.code == 0 and "rotated" in r.out, r.all
    text = plan_file.read_text(encoding="utf-8")
    bound = json.loads(text)["digests"]["secrets"]
    assert bound.startswith("hmac-sha256:")
    for value in (V1, V2):  # neither the value nor an unkeyed hash of it is in the file
        assert value not in text and hashlib.sha256(value.encode()).hexdigest() not in text
        assert base64.b64encode(value.encode()).decode() not in text

    # the value changes again before apply: still "rotated", so only the binding can tell
    before = snapshot(pg_engine)
    r = run_cli(["apply", "--plan", str(plan_file), "--yes", applied.path], env=cli_env(pg_engine, {"KEY_A": V3}))
    assert r.code == 5, r.all
    assert "api key value" in r.err and "E508" in r.err and V3 not in r.all and V2 not in r.all
    assert snapshot(pg_engine) == before

    # with the value the plan was made with, the same file applies
    r = run_cli(["apply", "--plan", str(plan_file), "--yes", applied.path], env=cli_env(pg_engine, {"KEY_A": V2}))
    assert r.code == 0, r.all
    assert run_cli(["plan", "--detailed-exitcode", applied.path], env=cli_env(pg_engine, {"KEY_A": V2})).code == 0


def test_the_binding_is_keyed_by_the_byok_key_and_covers_each_value() -> None:
    vid, ref = uuid.UUID(int=7), SecretRef("env", "KEY_A")
    k1, k2 = bytes(range(32)), bytes(range(1, 33))

    def bound(value: str, key: bytes) -> str:
        return api_keys_digest([(vid, ref)], {ref: Secret(value)}, key)

    assert bound(V2, k1) == bound(V2, k1) != bound(V3, k1)
    assert bound(V2, k1) != bound(V2, k2)  # not a plain hash of the value
    assert api_keys_digest([], {}, k1) == ""
