"""Database URL handling, engine behaviour, init_db / migrations."""

from __future__ import annotations

import os
import stat
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from expsync.errors import ConfigError, DatabaseUnavailable
from expsync.state import db
from expsync.state.db import (
    DEFAULT_SQLITE_PATH,
    MIGRATIONS_DIR,
    OWN_VERSION_TABLE,
    begin,
    database_url,
    engine_from_environ,
    ensure_initialized,
    head_revision,
    init_db,
    make_engine,
    own_revision,
    safe_url,
)

ALL_CREATED = [
    "model_experiment",
    "model_experiment_variant",
    "model_experiment_variant_version",
    "expsync_managed",
    "expsync_cache_outbox",
    "expsync_audit",
    OWN_VERSION_TABLE,
]


# --------------------------------------------------------------------------------------
# URLs
# --------------------------------------------------------------------------------------


def test_default_url_is_embedded_sqlite_under_cwd(tmp_path: Path) -> None:
    assert database_url({}, cwd=tmp_path) == f"sqlite:///{tmp_path / DEFAULT_SQLITE_PATH}"
    assert database_url({"EXPSYNC_DATABASE_URL": "  "}, cwd=tmp_path).startswith("sqlite:///")


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgres://u:p@h:5432/d", "postgresql+psycopg://u:p@h:5432/d"),
        ("postgresql://u@h/d?sslmode=require", "postgresql+psycopg://u@h/d?sslmode=require"),
        ("postgresql+psycopg://u@h/d", "postgresql+psycopg://u@h/d"),
        ("sqlite:////tmp/x.db", "sqlite:////tmp/x.db"),
    ],
)
def test_url_from_environment_uses_psycopg3(given: str, expected: str) -> None:
    assert database_url({"EXPSYNC_DATABASE_URL": given}) == expected


def test_safe_url_masks_password() -> None:
    assert safe_url("postgresql+psycopg://user:s3cr3t@host/db") == "postgresql+psycopg://user:***@host/db"
    assert "s3cr3t" not in safe_url("not a url://user:s3cr3t@host")
    assert safe_url("sqlite:////tmp/x.db") == "sqlite:////tmp/x.db"


@pytest.mark.parametrize("url", ["nonsense", "mysql://u:pw@h/d"])
def test_bad_or_unsupported_url_is_a_config_error(url: str) -> None:
    with pytest.raises(ConfigError) as info:
        make_engine(url)
    assert "pw" not in str(info.value)


def test_unreachable_postgres_raises_database_unavailable_without_password() -> None:
    # Port 1 on loopback: nothing listens there, the connection is refused at once.
    engine = make_engine("postgresql+psycopg://u:hunter2@127.0.0.1:1/d")
    with pytest.raises(DatabaseUnavailable) as info, engine.connect():
        pass
    message = str(info.value)
    assert "hunter2" not in message
    assert "postgresql+psycopg://u:***@127.0.0.1:1/d" in message
    assert info.value.exit_code == 1


def test_unopenable_sqlite_raises_database_unavailable(tmp_path: Path) -> None:
    (tmp_path / "dir.db").mkdir()  # a directory cannot be opened as a database file
    engine = make_engine(f"sqlite:///{tmp_path / 'dir.db'}")
    with pytest.raises(DatabaseUnavailable), engine.connect() as conn:
        conn.exec_driver_sql("SELECT 1")


def test_sql_errors_are_not_reported_as_unavailable(sqlite_engine: sa.Engine) -> None:
    with pytest.raises(sa.exc.OperationalError), sqlite_engine.connect() as conn:
        conn.exec_driver_sql("SELECT * FROM no_such_table")


# --------------------------------------------------------------------------------------
# init_db and migrations
# --------------------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgres"])
def empty_url(request: pytest.FixtureRequest) -> str:
    url: str = request.getfixturevalue("pg_url" if request.param == "postgres" else "sqlite_url")
    return url


def test_init_db_creates_everything_then_nothing(empty_url: str) -> None:
    engine = make_engine(empty_url)
    try:
        assert init_db(engine) == ALL_CREATED
        assert init_db(engine) == []
        with engine.connect() as conn:
            assert own_revision(conn) == head_revision()
    finally:
        engine.dispose()


def test_init_db_leaves_host_alembic_version_alone(empty_url: str) -> None:
    engine = make_engine(empty_url)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL PRIMARY KEY)")
            conn.exec_driver_sql("INSERT INTO alembic_version (version_num) VALUES ('hostapp42')")
        init_db(engine)
        init_db(engine)
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalars().all() == ["hostapp42"]
            assert conn.exec_driver_sql(f"SELECT version_num FROM {OWN_VERSION_TABLE}").scalars().all() == [
                head_revision()
            ]
    finally:
        engine.dispose()


def test_init_db_keeps_existing_gateway_tables_and_rows(empty_url: str) -> None:
    engine = make_engine(empty_url)
    try:
        init_db(engine)
        with engine.begin() as conn:
            conn.exec_driver_sql(
                "INSERT INTO model_experiment (id, public_model_id, name) "
                "VALUES ('0b5e6f1c2d3e4f50a1b2c3d4e5f60718', 'p/x', 'kept')"
            )
            conn.exec_driver_sql(f"DROP TABLE {OWN_VERSION_TABLE}")
            conn.exec_driver_sql("DROP TABLE expsync_audit")
            conn.exec_driver_sql("DROP TABLE expsync_cache_outbox")
            conn.exec_driver_sql("DROP TABLE expsync_managed")
        assert init_db(engine) == ["expsync_managed", "expsync_cache_outbox", "expsync_audit", OWN_VERSION_TABLE]
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT name FROM model_experiment").scalars().all() == ["kept"]
    finally:
        engine.dispose()


def test_ensure_initialized_is_cheap_when_current(db_engine: sa.Engine, count_statements: Any) -> None:
    with count_statements(db_engine) as log:
        assert ensure_initialized(db_engine) == []
    assert all("CREATE" not in s.upper() for s in log.all)
    assert log.count <= 4


def test_ensure_initialized_without_app_tables_migrates_only_own_tables(pg_url: str) -> None:
    engine = make_engine(pg_url)
    try:
        created = ensure_initialized(engine, create_app_tables=False)
        assert created == ["expsync_managed", "expsync_cache_outbox", "expsync_audit", OWN_VERSION_TABLE]
        assert "model_experiment" not in sa.inspect(engine).get_table_names()
        assert ensure_initialized(engine, create_app_tables=False) == []
    finally:
        engine.dispose()


def test_concurrent_init_db_on_postgres_serializes(pg_url: str) -> None:
    engine = make_engine(pg_url)
    results: list[list[str]] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            results.append(init_db(engine))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    engine.dispose()
    assert errors == []
    assert sorted(results, key=len) == [[], [], ALL_CREATED]


def test_embedded_default_is_created_on_first_use(tmp_path: Path) -> None:
    engine = engine_from_environ({}, cwd=tmp_path)
    try:
        assert (tmp_path / DEFAULT_SQLITE_PATH).is_file()
        assert set(ALL_CREATED) <= set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


@pytest.mark.parametrize("folder", ["a?b", "c#d", "e%41f", "g h", "i%3Fj"])
def test_embedded_default_is_in_the_working_directory_whatever_its_name(tmp_path: Path, folder: str) -> None:
    # the path goes into a URL: a '?' must not end it (a file 'a' in the parent), nor a '%41'
    # be decoded into another folder ('eAf')
    cwd = tmp_path / folder
    cwd.mkdir()
    engine = engine_from_environ({}, cwd=cwd)
    try:
        assert Path(engine.url.database or "") == cwd / DEFAULT_SQLITE_PATH
        assert (cwd / DEFAULT_SQLITE_PATH).is_file()
        assert sorted(p.name for p in tmp_path.iterdir()) == [folder]
    finally:
        engine.dispose()


def test_embedded_default_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    # it holds encrypted api keys: no other user of the machine reads them (whatever the umask)
    old = os.umask(0o022)
    try:
        engine = engine_from_environ({}, cwd=tmp_path)
    finally:
        os.umask(old)
    try:
        with begin(engine) as conn:  # a write makes SQLite's journal too
            conn.execute(sa.text("DELETE FROM expsync_cache_outbox"))
        db_file = tmp_path / DEFAULT_SQLITE_PATH
        assert stat.S_IMODE(db_file.stat().st_mode) == 0o600
        assert stat.S_IMODE(db_file.parent.stat().st_mode) == 0o700
    finally:
        engine.dispose()


def test_explicit_url_is_not_initialised_implicitly(sqlite_url: str, tmp_path: Path) -> None:
    Path(sa.make_url(sqlite_url).database or "").touch()  # exists, but empty
    engine = engine_from_environ({"EXPSYNC_DATABASE_URL": sqlite_url}, cwd=tmp_path)
    try:
        assert sa.inspect(engine).get_table_names() == []
    finally:
        engine.dispose()


def test_migration_scripts_are_found_next_to_the_package() -> None:
    assert MIGRATIONS_DIR == Path(db.__file__).resolve().parent.parent / "migrations"
    assert (MIGRATIONS_DIR / "env.py").is_file()
    assert (MIGRATIONS_DIR / "script.py.mako").is_file()
    assert head_revision() == "0001"


# --------------------------------------------------------------------------------------
# Transactions
# --------------------------------------------------------------------------------------


def test_sqlite_enforces_foreign_keys(sqlite_engine: sa.Engine) -> None:
    with sqlite_engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar_one() == 1


def test_sqlite_transactions_roll_back_ddl_and_dml(sqlite_engine: sa.Engine) -> None:
    with pytest.raises(RuntimeError), begin(sqlite_engine) as conn:
        conn.exec_driver_sql("CREATE TABLE scratch (x INTEGER)")
        raise RuntimeError
    assert "scratch" not in sa.inspect(sqlite_engine).get_table_names()


def test_sqlite_immediate_transaction_takes_the_write_lock_at_begin(sqlite_url: str) -> None:
    first = make_engine(sqlite_url)
    second = make_engine(sqlite_url)
    try:
        with begin(first, immediate=True) as conn:
            conn.exec_driver_sql("SELECT 1")  # no write yet: the lock was taken by BEGIN IMMEDIATE
            started = time.monotonic()
            with pytest.raises(sa.exc.OperationalError, match="locked"):
                with begin(second, immediate=True, lock_timeout=0.2):
                    pass
            assert time.monotonic() - started < 5
        # released at commit
        with begin(second, immediate=True, lock_timeout=0.2):
            pass
    finally:
        first.dispose()
        second.dispose()


def test_sqlite_deferred_transactions_do_not_block_each_other(sqlite_url: str) -> None:
    first = make_engine(sqlite_url)
    second = make_engine(sqlite_url)
    try:
        with begin(first) as a, begin(second, lock_timeout=0.2) as b:
            a.exec_driver_sql("SELECT 1")
            b.exec_driver_sql("SELECT 1")
    finally:
        first.dispose()
        second.dispose()


def test_snapshot_transaction_is_repeatable_read_on_postgres(pg_engine: sa.Engine) -> None:
    with begin(pg_engine, snapshot=True) as conn:
        assert conn.exec_driver_sql("SHOW transaction_isolation").scalar_one() == "repeatable read"
    with begin(pg_engine) as conn:
        assert conn.exec_driver_sql("SHOW transaction_isolation").scalar_one() == "read committed"
