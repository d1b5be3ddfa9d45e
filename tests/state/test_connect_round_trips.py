"""Connecting to Postgres: SQLAlchemy's first-connect questions cost one round trip after the
start-up packet, and the answers equal what SQLAlchemy finds out on its own."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from bench.pgwire import WireCounter
from expsync.pipeline import check_initialized, initialized_has_metadata
from expsync.state import db
from expsync.state.db import begin, has_metadata_column, make_engine, missing_tables, missing_tables_and_metadata


def test_first_connect_is_two_round_trips_with_the_same_dialect_values(pg_url: str) -> None:
    with WireCounter() as w:
        engine = make_engine(w.url(pg_url))
        try:
            with engine.connect():
                stats = w.stats()
        finally:
            engine.dispose()
    assert (stats["round_trips"], stats["executes"]) == (2, 1)  # start-up, one query; no BEGIN/ROLLBACK

    plain = sa.create_engine(pg_url)  # SQLAlchemy's own first connect, as reference
    try:
        with plain.connect():
            pass
        ours: object = engine.dialect
        ref: object = plain.dialect
        for attr in ("server_version_info", "default_schema_name", "default_isolation_level", "_backslash_escapes"):
            assert getattr(ours, attr) == getattr(ref, attr), attr
    finally:
        plain.dispose()


def test_catalogue_questions_need_no_transaction(pg_engine: sa.Engine) -> None:
    with WireCounter() as w:
        engine = make_engine(w.url(pg_engine.url.render_as_string(hide_password=False)))
        try:
            with engine.connect():
                pass
            before = w.stats()
            with begin(engine, snapshot=True) as conn:
                check_initialized(conn)
                assert missing_tables(conn, ["model_experiment", "no_such_table", "expsync_managed"]) == ["no_such_table"]
                assert has_metadata_column(conn) is False
                after = w.stats()
                conn.exec_driver_sql("SELECT 1")  # a transaction starts only now
                inside = w.stats()
                assert missing_tables(conn, ["nope"]) == ["nope"]  # inside the transaction: one round trip
                last = w.stats()
        finally:
            engine.dispose()
    # one round trip per question, no BEGIN/ROLLBACK around them, no ping of the pooled
    # connection checked out again right away
    assert (after["round_trips"] - before["round_trips"], after["executes"] - before["executes"]) == (3, 3)
    assert last["round_trips"] - inside["round_trips"] == 1


def test_missing_tables_is_the_same_on_both_backends(db_engine: sa.Engine) -> None:
    with begin(db_engine) as conn:
        assert missing_tables(conn, ["model_experiment", "expsync_managed"]) == []
        assert missing_tables(conn, ["nope", "model_experiment", "also_nope"]) == ["also_nope", "nope"]
        assert has_metadata_column(conn) is False
    from expsync.state.tables import add_metadata_column_ddl

    with begin(db_engine) as conn:
        conn.exec_driver_sql(add_metadata_column_ddl(db_engine.dialect.name))
    with begin(db_engine) as conn:
        assert has_metadata_column(conn) is True


def test_tables_and_metadata_column_in_one_question(db_engine: sa.Engine) -> None:
    with begin(db_engine) as conn:
        names = ["model_experiment", "no_such_table", "expsync_managed", "also_missing"]
        assert missing_tables_and_metadata(conn, names) == (missing_tables(conn, names), has_metadata_column(conn))
        assert missing_tables_and_metadata(conn, names)[0] == ["also_missing", "no_such_table"]


def test_detection_question_is_one_round_trip(pg_engine: sa.Engine) -> None:
    with WireCounter() as w:
        engine = make_engine(w.url(pg_engine.url.render_as_string(hide_password=False)))
        try:
            with engine.connect() as conn:
                before = w.stats()
                assert initialized_has_metadata(conn) is False
                after = w.stats()
        finally:
            engine.dispose()
    assert (after["round_trips"] - before["round_trips"], after["executes"] - before["executes"]) == (1, 1)


def test_reuse_is_pinged_after_a_commit_or_idle_time_only(pg_engine: sa.Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    with WireCounter() as w:
        engine = make_engine(w.url(pg_engine.url.render_as_string(hide_password=False)))
        try:
            def reuse_cost() -> int:
                before = w.stats()["round_trips"]
                with engine.connect():
                    pass  # checkout and checkin only
                return w.stats()["round_trips"] - before

            with engine.connect() as conn:
                conn.exec_driver_sql("SELECT 1")
                conn.rollback()
            assert reuse_cost() == 0  # reused at once after a read: no ping
            with engine.begin() as conn:
                conn.exec_driver_sql("SELECT 1")
            assert reuse_cost() == 1  # after a commit: pinged once
            assert reuse_cost() == 0
            monkeypatch.setattr(db, "IDLE_PING_SECONDS", -1.0)
            assert reuse_cost() == 1  # idle longer than the limit: pinged
            # a connection the server closed while idle is replaced, not an error
            with engine.connect() as conn:
                pid = conn.connection.driver_connection.info.backend_pid  # type: ignore[union-attr]
            with pg_engine.connect() as admin:
                admin.execute(sa.text("SELECT pg_terminate_backend(:p, 10000)"), {"p": pid})
            with engine.connect() as conn:
                assert conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one() != pid
        finally:
            engine.dispose()
