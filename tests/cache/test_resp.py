"""The small Redis client of the cache refresh (``expsync.cache.resp``) against the real Redis:
which URLs it takes (the rest go to redis-py), its single write, its error replies, and that
a refresh through it leaves Redis as a redis-py refresh does."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import redis
import sqlalchemy as sa
from redis.connection import parse_url

from expsync.cache import resp
from expsync.cache.refresh import check_url, connect, drain, enqueue
from expsync.errors import CachePending, ConfigError
from expsync.model import membership_key, per_id_key
from expsync.state.tables import experiment
from tests.cache.resp_server import RespServer
from tests.cli.test_imports import loaded
from tests.desired.test_refusals import GOOD
from tests.integration.apply_support import cli_env


@pytest.mark.parametrize(("url", "address"), [
    ("redis://127.0.0.1:6379/10", resp.Address(host="127.0.0.1", db=10)),
    ("redis://h", resp.Address(host="h")),
    ("redis://:p%40ss@h:7000/", resp.Address(host="h", port=7000, password="p@ss")),
    ("redis://user:pw@h?db=3", resp.Address(host="h", db=3, username="user", password="pw")),
    ("unix:///run/redis.sock?db=2", resp.Address(path="/run/redis.sock", db=2)),
    ("redis://:@h/0", resp.Address(host="h")),  # an empty password is no password (no AUTH)
    ("redis://:@h/", resp.Address(host="h")),
    ("unix://:@/s", resp.Address(path="/s")),
])
def test_plain_urls(url: str, address: resp.Address) -> None:
    assert resp.parse(url) == address
    check_url(url)


@pytest.mark.parametrize("url", ["rediss://h", "redis+cluster://h:7000", "rediss+cluster://h", "redis://h?ssl_cert_reqs=none",
                                 "redis://user@h", "redis://user:@h", "redis://h/1?db=2", "redis://h/-1", "redis://h/1/2", "redis://"])
def test_other_urls_are_left_to_redis_py(url: str) -> None:
    assert resp.parse(url) is None


@pytest.mark.parametrize("url", ["redis://h:port/0", "redis://h:99999", "redis://h?db=x", "unix:///s?db=x"])
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
    other = redis.Redis.from_url(redis_url)
    other.set("t:x", "stale")
    wrong = redis_url.replace("redis://", "redis://:not-the-password@")
    with pytest.raises(CachePending, match=r"could not be refreshed \(RespError\)"):
        drain(sqlite_engine, connect(wrong), prefix="t:")
    assert other.keys("t:*") == [b"t:x"]  # AUTH refused: no DEL, no SET ran
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


# URLs the small parser once refused (exit 3) though redis-py reads them: they go to redis-py
@pytest.mark.parametrize(("url", "db"), [("redis://h?db=", 0), ("redis://h?db", 0), ("redis://h?&", 0),
                                         ("redis://h/%31", 1), ("redis://h/1%2F2", 12), ("redis://h/foo", 0),
                                         ("redis://h/zero", 0), ("redis://h/1/2", 12), ("redis://h?db=1&db=2", 1),
                                         ("redis://h/1?db=2", 2), ("redis://h/ 1", 1)])
def test_urls_redis_py_reads_are_left_to_it(url: str, db: int) -> None:
    assert resp.parse(url) is None
    check_url(url)
    client = connect(url)
    assert isinstance(client, redis.Redis)
    assert client.connection_pool.connection_kwargs.get("db", 0) == db


def _as_redis_py(a: resp.Address) -> dict[str, Any]:
    got: dict[str, Any] = {"path": a.path} if a.path else {"host": a.host, "port": a.port}
    return {**got, "db": a.db, "username": a.username, "password": a.password}


@pytest.mark.parametrize("url", [
    "redis://h", "redis://h/", "redis://h:0", "redis://h:6380/07", "redis://H%41/3", "redis://[::1]:7000/2",
    "redis://:p%3Aw@h?db=4", "redis://u%40x:p@h/", "redis://:@h", "redis://@h/1", "redis://h/?db=5",
    "unix:///a%20b.sock", "unix://u:p@/s?db=9", "unix:///a;b?db=1", "redis://h/1;x", "redis://h?db=01",
])
def test_every_url_parsed_here_reads_as_redis_py_reads_it(url: str) -> None:
    address = resp.parse(url)
    if address is None:
        return
    theirs = parse_url(url)
    expected = {"host": theirs.get("host", "localhost"), "port": theirs.get("port", 6379)}
    if "path" in theirs:
        expected = {"path": theirs["path"]}
    expected |= {"db": theirs.get("db", 0), "username": theirs.get("username"), "password": theirs.get("password")}
    assert _as_redis_py(address) == expected


def test_a_refused_select_runs_no_command(sqlite_engine: sa.Engine, redis_prefix: str) -> None:
    """Database 999 does not exist: SELECT fails, and nothing reaches database 0 (before, the
    DELs and the SET ran there, on another tenant's keys)."""
    db0 = redis.Redis(host="127.0.0.1", port=6379, db=0, socket_timeout=5)
    stays = per_id_key("p/1", redis_prefix)
    db0.set(stays, "theirs")
    try:
        with sqlite_engine.begin() as c:
            enqueue(c, [stays])
        client = connect("redis://127.0.0.1:6379/999")
        with pytest.raises(CachePending, match=r"could not be refreshed \(RespError\)"):
            drain(sqlite_engine, client, prefix=redis_prefix)
        with pytest.raises(resp.RespError, match="DB index is out of range"):  # the next call: SELECT again
            client.call([["SET", membership_key(redis_prefix), "[]"]])
        assert db0.get(stays) == b"theirs" and db0.get(membership_key(redis_prefix)) is None
    finally:
        db0.delete(stays, membership_key(redis_prefix))
        db0.close()


def test_an_empty_password_sends_no_auth(sqlite_engine: sa.Engine, redis_url: str) -> None:
    """The real Redis has no password: ``AUTH ""`` would be refused; redis-py sends no AUTH."""
    with sqlite_engine.begin() as c:
        enqueue(c, ["t:x"])
    client = connect(redis_url.replace("redis://", "redis://:@"))
    assert isinstance(client, resp.RespClient)
    assert drain(sqlite_engine, client, prefix="t:").outbox_rows == 1
    assert redis.Redis.from_url(redis_url).get(membership_key("t:")) == b"[]"


#: the commands of a refresh of the key t:x, nothing routing: one write
REFRESH = [["DEL", "t:x"], ["SET", membership_key("t:"), "[]"], ["GET", membership_key("t:")]]


def _refresh(url: str, sqlite_engine: sa.Engine) -> Any:
    with sqlite_engine.begin() as c:
        enqueue(c, ["t:x"])
    client = connect(url)
    assert isinstance(client, resp.RespClient)
    return client, lambda: drain(sqlite_engine, client, prefix="t:")


def test_the_handshake_is_one_round_trip_before_the_commands(sqlite_engine: sa.Engine) -> None:
    with RespServer(password="pw") as server:
        _, refresh = _refresh(f"redis://:pw@127.0.0.1:{server.port}/3", sqlite_engine)
        refresh()
    assert server.connections == [[[["AUTH", "pw"], ["SELECT", "3"]],
                                    REFRESH]]


@pytest.mark.parametrize(("userinfo", "first"), [("", []), (":@", []), (":@", [["SELECT", "2"]])])
def test_no_handshake_round_trip_without_password_or_database(sqlite_engine: sa.Engine, userinfo: str,
                                                               first: list[list[str]]) -> None:
    with RespServer() as server:
        _, refresh = _refresh(f"redis://{userinfo}127.0.0.1:{server.port}/{2 if first else 0}", sqlite_engine)
        refresh()
    assert server.rounds() == [*([first] if first else []), REFRESH]


def test_a_refused_auth_closes_the_connection_before_any_command(sqlite_engine: sa.Engine) -> None:
    with RespServer(password="pw") as server:
        client, refresh = _refresh(f"redis://:wrong@127.0.0.1:{server.port}/3", sqlite_engine)
        with pytest.raises(CachePending, match=r"could not be refreshed \(RespError\)") as e:
            refresh()
        assert "wrong" not in str(e.value)
        with pytest.raises(resp.RespError, match="WRONGPASS"):  # reused: a new connection, AUTH again
            client.call([["SET", "t:membership", "x"]])
    handshake = [[["AUTH", "wrong"], ["SELECT", "3"]]]
    assert server.connections == [handshake, handshake] and server.store == {}
