"""Gateway profiles against a real database: `db init` creates the profile's tables, plan and
apply detect the profile (or refuse an impossible one), import reads what today's admin API
writes, and the membership value is sorted the way the gateway sorts it."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest
import redis
import sqlalchemy as sa
import yaml

from expsync.cache.refresh import drain, enqueue, membership_json
from expsync.state.db import has_metadata_column, make_engine
from expsync.state.reader import read_actual
from tests.cli_helpers import run_cli
from tests.profiles.helpers import ONLY_05
from tests.integration.gateway import TEST_KEY_B64, admin_add_variant, admin_add_version, admin_create_experiment

BASE = "https://api.partner.example/v1"
KEY = "sk-live-CANARY-profiles-0606"



def imported_env_names(text: str) -> set[str]:
    return {ln.split("env:", 1)[1].strip() for ln in text.splitlines() if "api_key: env:" in ln}


def url_of(engine: sa.Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


def env(engine: sa.Engine, **extra: str) -> dict[str, str | None]:
    return {"EXPSYNC_DATABASE_URL": url_of(engine), "BYOK_ENCRYPTION_KEY": TEST_KEY_B64,
            "EXPSYNC_GATEWAY_PROFILE": None, "EXPSYNC_REDIS_URL": None, **extra}




@pytest.fixture
def repo(tmp_path: Path) -> Path:
    (tmp_path / ".git").mkdir()
    (tmp_path / "experiments").mkdir()
    (tmp_path / "experiments" / "foo.yaml").write_text(ONLY_05)
    return tmp_path


@pytest.mark.parametrize(("args", "column"), [
    (["--gateway-profile", "2026-06"], True),
    (["--gateway-profile", "2026-05"], False),
    ([], True),  # nothing configured: the newest profile, said on stderr
])
def test_db_init_creates_the_profiles_tables(pg_url: str, tmp_path: Path, args: list[str], column: bool) -> None:
    (tmp_path / ".git").mkdir()
    r = run_cli(["db", "init", *args], env={"EXPSYNC_DATABASE_URL": pg_url, "EXPSYNC_GATEWAY_PROFILE": None},
                cwd=tmp_path)
    assert r.code == 0, r.all
    assert ("gateway profile 2026-06 (no profile configured" in r.err) is (not args)
    engine = make_engine(pg_url)
    try:
        with engine.connect() as conn:
            assert has_metadata_column(conn) is column
            if column:
                cols = {c["name"]: c for c in sa.inspect(conn).get_columns("model_experiment")}
                assert cols["metadata"]["nullable"] and cols["metadata"]["default"] is None
                assert str(cols["metadata"]["type"]).upper() == "JSONB"
    finally:
        engine.dispose()


def test_db_init_never_alters_an_existing_gateway_table(pg_engine: sa.Engine, tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    r = run_cli(["db", "init", "--gateway-profile", "2026-06"], env=env(pg_engine), cwd=tmp_path)
    assert r.code == 0
    with pg_engine.connect() as conn:
        assert not has_metadata_column(conn)  # the gateway's migrations own its tables


def test_embedded_default_gets_the_profiles_tables(repo: Path) -> None:
    (repo / "expsync.toml").write_text('gateway_profile = "2026-05"\n')
    r = run_cli(["plan", "--no-secrets"], env={"EXPSYNC_DATABASE_URL": None, "EXPSYNC_GATEWAY_PROFILE": None},
                cwd=repo)
    assert r.code == 0, r.all
    engine = make_engine(f"sqlite:///{repo / '.expsync' / 'expsync.db'}")
    try:
        with engine.connect() as conn:
            assert not has_metadata_column(conn)
    finally:
        engine.dispose()


def test_explicit_2026_06_on_a_database_without_metadata_exits_3(pg_engine: sa.Engine, repo: Path) -> None:
    (repo / "experiments" / "foo.yaml").write_text(ONLY_05.replace(
        "      opencode_settings: {ai_sdk_provider: anthropic}\n", ""))
    before = _dump(pg_engine)
    for cmd in (["plan"], ["apply", "--yes"]):
        r = run_cli([*cmd, "--gateway-profile", "2026-06"], env=env(pg_engine, K="sk-x"), cwd=repo)
        assert r.code == 3, r.all
        assert "gateway profile 2026-06 (--gateway-profile) needs the column model_experiment.metadata" in r.err
        assert "Traceback" not in r.all
    assert _dump(pg_engine) == before


def test_plan_detects_2026_05_and_says_so(pg_engine: sa.Engine, repo: Path) -> None:
    r = run_cli(["plan", "--format", "json"], env=env(pg_engine, K="sk-x"), cwd=repo)
    assert r.code == 0, r.all
    assert "gateway profile 2026-05 (detected from the database: model_experiment.metadata absent)" in r.err
    assert json.loads(r.out)  # stdout stays the plan alone


def test_plan_detects_2026_06_and_the_moved_field_is_explained(pg_2026_06: sa.Engine, repo: Path) -> None:
    r = run_cli(["plan"], env=env(pg_2026_06, K="sk-x"), cwd=repo)
    assert r.code == 3
    assert "detected from the database: model_experiment.metadata present" in r.err
    assert "E140" in r.err and "metadata.opencode_settings" in r.err


def test_import_reads_what_todays_admin_api_writes(pg_2026_06: sa.Engine, tmp_path: Path) -> None:
    md = {"context_length": 1048576, "max_completion_tokens": 65536, "supports_image_input": True,
          "opencode_settings": {"ai_sdk_provider": "mistral", "family": "mistral",
                                "variants": {"fast": {"reasoning": {"enabled": False}}}}}
    up = {"internal_id": "m1", "base_url": BASE, "extra_headers": {"x-partner-tier": "gold"},
          "remove_cache_breakpoints": True}
    with pg_2026_06.begin() as c:
        eid = admin_create_experiment(c, "partner/today", "Today", status="active")
        c.execute(sa.text("UPDATE model_experiment SET metadata = CAST(:m AS jsonb) WHERE id = :i"),
                  {"m": json.dumps(md), "i": eid})
        admin_add_version(c, admin_add_variant(c, eid, "a", 1), up, KEY)
        admin_add_version(c, admin_add_variant(c, eid, "b", 1), {"internal_id": "m2", "base_url": BASE}, KEY)
    (tmp_path / ".git").mkdir()
    out = tmp_path / "experiments"
    r = run_cli(["import", "--all", "--out-dir", str(out)], env=env(pg_2026_06), cwd=tmp_path)
    assert r.code == 0, r.all
    assert "gateway profile 2026-06 (detected" in r.err and "CANARY" not in r.all
    (f,) = out.glob("*.yaml")
    text = f.read_text()
    assert text.startswith("# yaml-language-server: $schema=../schemas/experiment-2026-06.schema.json")
    doc = yaml.safe_load(text)
    assert doc["metadata"] == md and up in [v["upstream"] for v in doc["variants"]]
    assert run_cli(["validate", "--gateway-profile", "2026-06", str(out)], cwd=tmp_path).code == 0
    # adopting it changes nothing but bookkeeping: metadata and the new upstream fields compare equal
    var = next(iter(imported_env_names(text)))
    p = run_cli(["plan", "--format", "json", str(out)], env=env(pg_2026_06, **{var: KEY}), cwd=tmp_path)
    assert p.code == 0, p.all
    assert {o["type"] for o in json.loads(p.out)["operations"]} == {"record_managed"}


def test_import_leaves_out_upstream_fields_2026_06_routing_ignores(pg_2026_06: sa.Engine, tmp_path: Path) -> None:
    with pg_2026_06.begin() as c:
        eid = admin_create_experiment(c, "partner/legacy", "Legacy", status="completed", archived=True)
        admin_add_version(c, admin_add_variant(c, eid, "a", 1),
                          {"internal_id": "m", "base_url": BASE, "opencode_settings": {"ai_sdk_provider": "openai"}},
                          KEY)
    (tmp_path / ".git").mkdir()
    out = tmp_path / "experiments"
    r = run_cli(["import", "--all", "--out-dir", str(out)], env=env(pg_2026_06), cwd=tmp_path)
    assert r.code == 0, r.all
    (f,) = out.glob("*.yaml")
    assert "Left out of upstreams (gateway profile 2026-06 has no such field" in f.read_text()
    assert "opencode_settings" not in yaml.safe_load(f.read_text())["variants"][0]["upstream"]


def test_import_under_2026_05_keeps_the_strict_upstream(pg_engine: sa.Engine, tmp_path: Path) -> None:
    up = {"internal_id": "m", "base_url": BASE, "openclaw_settings": {"api_adapter": "openai-responses"}}
    with pg_engine.begin() as c:
        eid = admin_create_experiment(c, "partner/old", "Old", status="draft")
        admin_add_version(c, admin_add_variant(c, eid, "a", 1), up, KEY)
    (tmp_path / ".git").mkdir()
    out = tmp_path / "experiments"
    assert run_cli(["import", "--all", "--out-dir", str(out)], env=env(pg_engine), cwd=tmp_path).code == 0
    (f,) = out.glob("*.yaml")
    assert yaml.safe_load(f.read_text())["variants"][0]["upstream"] == up and "metadata" not in f.read_text()


def test_reader_reads_metadata_in_the_same_statements(pg_2026_06: sa.Engine, count_statements) -> None:  # type: ignore[no-untyped-def]
    with pg_2026_06.begin() as c:
        eid = admin_create_experiment(c, "partner/md", "Md")
        c.execute(sa.text("UPDATE model_experiment SET metadata = '{\"context_length\": 1.5, "
                          "\"max_completion_tokens\": -3}' WHERE id = :i"), {"i": eid})
    counts, found = [], []
    for with_metadata in (False, True):
        with count_statements(pg_2026_06) as log, pg_2026_06.connect() as conn:
            actual = read_actual(conn, experiment_ids=[eid], public_model_ids=(), now=datetime.now(timezone.utc),
                                 with_metadata=with_metadata)
        counts.append(log.count)
        found.append(actual.experiments[eid].metadata)
    assert counts[0] == counts[1]  # no extra statement for the column
    assert found == [None, {"context_length": 1.5, "max_completion_tokens": -3}]


# --------------------------------------------------------------------------------------
# membership order (sheet §6)
# --------------------------------------------------------------------------------------


def test_membership_is_sorted_by_utf16_code_units() -> None:
    pair = ["rg-ｆｕｌｌ", "rg-😀"]
    assert sorted(pair) == ["rg-ｆｕｌｌ", "rg-😀"]  # code point order: what the gateway does NOT do
    assert membership_json(pair) == '["rg-😀","rg-ｆｕｌｌ"]'
    assert membership_json(reversed(pair)) == membership_json(pair)
    assert membership_json(["b", "a", "b"]) == '["a","b"]' and membership_json([]) == "[]"


def test_refresh_writes_the_gateways_bytes(pg_engine: sa.Engine, redis_url: str, redis_prefix: str) -> None:
    with pg_engine.begin() as c:
        for pid in ("rg-ｆｕｌｌ", "rg-😀", "partner/a"):
            admin_create_experiment(c, pid, pid, status="active")
        enqueue(c, ["x"])
    client = redis.Redis.from_url(redis_url)
    result = drain(pg_engine, client, prefix=redis_prefix)
    expected = '["partner/a","rg-😀","rg-ｆｕｌｌ"]'
    assert result.membership == expected
    assert client.get(f"{redis_prefix}ai-gateway.model-experiments:experimented-public-ids") == expected.encode()


def _dump(engine: sa.Engine) -> list[tuple[str, int]]:
    with engine.connect() as conn:
        return [(t, conn.execute(sa.text(f'SELECT count(*) FROM "{t}"')).scalar_one())
                for t in ("model_experiment", "expsync_managed", "expsync_audit")]


def test_settings_2026_06_routing_ignores_make_no_new_version(pg_2026_06: sa.Engine, tmp_path: Path) -> None:
    # a completed + archived row from the seed era still carries opencode_settings: import
    # leaves it out, and the plan adopts it (no new version, which a completed row refuses)
    with pg_2026_06.begin() as c:
        eid = admin_create_experiment(c, "partner/legacy", "Legacy", status="completed", archived=True)
        for label in ("a", "b"):
            admin_add_version(c, admin_add_variant(c, eid, label, 1),
                              {"internal_id": "m", "base_url": BASE, "opencode_settings": {"ai_sdk_provider": "openai"}},
                              KEY)
    (tmp_path / ".git").mkdir()
    out = tmp_path / "experiments"
    assert run_cli(["import", "--all", "--out-dir", str(out)], env=env(pg_2026_06), cwd=tmp_path).code == 0
    p = run_cli(["plan", "--format", "json", str(out)], env=env(pg_2026_06), cwd=tmp_path)
    assert p.code == 0, p.all
    assert {o["type"] for o in json.loads(p.out)["operations"]} == {"record_managed"}
    # under the strict seed-era routing the same stored field is a real difference
    p = run_cli(["plan", "--format", "json", "--gateway-profile", "2026-05", str(out)], env=env(pg_2026_06),
                cwd=tmp_path)
    assert p.code == 4 and "E305" in p.out
