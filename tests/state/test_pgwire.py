"""The wire counter the round-trip tests and benchmarks rely on (bench/pgwire.py)."""

from __future__ import annotations

import select
import time

import psycopg

from bench.pgwire import WireCounter


def test_counts_round_trips_and_executions(pg_url: str) -> None:
    dsn = pg_url.replace("postgresql+psycopg://", "postgresql://")
    with WireCounter() as w:
        with psycopg.connect(w.url(dsn), autocommit=True) as conn:
            assert w.stats()["round_trips"] == 1  # the start-up packet
            for i in range(3):
                conn.execute("SELECT %s::int", (i,)).fetchall()
            seq = w.stats()
            with conn.pipeline():
                curs = [conn.execute("SELECT %s::int", (i,)) for i in range(50)]
            assert [c.fetchone() for c in curs] == [(i,) for i in range(50)]
            piped = w.stats()
            conn.execute("SELECT 1; SELECT 2")  # one simple Query message
            simple = w.stats()
    assert (seq["round_trips"], seq["executes"]) == (1 + 3, 3)
    assert (piped["round_trips"] - seq["round_trips"], piped["executes"] - seq["executes"]) == (1, 50)
    assert (simple["round_trips"] - piped["round_trips"], simple["queries"] - piped["queries"]) == (1, 1)
    assert w.stats()["connections"] == 1


def test_a_flush_after_the_answer_is_not_a_round_trip(pg_url: str) -> None:
    """psycopg's pipeline exit sends Sync, then a Flush while results are unread; when the server
    answered the whole batch (ReadyForQuery) before that Flush went out (a loaded machine), the
    Flush must not count as a second round trip: nothing answers it."""
    dsn = pg_url.replace("postgresql+psycopg://", "postgresql://")
    with WireCounter() as w:
        with psycopg.connect(w.url(dsn), autocommit=True) as conn:
            conn.execute("SELECT 1").fetchall()
            before = w.stats()
            pg = conn.pgconn
            pg.enter_pipeline_mode()
            pg.send_query_params(b"SELECT 2", None)
            pg.pipeline_sync()
            while pg.flush():
                pass
            statuses = []  # read the whole answer: its ReadyForQuery has passed the proxy
            while psycopg.pq.ExecStatus.PIPELINE_SYNC not in statuses:
                pg.consume_input()
                while pg.is_busy():  # wait in select (the proxy's threads need the GIL)
                    select.select([pg.socket], [], [])
                    pg.consume_input()
                r = pg.get_result()
                if r is not None:
                    statuses.append(r.status)
            pg.send_flush_request()
            while pg.flush():
                pass
            for _ in range(1000):  # until the proxy has parsed the Flush (it forwards it at once)
                if w.stats()["messages"].get("H"):
                    break
                time.sleep(0.01)
            flushed = w.stats()
            pg.exit_pipeline_mode()
    assert flushed["messages"].get("H") == 1
    assert (flushed["round_trips"] - before["round_trips"], flushed["executes"] - before["executes"]) == (1, 1)
