"""`expsync import`: admin-UI rows -> YAML with id pins -> the next plan only adopts them."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
import yaml

from tests.cli_helpers import run_cli
from tests.integration.gateway import TEST_KEY_B64, admin_add_variant, admin_add_version, admin_create_experiment

BASE = "https://api.partner.example/v1"
KEY = "sk-live-CANARY-import-0451"


def seed(engine: sa.Engine) -> dict:
    with engine.begin() as c:
        live = admin_create_experiment(c, "partner/legacy", "Legacy UI Bake-off!", status="active")
        a, b = admin_add_variant(c, live, "rc 1", 1), admin_add_variant(c, live, "rc-2", 3)
        admin_add_version(c, a, {"internal_id": "m1", "base_url": BASE, "extra_body": {"t": 0.2}}, KEY)
        admin_add_version(c, b, {"internal_id": "m2", "base_url": BASE}, KEY)
        old = admin_create_experiment(c, "partner/old", "Old one", status="completed", archived=True)
        v = admin_add_variant(c, old, "only", 1)
        admin_add_version(c, v, {"internal_id": "m0", "base_url": BASE}, KEY)
    return {"live": live, "old": old}


def env(engine: sa.Engine, **extra: str) -> dict[str, str]:
    return {"EXPSYNC_DATABASE_URL": engine.url.render_as_string(hide_password=False),
            "BYOK_ENCRYPTION_KEY": TEST_KEY_B64, **extra}


def test_import_then_plan_only_adopts(tmp_path: Path, pg_engine: sa.Engine) -> None:
    ids = seed(pg_engine)
    out = tmp_path / "experiments"
    r = run_cli(["import", "--all", "--out-dir", str(out)], env=env(pg_engine))
    assert r.code == 0, r.all
    assert KEY not in r.all and "CANARY" not in r.all
    files = sorted(out.glob("*.yaml"))
    assert [f.name for f in files] == ["legacy-ui-bake-off.yaml", "old-one.yaml"]
    text = files[0].read_text()
    assert "CANARY" not in text and text.startswith("# yaml-language-server: $schema=")
    doc = yaml.safe_load(text)
    assert doc["id"] == str(ids["live"]) and doc["status"] == "active" and all("id" in v for v in doc["variants"])
    # equal stored keys share one variable
    assert {v["api_key"] for v in doc["variants"]} == {"env:LEGACY_UI_BAKE_OFF_PARTNER_API_KEY"}
    assert run_cli(["validate", str(out)]).code == 0
    # before apply the rows are still unmanaged, but pinned by YAML in the folder: not written twice
    twice = run_cli(["import", "--all", "--out-dir", str(out)], env=env(pg_engine))
    assert twice.code == 0 and "nothing to import" in twice.out and len(list(out.glob("*.yaml"))) == 2
    e = env(pg_engine, LEGACY_UI_BAKE_OFF_PARTNER_API_KEY=KEY)
    p = run_cli(["plan", "--format", "json", str(out)], env=e)
    assert p.code == 0, p.all
    import json

    plan = json.loads(p.out)
    assert {o["type"] for o in plan["operations"]} == {"record_managed"}  # adoption only
    assert run_cli(["apply", "--yes", str(out)], env=e).code == 0
    assert run_cli(["plan", "--detailed-exitcode", str(out)], env=e).code == 0
    # managed rows are not imported again
    again = run_cli(["import", "--all", "--out-dir", str(tmp_path / "again")], env=env(pg_engine))
    assert again.code == 0 and "nothing to import" in again.out


def test_import_refuses_to_overwrite_and_checks_arguments(tmp_path: Path, pg_engine: sa.Engine) -> None:
    ids = seed(pg_engine)
    out = tmp_path / "experiments"
    out.mkdir()
    (out / "mine.yaml").write_text("# an engineer's file\n")
    r = run_cli(["import", "--id", str(ids["live"]), "--key", "mine", "--out-dir", str(out)], env=env(pg_engine))
    assert r.code == 3 and "nothing was overwritten" in r.err
    assert (out / "mine.yaml").read_text() == "# an engineer's file\n"
    assert run_cli(["import"], env=env(pg_engine)).code == 3
    assert run_cli(["import", "--all", "--key", "x"], env=env(pg_engine)).code == 3
    r = run_cli(["import", "--public-model-id", "partner/old", "--out-dir", str(out)], env={
        "EXPSYNC_DATABASE_URL": env(pg_engine)["EXPSYNC_DATABASE_URL"]})  # no BYOK: one variable per variant
    assert r.code == 0, r.all
    doc = yaml.safe_load((out / "old-one.yaml").read_text())
    assert doc["archived"] is True and doc["variants"][0]["api_key"] == "env:OLD_ONE_ONLY_API_KEY"


def test_import_writes_references_the_allowlist_accepts(tmp_path: Path, pg_engine: sa.Engine) -> None:
    seed(pg_engine)
    # an explicit template
    out = tmp_path / "explicit"
    r = run_cli(["import", "--all", "--out-dir", str(out), "--key-ref-template", "env:PARTNER_{KEY}_KEY"],
                env=env(pg_engine))
    assert r.code == 0, r.all
    doc = yaml.safe_load((out / "legacy-ui-bake-off.yaml").read_text())
    assert {v["api_key"] for v in doc["variants"]} == {"env:PARTNER_LEGACY_UI_BAKE_OFF_KEY"}
    # derived from EXPSYNC_SECRET_REFS: what import writes, validate accepts under that allowlist
    allow = {"EXPSYNC_SECRET_REFS": "vault:secret/partners/*, aws-sm:partners/*"}
    out = tmp_path / "derived"
    r = run_cli(["import", "--all", "--out-dir", str(out)], env=env(pg_engine, **allow))
    assert r.code == 0, r.all
    doc = yaml.safe_load((out / "legacy-ui-bake-off.yaml").read_text())
    assert {v["api_key"] for v in doc["variants"]} == {"aws-sm:partners/legacy-ui-bake-off"}
    assert run_cli(["validate", str(out)], env=allow).code == 0
    # a template the policy refuses is a configuration error, and nothing is written
    for bad in ("env:EXPSYNC_{KEY}", "env:FIXED_NAME", "env:{KEY}-x", "file:/etc/{key}"):
        out = tmp_path / "bad"
        r = run_cli(["import", "--all", "--out-dir", str(out), "--key-ref-template", bad], env=env(pg_engine))
        assert r.code == 3 and not out.exists(), (bad, r.all)


def test_single_variant_experiment_from_the_admin_ui_is_imported_and_adopted(tmp_path: Path, pg_engine: sa.Engine) -> None:
    """The gateway activates one-variant experiments; their imported YAML validates and is adopted."""
    import json

    with pg_engine.begin() as c:
        solo = admin_create_experiment(c, "partner/solo", "Solo rollout", status="active")
        admin_add_version(c, admin_add_variant(c, solo, "only", 1), {"internal_id": "m1", "base_url": BASE}, KEY)
    out = tmp_path / "experiments"
    assert run_cli(["import", "--all", "--out-dir", str(out)], env=env(pg_engine)).code == 0
    v = run_cli(["validate", "--format", "json", str(out)])
    assert v.code == 0 and [d["code"] for d in json.loads(v.out)["diagnostics"]] == ["W301"]
    e = env(pg_engine, SOLO_ROLLOUT_PARTNER_API_KEY=KEY)
    p = run_cli(["plan", "--format", "json", str(out)], env=e)
    assert p.code == 0, p.all
    plan = json.loads(p.out)
    assert {o["type"] for o in plan["operations"]} == {"record_managed"} and not plan["refused"]
    assert plan["experiments"][0]["shares_before"] == [{"label": "only", "weight": 1, "percent": 100.0,
                                                         "buckets": 2**32}]


def _import_validate_plan(engine: sa.Engine, tmp_path: Path) -> tuple[dict, dict]:
    """Import every unmanaged row, validate the files, and plan them with every variable set."""
    import json

    out = tmp_path / "experiments"
    r = run_cli(["import", "--all", "--out-dir", str(out)], env=env(engine))
    assert r.code == 0, r.all
    (f,) = out.glob("*.yaml")
    doc = yaml.safe_load(f.read_text())
    v = run_cli(["validate", "--format", "json", str(out)])
    assert v.code == 0, v.all
    names = {var["api_key"].removeprefix("env:") for var in doc["variants"]}
    p = run_cli(["plan", "--format", "json", str(out)], env=env(engine, **dict.fromkeys(names, KEY)))
    assert p.code == 0, p.all
    return doc, json.loads(p.out)


def test_texts_that_read_as_numbers_in_yaml_1_2_are_imported_quoted(tmp_path: Path, pg_engine: sa.Engine) -> None:
    """'2e-1' or '1.5e3' is text to PyYAML's dumper (YAML 1.1), which writes it plain; expsync's
    loader refuses such a plain scalar as ambiguous (E113, E121 as a key). import quotes it."""
    up = {"internal_id": "7e1", "base_url": BASE, "extra_body": {"1e5": "1.5e3", "n": 2}, "remove_from_body": ["3E2"]}
    with pg_engine.begin() as c:
        eid = admin_create_experiment(c, "partner/2e-1", "Exp 1e3", status="active")
        admin_add_version(c, admin_add_variant(c, eid, "2e-1", 1), up, KEY)
    doc, plan = _import_validate_plan(pg_engine, tmp_path)
    assert doc["variants"][0]["label"] == "2e-1" and doc["variants"][0]["upstream"] == up
    assert doc["public_model_id"] == "partner/2e-1"
    assert {o["type"] for o in plan["operations"]} == {"record_managed"}


def test_names_starting_with_a_digit_get_env_variables_a_shell_can_set(tmp_path: Path, pg_engine: sa.Engine) -> None:
    """An env: name must start with a letter or _ (refs and every shell); the key may start with a digit."""
    with pg_engine.begin() as c:
        eid = admin_create_experiment(c, "partner/q3", "2025 Q3 bake-off", status="active")
        admin_add_version(c, admin_add_variant(c, eid, "a", 1), {"internal_id": "m", "base_url": BASE}, KEY)
    doc, plan = _import_validate_plan(pg_engine, tmp_path)
    assert doc["key"] == "2025-q3-bake-off"
    assert doc["variants"][0]["api_key"] == "env:EXP_2025_Q3_BAKE_OFF_PARTNER_API_KEY"
    assert {o["type"] for o in plan["operations"]} == {"record_managed"}


def test_a_number_beyond_a_double_in_the_database_is_refused_not_written(tmp_path: Path, pg_engine: sa.Engine) -> None:
    """An integer of 400 digits another writer stored (the gateway's JSON.parse reads Infinity)
    cannot be written as YAML expsync's loader accepts (E122): import refuses, exit 3, naming
    the experiment, variant and path, and writes no file (it used to write one validate refused)."""
    big = 10**400
    with pg_engine.begin() as c:
        eid = admin_create_experiment(c, "partner/huge", "Huge number", status="paused")
        admin_add_version(c, admin_add_variant(c, eid, "ok", 1), {"internal_id": "m", "base_url": BASE}, KEY)
        admin_add_version(c, admin_add_variant(c, eid, "big", 1),
                          {"internal_id": "m", "base_url": BASE, "extra_body": {"n": [1, big]}}, KEY)
    out = tmp_path / "experiments"
    r = run_cli(["import", "--all", "--out-dir", str(out)], env=env(pg_engine))
    assert r.code == 3, r.all
    assert f"experiment {eid}, variant 'big': upstream.extra_body.n[1]" in r.err and "[E122]" in r.err, r.err
    assert not out.exists() or not list(out.iterdir())
