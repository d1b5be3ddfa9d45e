"""The small Redis client of the cache refresh (``expsync.cache.resp``) against the real Redis:
which URLs it takes (the rest go to redis-py), its single write, its error replies, and that
a refresh through it leaves Redis as a redis-py refresh does."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import redis
import sqlalchemy as sa

from expsync.cache import resp
from expsync.cache.refresh import check_url, connect, drain, enqueue
from expsync.errors import CachePending, ConfigError
from expsync.model import membership_key, per_id_key
from expsync.state.tables import experiment
from tests.cli.test_imports import loaded
from tests.desired.test_refusals import GOOD
from tests.integration.apply_support import cli_env


@pytest.mark.parametrize(("url", "address"), [
    ("redis://127.0.0.1:6379/10", resp.Address(host="127.0.0.1", db=10)),
    ("redis://h", resp.Address(host="h")),
    ("redis://:p%40ss@h:7000/", resp.Address(host="h", port=7000, password="p@ss")),
    ("redis://user:pw@h?db=3", resp.Address(host="h", db=3, username="user", password="pw")),
    ("unix:///run/redis.sock?db=2", resp.Address(path="/run/redis.sock", db=2)),
])
def test_plain_urls(url: str, address: resp.Address) -> None:
    assert resp.parse(url) == address
    check_url(url)


@pytest.mark.parametrize("url", ["rediss://h", "redis+cluster://h:7000", "rediss+cluster://h", "redis://h?ssl_cert_reqs=none",
                                 "redis://user@h", "redis://h/1?db=2", "redis://h/-1", "redis://h/1/2", "redis://"])
def test_other_urls_are_left_to_redis_py(url: str) -> None:
    assert resp.parse(url) is None


@pytest.mark.parametrize("url", ["redis://h:port/0", "redis://h/zero", "redis://h?db=x"])
def test_malformed_plain_urls_are_config_errors(url: str) -> None:
    with pytest.raises(ConfigError, match="not a valid Redis URL"):
        check_url(url)


def test_the_password_is_never_shown() -> None:
    assert "s3cret" not in repr(resp.parse("redis://user:s3cret@h/1"))


def test_commands_in_one_write_replies_in_order(redis_url: str) -> None:
    client = connect(redis_url)
    assert isinstance(client, resp.RespClient)
    try:
        assert client.call([["SET", "t:a", "1"], ["SET", "t:b", "é"], ["DEL", "t:a", "t:none"], ["GET", "t:b"],
                            ["GET", "t:a"]]) == ["OK", "OK", 1, "é".encode(), None]
        with pytest.raises(resp.RespError, match="WRONGTYPE|not an integer"):
            client.call([["SET", "t:c", "x"], ["INCR", "t:c"], ["SET", "t:d", "after"]])
        assert client.call([["GET", "t:d"]]) == [b"after"]  # the replies after the error were read
    finally:
        client.close()
    other = redis.Redis.from_url(redis_url)  # the same logical database (SELECT went first)
    assert other.get("t:b") == "é".encode() and other.get("t:d") == b"after"


def test_a_refused_auth_or_no_server_is_cache_pending(tmp_path: Path, redis_url: str, sqlite_engine: sa.Engine) -> None:
    with sqlite_engine.begin() as c:
        enqueue(c, ["t:x"])
    wrong = redis_url.replace("redis://", "redis://:not-the-password@")
    with pytest.raises(CachePending, match=r"could not be refreshed \(RespError\)"):
        drain(sqlite_engine, connect(wrong), prefix="t:")
    with pytest.raises(CachePending, match=r"could not be refreshed \(ConnectionRefusedError\)"):
        drain(sqlite_engine, connect("redis://127.0.0.1:1/0"), prefix="t:")


def test_refresh_through_it_matches_redis_py(sqlite_engine: sa.Engine, redis_url: str) -> None:
    with sqlite_engine.begin() as c:
        c.execute(sa.insert(experiment), [{"public_model_id": f"p/{i}", "name": "x", "status": "active"} for i in range(3)])
        enqueue(c, [per_id_key(f"p/{i}", "t:") for i in range(2500)])  # more than one DEL batch
    other = redis.Redis.from_url(redis_url)
    other.mset({per_id_key(f"p/{i}", "t:"): "stale" for i in range(0, 2500, 7)})
    result = drain(sqlite_engine, connect(redis_url), prefix="t:")
    assert result.outbox_rows == 2500 and len(result.deleted_keys) == 2500
    assert other.keys("t:*") == [membership_key("t:").encode()]
    assert json.loads(other.get(membership_key("t:"))) == ["p/0", "p/1", "p/2"]


def test_apply_with_a_plain_redis_url_does_not_load_redis_py(tmp_path: Path, pg_engine: sa.Engine,
                                                             redis_url: str) -> None:
    folder = tmp_path / "experiments"
    folder.mkdir()
    (folder / "foo.yaml").write_text(GOOD)
    env = cli_env(pg_engine, {"FOO_KEY": "sk-foo-imports"}, EXPSYNC_REDIS_URL=redis_url)
    code, mods, output = loaded(["apply", "--yes", str(folder)], tmp_path, env)
    assert code == 0 and "cache refreshed" in output, output
    assert "redis" not in mods
    assert redis.Redis.from_url(redis_url).get(membership_key("")) is not None
