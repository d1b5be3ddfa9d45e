"""The bare psycopg connection ``plan`` reads through on Postgres: it connects as the engine
does (same psycopg arguments), reads what a SQLAlchemy connection reads, and spends fewer round
trips (counted on the wire)."""

from __future__ import annotations

import psycopg
import pytest
import sqlalchemy as sa

from bench.pgwire import WireCounter
from expsync.errors import DatabaseUnavailable
from expsync.pipeline import REQUIRED_TABLES, NotInitialized, initialized_has_metadata
from expsync.state import connection
from expsync.state.connection import PgConnection, connect, connect_kwargs
from expsync.state.db import begin, make_engine
from expsync.state.reader import read_actual, read_state
from tests.state.test_reader import NOW, _seed_many

URLS = [
    "postgresql+psycopg://postgres@127.0.0.1:5432/db",
    "postgresql+psycopg://u%40x:p%2Fw%3A@db.example:6543/my%20db?sslmode=require&application_name=other",
    "postgresql+psycopg://[::1]:5432/db?connect_timeout=3&options=-c%20search_path%3Dx",
    "postgresql+psycopg:///db?password=secret",
    "postgresql+psycopg://",
    "postgresql+psycopg://host/db?target_session_attrs=any&keepalives=1",
]


@pytest.mark.parametrize("url", URLS)
def test_connect_arguments_are_the_engines(url: str) -> None:
    """What psycopg.connect gets from :func:`connect_kwargs` equals what the engine gives it:
    its dialect's reading of the URL, then make_engine's ``connect_args``."""
    engine = make_engine(url, create=False)
    try:
        cargs, cparams = engine.dialect.create_connect_args(engine.url)
    finally:
        engine.dispose()
    cparams.pop("context", None)  # the engine's adapters map (its JSON decoder): set per connection here
    expected = cparams | dict(connection.CONNECT_ARGS)
    expected.setdefault("connect_timeout", connection.CONNECT_TIMEOUT)
    assert cargs in ([], [""])
    assert connect_kwargs(url) == expected


@pytest.mark.parametrize("url", [
    "postgresql+psycopg2://h/db", "sqlite:///x.db", "postgresql+psycopg://h/db?host=a:1&host=b:2",
    "postgresql+psycopg://h/db?host=a,b&port=1,2", "postgresql+psycopg://h:x1/db",
    "postgresql+psycopg://h/db?sslmode=a&sslmode=b", "postgresql+psycopg://h/db?autocommit=false", "not a url",
    "postgresql+psycopg://h:/db",
])
def test_urls_only_sqlalchemy_reads_alike_are_left_to_the_engine(url: str) -> None:
    assert connect_kwargs(url) is None


def test_connect_costs_the_startup_only_and_reads_like_sqlalchemy(pg_engine: sa.Engine) -> None:
    ids, pids = _seed_many(pg_engine, 12, prefix="pgc")
    url = pg_engine.url.render_as_string(hide_password=False)
    with begin(pg_engine, snapshot=True) as c:
        via_engine = read_actual(c, experiment_ids=ids[:8], public_model_ids=pids[8:], now=NOW)
    with WireCounter() as w:
        conn = connect(w.url(url))
        assert isinstance(conn, PgConnection)
        try:
            started = w.stats()
            assert initialized_has_metadata(conn) is False
            asked = w.stats()
            with conn.snapshot():
                clock, state = read_state(conn, experiment_ids=ids[:8], public_model_ids=pids[8:], now=NOW,
                                          required_tables=REQUIRED_TABLES)
            read = w.stats()
            assert initialized_has_metadata(conn) is False  # the snapshot's ROLLBACK goes with it
            after = w.stats()
        finally:
            conn.close()
    assert (started["round_trips"], started["executes"]) == (1, 0)  # the start-up packet: no dialect questions
    assert (asked["round_trips"] - started["round_trips"], asked["executes"] - started["executes"]) == (1, 1)
    # BEGIN, table check, now(), the four reads: one round trip
    assert (read["round_trips"] - asked["round_trips"], read["executes"] - asked["executes"]) == (1, 7)
    assert (after["round_trips"] - read["round_trips"], after["executes"] - read["executes"]) == (1, 2)
    assert state == via_engine and len(state.experiments) == 12
    assert clock == NOW


def test_a_table_missing_in_the_snapshot_is_not_initialized(pg_engine: sa.Engine) -> None:
    """The table check travels with the reads; when a table is gone the reads fail too, and the
    check's answer is what is raised."""
    with pg_engine.begin() as c:
        c.exec_driver_sql("DROP TABLE expsync_managed")
    conn = connect(pg_engine.url.render_as_string(hide_password=False))
    assert conn is not None
    try:
        with conn.snapshot(), pytest.raises(NotInitialized, match="expsync_managed"):
            read_state(conn, experiment_ids=[], public_model_ids=[], now=None, required_tables=REQUIRED_TABLES)
        with conn.snapshot(), pytest.raises(psycopg.errors.UndefinedTable):  # unchecked: the driver's own error
            read_state(conn, experiment_ids=[], public_model_ids=[], now=None)
    finally:
        conn.close()


def test_the_snapshot_writes_nothing(pg_engine: sa.Engine) -> None:
    conn = connect(pg_engine.url.render_as_string(hide_password=False))
    assert conn is not None
    try:
        with conn.snapshot(), pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            connection.batch(conn, [("DELETE FROM expsync_managed", None)])
    finally:
        conn.close()


def test_cannot_connect_is_database_unavailable_without_the_password() -> None:
    with pytest.raises(DatabaseUnavailable) as caught:
        connect("postgresql+psycopg://postgres:CANARY-pw@127.0.0.1:1/db?connect_timeout=2")
    assert "cannot reach the database at" in str(caught.value) and "CANARY-pw" not in str(caught.value)
    assert "127.0.0.1" in str(caught.value)


def _terminate(pg_url: str, pid: int) -> None:
    with psycopg.connect(pg_url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as admin:
        assert admin.execute("SELECT pg_terminate_backend(%s, 10000)", (pid,)).fetchone() == (True,)


def test_a_transaction_sends_begin_with_its_first_statement_and_commits(pg_engine: sa.Engine) -> None:
    url = pg_engine.url.render_as_string(hide_password=False)
    db = connect(url)
    assert db is not None
    try:
        with WireCounter() as w:
            proxied = connect(w.url(url))
            assert proxied is not None
            with proxied.transaction() as conn:
                [done] = connection.run_text(conn, [("CREATE TABLE t_tx (x int)", {})])
            proxied.close()
            # start-up; BEGIN with the statement; COMMIT
            assert (w.stats()["round_trips"], w.stats()["executes"]) == (3, 3), w.stats()
        assert connection.ask(db, "SELECT count(*) FROM t_tx") == [(0,)]  # committed
        with pytest.raises(RuntimeError), db.transaction() as conn:
            connection.run_text(conn, [("INSERT INTO t_tx VALUES (1)", {})])
            raise RuntimeError("boom")
        assert connection.ask(db, "SELECT count(*) FROM t_tx") == [(0,)]  # rolled back
    finally:
        db.close()


def test_a_connection_lost_at_commit_says_the_outcome_is_unknown(pg_engine: sa.Engine) -> None:
    url = pg_engine.url.render_as_string(hide_password=False)
    db = connect(url)
    assert db is not None
    try:
        with pytest.raises(DatabaseUnavailable, match="may or may not have been committed") as err, \
                db.transaction() as conn:
            connection.run_text(conn, [("SELECT 1", {})])
            _terminate(url, db.raw.info.backend_pid)
        assert "Traceback" not in str(err.value)
    finally:
        db.close()
