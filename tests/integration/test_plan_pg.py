"""`expsync plan` against a real Postgres seeded the way the gateway's admin API writes rows
(random ids, keys encrypted with the spec's test-vector key, a future-dated version)."""

from __future__ import annotations

import base64
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import jsonschema
import pytest
import sqlalchemy as sa

from tests.cli_helpers import run_cli
from tests.integration.gateway import TEST_KEY_B64, admin_add_variant, admin_add_version, admin_create_experiment, dump_tables

BASE = "https://api.partner.example/v1"
KEY_A = "sk-test-123"
KEY_B_NEW = "sk-live-CANARY-rotated-0042"


@pytest.fixture
def legacy(pg_engine: sa.Engine) -> dict:
    """An active experiment made in the admin UI; variant b has a future-dated version."""
    with pg_engine.begin() as conn:
        eid = admin_create_experiment(conn, "partner/legacy", "Legacy UI experiment", status="active")
        a = admin_add_variant(conn, eid, "a", 1)
        b = admin_add_variant(conn, eid, "b", 1)
        admin_add_version(conn, a, {"internal_id": "legacy-a", "base_url": BASE}, KEY_A)
        admin_add_version(conn, b, {"internal_id": "legacy-b", "base_url": BASE}, KEY_A)
        admin_add_version(conn, b, {"internal_id": "legacy-b-next", "base_url": BASE}, KEY_A,
                          effective_at=datetime.now(timezone.utc) + timedelta(days=1))
    return {"id": eid, "a": a, "b": b}


def env(pg_engine: sa.Engine, **extra: str) -> dict[str, str]:
    return {"EXPSYNC_DATABASE_URL": pg_engine.url.render_as_string(hide_password=False),
            "BYOK_ENCRYPTION_KEY": TEST_KEY_B64, "KEY_A": KEY_A, "KEY_B": KEY_A, **extra}


def experiment(key: str, pid: str, status: str, variants: list[tuple], exp_id: object = None) -> str:
    lines = ([f"id: {exp_id}"] if exp_id else []) + [f"key: {key}", f"public_model_id: {pid}", f"name: {key}",
                                                      f"status: {status}", "variants:"]
    for label, internal_id, ref, vid in variants:
        lines += [f"  - label: {label}"] + ([f"    id: {vid}"] if vid else []) + [
            "    weight: 1", "    upstream:", f"      internal_id: {internal_id}", f"      base_url: {BASE}",
            f"    api_key: {ref}"]
    return "\n".join(lines) + "\n"


def write(tmp_path: Path, *docs: str) -> Path:
    d = tmp_path / "experiments"
    d.mkdir(exist_ok=True)
    (d / "all.yaml").write_text("---\n".join(docs))
    return d


def test_plan_creates_and_writes_nothing(tmp_path: Path, pg_engine: sa.Engine, legacy: dict) -> None:
    d = write(tmp_path, experiment("foo", "partner/preview-foo", "active", [("rc1", "foo-1", "env:KEY_A", None),
                                                                            ("rc2", "foo-2", "env:KEY_A", None)]))
    with pg_engine.connect() as c:
        before = dump_tables(c)
    r = run_cli(["plan", str(d)], env=env(pg_engine))
    assert r.code == 0, r.all
    assert "partner/preview-foo starts routing to this experiment" in r.out
    assert "(new) -> draft -> active" in r.out
    r2 = run_cli(["plan", "--detailed-exitcode", str(d)], env=env(pg_engine))
    assert r2.code == 2
    rj = run_cli(["plan", "--format", "json", str(d)], env=env(pg_engine))
    plan = json.loads(rj.out)
    assert plan["has_changes"] and plan["applyable"] and not plan["refused"]
    schema = json.loads((Path(__file__).resolve().parents[2] / "schemas" / "plan.schema.json").read_text())
    jsonschema.Draft7Validator(schema).validate(plan)
    with pg_engine.connect() as c:
        assert dump_tables(c) == before


def test_plan_adopts_hot_swaps_and_rotates_without_printing_keys(tmp_path: Path, pg_engine: sa.Engine, legacy: dict) -> None:
    e = env(pg_engine, KEY_B=KEY_B_NEW)
    outs = []
    for a_internal_id, a_ref, want in (("legacy-a-v2", "env:KEY_A", "unchanged"), ("legacy-a", "env:KEY_B", "rotated")):
        d = write(tmp_path, experiment("legacy", "partner/legacy", "active", [
            ("a", a_internal_id, a_ref, legacy["a"]),             # a hot swap with the same key, or a rotation
            ("b", "legacy-b-next", "env:KEY_A", legacy["b"]),     # what b's pending version holds: nothing to do
        ], exp_id=legacy["id"]))
        r = run_cli(["plan", "--format", "json", str(d)], env=e)
        assert r.code == 0, r.all
        plan = json.loads(r.out)
        [op] = [o for o in plan["operations"] if o["type"] == "insert_version"]
        assert op["label"] == "a" and op["key_change"] == want
        changes = [(c["path"], c["before"], c["after"]) for c in op["upstream_diff"]]
        assert changes == ([("internal_id", "legacy-a", "legacy-a-v2")] if want == "unchanged" else [])
        assert any(x["code"] == "W502" for x in plan["diagnostics"])  # b has a future-dated version
        outs += [r.all, run_cli(["plan", str(d)], env=e).all]
    for out in outs:
        assert KEY_A not in out and KEY_B_NEW not in out and "CANARY" not in out


def test_plan_refuses_activation_while_an_unmanaged_experiment_routes(tmp_path: Path, pg_engine: sa.Engine, legacy: dict) -> None:
    d = write(tmp_path, experiment("takeover", "partner/legacy", "active", [("x", "m1", "env:KEY_A", None),
                                                                            ("y", "m2", "env:KEY_A", None)]))
    r = run_cli(["plan", str(d)], env=env(pg_engine))
    assert r.code == 4, r.all
    assert "E310" in r.all and "Legacy UI experiment" in r.all and "not managed by expsync" in r.all
    rj = run_cli(["plan", "--format", "json", str(d)], env=env(pg_engine))
    assert rj.code == 4 and json.loads(rj.out)["refused"] is True


def test_plan_without_secrets(tmp_path: Path, pg_engine: sa.Engine, legacy: dict) -> None:
    d = write(tmp_path, experiment("legacy", "partner/legacy", "active", [
        ("a", "legacy-a-v2", "env:KEY_A", legacy["a"]), ("b", "legacy-b-next", "env:KEY_B", legacy["b"])],
        exp_id=legacy["id"]))
    e = {"EXPSYNC_DATABASE_URL": env(pg_engine)["EXPSYNC_DATABASE_URL"]}  # no keys, no BYOK
    r = run_cli(["plan", "--no-secrets", "--format", "json", str(d)], env=e)
    assert r.code == 0, r.all
    plan = json.loads(r.out)
    assert plan["applyable"] is False
    assert {o["key_change"] for o in plan["operations"] if o["type"] == "insert_version"} == {"unknown"}


def test_plan_needs_byok_to_compare_keys(tmp_path: Path, pg_engine: sa.Engine, legacy: dict) -> None:
    d = write(tmp_path, experiment("legacy", "partner/legacy", "active", [
        ("a", "legacy-a", "env:KEY_A", legacy["a"]), ("b", "legacy-b-next", "env:KEY_B", legacy["b"])],
        exp_id=legacy["id"]))
    e = env(pg_engine)
    del e["BYOK_ENCRYPTION_KEY"]
    r = run_cli(["plan", str(d)], env=e)
    assert r.code == 3 and "BYOK_ENCRYPTION_KEY" in r.err and "openssl rand -base64 32" in r.err
    e["BYOK_ENCRYPTION_KEY"] = base64.b64encode(b"\x08" * 32).decode()  # a valid key, but not the one used
    r = run_cli(["plan", str(d)], env=e)
    assert r.code == 3 and "E407" in r.err and "Traceback" not in r.all


def test_plan_unresolvable_secret_is_invalid_input(tmp_path: Path, pg_engine: sa.Engine) -> None:
    d = write(tmp_path, experiment("foo", "partner/foo", "draft", [("rc1", "m", "env:MISSING_VAR", None)]))
    r = run_cli(["plan", str(d)], env=env(pg_engine))
    assert r.code == 3 and "E402" in r.err and "all.yaml:" in r.err


def test_plan_on_uninitialised_postgres_is_a_clear_error(tmp_path: Path, pg_url: str) -> None:
    d = write(tmp_path, experiment("foo", "partner/foo", "draft", [("rc1", "m", "env:KEY_A", None)]))
    r = run_cli(["plan", str(d)], env={"EXPSYNC_DATABASE_URL": pg_url, "KEY_A": KEY_A})
    assert r.code == 1 and "expsync db init" in r.err and "Traceback" not in r.all


def test_unreachable_database(tmp_path: Path) -> None:
    d = write(tmp_path, experiment("foo", "partner/foo", "draft", [("rc1", "m", "env:KEY_A", None)]))
    r = run_cli(["plan", str(d)], env={"EXPSYNC_DATABASE_URL": "postgresql://u:hunter2secret@127.0.0.1:1/x", "KEY_A": KEY_A})
    assert r.code == 1 and "hunter2secret" not in r.all and "Traceback" not in r.all
    assert "127.0.0.1:1" in r.err


def _versions(engine: sa.Engine, variant: object) -> list[str]:
    with engine.connect() as c:
        return list(c.execute(sa.text(
            "SELECT upstream->>'internal_id' FROM model_experiment_variant_version WHERE variant_id = :v "
            "ORDER BY effective_at"), {"v": variant}).scalars())


@pytest.mark.parametrize("change", ["upstream", "key"])
def test_no_new_version_under_a_future_dated_one(tmp_path: Path, pg_engine: sa.Engine, legacy: dict,
                                                  change: str) -> None:
    """A version written now would route only until b's future-dated version takes effect (the
    newest effective_at wins, versions are insert-only), and every later apply would write
    another: refused (E313), nothing written. Equal to the pending version, b needs none."""
    b_next = "legacy-b-next" if change == "key" else "legacy-b-2"
    d = write(tmp_path, experiment("legacy", "partner/legacy", "active", [
        ("a", "legacy-a", "env:KEY_A", legacy["a"]), ("b", b_next, "env:KEY_B", legacy["b"])], exp_id=legacy["id"]))
    e = env(pg_engine, KEY_B=KEY_B_NEW)
    before = _versions(pg_engine, legacy["b"])
    for _ in range(2):
        r = run_cli(["apply", "--yes", str(d)], env=e)
        assert r.code == 4 and "E313" in r.all and KEY_B_NEW not in r.all, r.all
    assert _versions(pg_engine, legacy["b"]) == before
    # the YAML of the pending version adopts it, and stays in sync
    d = write(tmp_path, experiment("legacy", "partner/legacy", "active", [
        ("a", "legacy-a", "env:KEY_A", legacy["a"]), ("b", "legacy-b-next", "env:KEY_B", legacy["b"])],
        exp_id=legacy["id"]))
    assert run_cli(["apply", "--yes", str(d)], env=env(pg_engine)).code == 0
    assert run_cli(["plan", "--detailed-exitcode", str(d)], env=env(pg_engine)).code == 0
    assert _versions(pg_engine, legacy["b"]) == before
