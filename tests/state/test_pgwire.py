"""The wire counter the round-trip tests and benchmarks rely on (bench/pgwire.py)."""

from __future__ import annotations

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
