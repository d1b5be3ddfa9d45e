"""The shared fixtures in tests/conftest.py do what they promise (they live with the state tests
because the state stage owns them)."""

from __future__ import annotations

from typing import Any

import redis
import sqlalchemy as sa


def test_pg_url_is_a_fresh_empty_database(pg_url: str) -> None:
    engine = sa.create_engine(pg_url)
    try:
        assert sa.inspect(engine).get_table_names() == []
    finally:
        engine.dispose()


def test_redis_url_is_an_empty_database_of_its_own(redis_url: str, redis_prefix: str) -> None:
    client = redis.Redis.from_url(redis_url)
    assert client.dbsize() == 0
    client.set(f"{redis_prefix}k", "v")
    assert 1 <= int(redis_url.rsplit("/", 1)[1]) <= 15


def test_redis_database_is_leased_while_the_test_runs(redis_url: str) -> None:
    # Other pytest processes skip a database whose lease key exists in db 0.
    db = int(redis_url.rsplit("/", 1)[1])
    admin = redis.Redis(host="127.0.0.1", port=6379, db=0)
    assert admin.get(f"expsync-test:lease:{db}") is not None
    assert 0 < admin.ttl(f"expsync-test:lease:{db}") <= 900


def test_count_statements_excludes_transaction_control(sqlite_engine: sa.Engine, count_statements: Any) -> None:
    with count_statements(sqlite_engine) as log, sqlite_engine.begin() as conn:
        conn.exec_driver_sql("SELECT 1")
        conn.exec_driver_sql("SELECT 2")
    assert log.count == 2
    assert any(s.startswith("BEGIN") for s in log.all)
    with sqlite_engine.connect() as conn:
        conn.exec_driver_sql("SELECT 3")
    assert log.count == 2  # the listener is gone after the block
