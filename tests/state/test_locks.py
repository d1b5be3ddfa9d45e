"""The advisory lock statement (``expsync.state.locks``): one statement sets the bounded wait,
takes the lock and (for the cache refresh) lifts the bound again; it is one round trip."""

from __future__ import annotations

import psycopg
import pytest
import sqlalchemy as sa
from sqlalchemy.exc import OperationalError

from bench.pgwire import WireCounter
from expsync.state.db import begin, make_engine
from expsync.state.locks import is_lock_timeout, xact_lock

KEY = 4242424242


def _held(conn: sa.Connection) -> int:
    return conn.execute(sa.text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
                                "AND pid = pg_backend_pid() AND ((classid::bigint << 32) | objid::bigint) = :k"),
                        {"k": KEY}).scalar_one()


@pytest.mark.parametrize("keep", [True, False])
def test_one_round_trip_takes_the_lock_and_sets_the_bound(pg_engine: sa.Engine, keep: bool) -> None:
    with WireCounter() as w:
        engine = make_engine(w.url(pg_engine.url.render_as_string(hide_password=False)))
        try:
            with begin(engine) as conn:
                conn.exec_driver_sql("SELECT 1")  # the transaction is open
                before = w.stats()
                row = xact_lock(conn, KEY, 0.25, keep_timeout=keep, columns=", 7 AS extra")
                after = w.stats()
                assert row[-1] == 7
                assert _held(conn) == 1
                assert conn.exec_driver_sql("SHOW lock_timeout").scalar_one() == ("250ms" if keep else "0")
            with engine.connect() as conn:  # transaction-local: gone with the transaction
                assert _held(conn) == 0
                assert conn.exec_driver_sql("SHOW lock_timeout").scalar_one() == "0"
        finally:
            engine.dispose()
    assert (after["round_trips"] - before["round_trips"], after["executes"] - before["executes"]) == (1, 1)


def test_a_held_lock_times_out_with_lock_not_available(pg_engine: sa.Engine) -> None:
    url = pg_engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(url, autocommit=True) as other:
        other.execute("SELECT pg_advisory_lock(%s)", (KEY,))
        with pytest.raises(OperationalError) as err, begin(pg_engine) as conn:
            xact_lock(conn, KEY, 0.1, keep_timeout=False)
        assert is_lock_timeout(err.value)
