"""`expsync db init` through the CLI: creates what is missing, then is a no-op."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
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


def _pretend_a_newer_expsync_migrated(url: str) -> None:
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("UPDATE expsync_alembic_version SET version_num = '0099'"))
    finally:
        engine.dispose()


def test_db_init_on_tables_of_a_newer_expsync_is_a_clear_error(pg_url: str) -> None:
    assert run_cli(["db", "init"], env={"EXPSYNC_DATABASE_URL": pg_url}).code == 0
    _pretend_a_newer_expsync_migrated(pg_url)
    r = run_cli(["db", "init"], env={"EXPSYNC_DATABASE_URL": pg_url})
    assert r.code == 1, r.all
    assert "0099" in r.err and "newer expsync" in r.err and "unexpected" not in r.all


def test_embedded_default_migrated_by_a_newer_expsync_is_a_clear_error(tmp_path) -> None:  # type: ignore[no-untyped-def]
    assert run_cli(["history"], env={"EXPSYNC_DATABASE_URL": None}, cwd=tmp_path).code == 0
    _pretend_a_newer_expsync_migrated(f"sqlite:///{tmp_path / '.expsync' / 'expsync.db'}")
    for args in (["history"], ["plan", str(tmp_path)]):
        r = run_cli(args, env={"EXPSYNC_DATABASE_URL": None}, cwd=tmp_path)
        assert r.code == 1, r.all
        assert "0099" in r.err and "newer expsync" in r.err and "unexpected" not in r.all


@pytest.mark.parametrize("dropped", ["expsync_audit", "expsync_cache_outbox"])
def test_db_init_recreates_an_own_table_missing_at_the_newest_revision(pg_url: str, dropped: str, tmp_path: Path) -> None:
    # e.g. a partial restore: the version table says "migrated", one of the tables is gone
    env = {"EXPSYNC_DATABASE_URL": pg_url}
    assert run_cli(["db", "init"], env=env).code == 0
    engine = sa.create_engine(pg_url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(f"DROP TABLE {dropped}"))
    finally:
        engine.dispose()
    for args in (["history"], ["plan", "--no-secrets", str(tmp_path)]):
        r = run_cli(args, env=env)
        assert r.code == 1 and dropped in r.err and "expsync db init" in r.err and "unexpected" not in r.all, r.all
    r = run_cli(["db", "init"], env=env)
    assert r.code == 0 and f"created: {dropped}" in r.out, r.all
    assert run_cli(["history"], env=env).code == 0


def test_db_init_by_a_role_that_cannot_create_tables_says_so(pg_url: str) -> None:
    role = f"es_test_nocreate_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(pg_url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with admin.begin() as conn:
            conn.execute(sa.text(f"CREATE ROLE {role} LOGIN"))
            conn.execute(sa.text("REVOKE CREATE ON SCHEMA public FROM PUBLIC"))
        url = sa.make_url(pg_url).set(username=role).render_as_string(hide_password=False)
        r = run_cli(["db", "init"], env={"EXPSYNC_DATABASE_URL": url})
        assert r.code == 1, r.all
        assert "permission denied" in r.err and "CREATE" in r.err and "unexpected" not in r.all
        with admin.connect() as conn:
            assert sa.inspect(conn).get_table_names() == []
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f"DROP OWNED BY {role}"))
            conn.execute(sa.text(f"DROP ROLE {role}"))
        admin.dispose()
