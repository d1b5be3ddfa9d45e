"""`expsync db init` through the CLI: creates what is missing, then is a no-op."""

from __future__ import annotations

import sqlalchemy as sa

from tests.cli_helpers import run_cli


def test_db_init_creates_then_does_nothing(pg_url: str) -> None:
    r = run_cli(["db", "init"], env={"EXPSYNC_DATABASE_URL": pg_url})
    assert r.code == 0, r.all
    for t in ("model_experiment", "model_experiment_variant", "model_experiment_variant_version",
              "expsync_managed", "expsync_cache_outbox", "expsync_audit", "expsync_alembic_version"):
        assert t in r.out
    engine = sa.create_engine(pg_url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        assert {"model_experiment", "expsync_audit"} <= set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()
    again = run_cli(["db", "init"], env={"EXPSYNC_DATABASE_URL": pg_url})
    assert again.code == 0 and "nothing to do" in again.out


def test_db_init_unreachable_is_exit_1_without_password() -> None:
    r = run_cli(["db", "init"], env={"EXPSYNC_DATABASE_URL": "postgresql://u:s3cr3tpw@127.0.0.1:1/x"})
    assert r.code == 1 and "s3cr3tpw" not in r.all and "Traceback" not in r.all


def test_mistyped_sqlite_url_creates_nothing(tmp_path) -> None:  # type: ignore[no-untyped-def]
    target = tmp_path / "nx" / "deep" / "x.db"
    (tmp_path / "e").mkdir()
    r = run_cli(["plan", str(tmp_path / "e")], env={"EXPSYNC_DATABASE_URL": f"sqlite:///{target}"})
    assert r.code == 1 and "expsync db init" in r.err and "Traceback" not in r.all
    assert not (tmp_path / "nx").exists()
    assert run_cli(["db", "init"], env={"EXPSYNC_DATABASE_URL": f"sqlite:///{target}"}).code == 0
    assert target.is_file()
