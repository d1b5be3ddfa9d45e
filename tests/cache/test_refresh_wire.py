"""What the cache refresh sends to Postgres, counted by ``bench/pgwire.py``: the leftover check
is one statement outside a transaction, and a refresh is BEGIN, the lock statement, one read
of the outbox rows and the membership value, the DELETE of the rows it read, COMMIT."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import redis
import sqlalchemy as sa

from bench.pgwire import WireCounter
from expsync.cache.refresh import drain, drain_leftover, enqueue, membership_value
from expsync.model import membership_key, per_id_key
from expsync.state.db import make_engine
from expsync.state.tables import cache_outbox, experiment


@pytest.fixture
def counted(pg_engine: sa.Engine) -> Iterator[tuple[WireCounter, sa.Engine]]:
    with WireCounter() as w:
        engine = make_engine(w.url(pg_engine.url.render_as_string(hide_password=False)))
        try:
            with engine.connect():  # start-up and the dialect's question are not the refresh's
                pass
            yield w, engine
        finally:
            engine.dispose()


def _delta(w: WireCounter, before: dict[str, int]) -> tuple[int, int]:
    now = w.stats()
    return now["round_trips"] - before["round_trips"], now["executes"] - before["executes"]


def test_leftover_check_is_one_statement(counted: tuple[WireCounter, sa.Engine], redis_url: str) -> None:
    w, engine = counted
    before = w.stats()
    assert drain_leftover(engine, redis_url) == 0
    assert _delta(w, before) == (1, 1)  # no BEGIN / ROLLBACK around the count


def test_refresh_round_trips(counted: tuple[WireCounter, sa.Engine], pg_engine: sa.Engine, redis_url: str,
                             redis_prefix: str) -> None:
    w, engine = counted
    with pg_engine.begin() as c:
        c.execute(sa.insert(experiment), [
            {"public_model_id": f"partner/{n}", "name": n, "status": s} for n, s in
            (("b", "active"), ("a", "paused"), ("a", "completed"), ("d", "draft"))])
        enqueue(c, [per_id_key("partner/a", redis_prefix), per_id_key("partner/x", redis_prefix),
                    membership_key(redis_prefix)])
    client = redis.Redis.from_url(redis_url)
    before = w.stats()
    result = drain(engine, client, prefix=redis_prefix)
    # BEGIN, lock (+ lock_timeout set and reset), outbox rows + membership, DELETE, COMMIT
    assert _delta(w, before) == (5, 5)
    assert result.outbox_rows == 3 and result.membership == '["partner/a","partner/b"]'
    assert result.deleted_keys == tuple(sorted([per_id_key("partner/a", redis_prefix),
                                                per_id_key("partner/x", redis_prefix)]))
    assert json.loads(client.get(membership_key(redis_prefix))) == ["partner/a", "partner/b"]
    with pg_engine.connect() as c:
        assert c.execute(sa.select(sa.func.count()).select_from(cache_outbox)).scalar_one() == 0
        assert membership_value(c) == result.membership
