"""Redis cache refresh that converges across crashes (spec §2.4, §6).

The apply transaction writes the keys to refresh into ``expsync_cache_outbox`` together with
the data change, so "the DB changed" and "the cache must be refreshed" commit atomically.
After commit :func:`drain` does, in this order, in one transaction that holds the refresh
lock (Postgres: advisory lock :data:`REFRESH_LOCK`; SQLite: an immediate transaction):

1. read the outbox rows and recompute the membership value from the database (not from the
   plan: whatever committed last is the truth);
2. one pipeline (no MULTI: it must work on Redis Cluster, where the keys live in different
   slots) DELetes every per-public-id key and SETs the membership value;
3. GET the membership key back and compare byte for byte (a plain Redis URL uses
   :mod:`expsync.cache.resp`: the DELs, the SET and the GET go in one write);
4. delete exactly the outbox rows that were read (rows added meanwhile by another apply stay).

The lock serializes refreshes: without it a refresh that read the rows before another apply
committed could SET its older membership value after that apply's refresh SET the newer one,
and the outbox, already cleared by both, would never repair it. With it, every refresh reads
the rows after the previous refresh finished writing, so the last SET is always the newest.

A failure at any step leaves the outbox rows in place, so the next expsync run (or
``expsync cache sync``) repeats the refresh; every step is idempotent.

The database is a SQLAlchemy engine (SQLite; Postgres through the engine) or a bare psycopg
connection (:class:`~expsync.state.connection.PgConnection`, what ``apply`` on Postgres
uses): the statements are the same SQL text on both (:func:`~expsync.state.connection.run_text`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from expsync.records import dataclass
from typing import TYPE_CHECKING, Any, Final

from expsync.cache import resp
from expsync.cache.client import REDIS_SCHEMES, check_url, connect
from expsync.errors import CachePending, DatabaseUnavailable
from expsync.model import MEMBERSHIP_KEY, PER_ID_KEY_PREFIX, membership_key, per_id_key
from expsync.state.connection import PgConnection, ask, backend, driver_errors, run_text
from expsync.state.locks import is_lock_timeout, xact_lock
from expsync import rules

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from expsync.state.connection import AnyConnection

#: advisory lock key held by a refresh from reading the rows to clearing the outbox (b"expsrfr")
REFRESH_LOCK: Final = int.from_bytes(b"expsrfr", "big")


@dataclass(frozen=True, slots=True)
class RefreshResult:
    deleted_keys: tuple[str, ...]
    membership: str
    outbox_rows: int


def membership_json(ids: Iterable[str]) -> str:
    """The membership value the admin API writes: distinct ids in JavaScript ``.sort()`` order
    (UTF-16 code units, not code points: ``rg-😀`` sorts before ``rg-ｆｕｌｌ``), compact JSON,
    non-ASCII raw, ``[]`` when empty."""
    return json.dumps(sorted(set(ids), key=lambda s: s.encode("utf-16-be")), separators=(",", ":"),
                      ensure_ascii=False)


#: the routing statuses as SQL literals (fixed enum values)
ROUTING_STATUS_SQL: Final = ", ".join(f"'{v}'" for v in rules.ROUTING_STATUS_VALUES)
#: the gateway's formula over the database: distinct routing public ids (spec §2.4)
_ROUTING_IDS: Final = f"SELECT DISTINCT public_model_id FROM model_experiment WHERE status IN ({ROUTING_STATUS_SQL})"
#: the outbox rows and the routing public ids in one statement (one round trip): the outbox
#: rows carry an id, the routing public ids none
_PENDING: Final = f"SELECT id, cache_key FROM expsync_cache_outbox UNION ALL SELECT NULL, routing.public_model_id FROM ({_ROUTING_IDS}) AS routing"


def membership_value(conn: AnyConnection) -> str:
    """The membership value the database holds now."""
    [done] = run_text(conn, [(_ROUTING_IDS, {})])
    return membership_json(r[0] for r in done.rows)


def _pending(conn: AnyConnection) -> tuple[list[tuple[int, str]], str]:
    rows: list[tuple[int, str]] = []
    ids: list[str] = []
    [done] = run_text(conn, [(_PENDING, {})])
    for row_id, text in done.rows:
        if row_id is None:
            ids.append(text)
        else:
            rows.append((row_id, text))
    return rows, membership_json(ids)


def enqueue(conn: AnyConnection, keys: Iterable[str]) -> int:
    """Record keys to refresh, inside the caller's (apply) transaction: one statement and one
    parameter whatever the number of keys."""
    unique = list(dict.fromkeys(keys))
    if not unique:
        return 0
    if backend(conn) == "postgresql":
        sql = "INSERT INTO expsync_cache_outbox (cache_key) SELECT k FROM unnest(CAST(:keys AS TEXT[])) AS w(k)"
        run_text(conn, [(sql, {"keys": unique})])
    else:
        sql = "INSERT INTO expsync_cache_outbox (cache_key) SELECT value FROM json_each(:keys)"
        run_text(conn, [(sql, {"keys": json.dumps(unique)})])
    return len(unique)


def _clear(conn: AnyConnection, ids: list[int]) -> None:
    """Delete exactly the outbox rows that were read."""
    if backend(conn) == "postgresql":
        run_text(conn, [("DELETE FROM expsync_cache_outbox WHERE id = ANY(CAST(:ids AS BIGINT[]))", {"ids": ids})])
    else:
        run_text(conn, [("DELETE FROM expsync_cache_outbox WHERE id IN (SELECT value FROM json_each(:ids))",
                         {"ids": json.dumps(ids)})])


#: keys per DEL command of :class:`~expsync.cache.resp.RespClient` (one server, no slots)
DEL_BATCH: Final = 1000


def _write(client: Any, delete: list[str], member_key: str, value: str) -> None:
    if isinstance(client, resp.RespClient):
        # one write: the DELs, the SET and the GET that reads it back (replies in order)
        dels = [["DEL", *delete[i:i + DEL_BATCH]] for i in range(0, len(delete), DEL_BATCH)]
        got = client.call([*dels, ["SET", member_key, value], ["GET", member_key]])[-1]
    else:
        got = _write_redis_py(client, delete, member_key, value)
    if got is None or got.decode("utf-8") != value:
        raise CachePending(f"membership key {member_key} read back a different value; run `expsync cache sync`")


def _write_redis_py(client: Any, delete: list[str], member_key: str, value: str) -> Any:
    """One pipeline (no MULTI, and one DEL per key: Redis Cluster keeps the keys in different
    slots), then the GET."""
    pipe = client.pipeline(transaction=False)
    for k in delete:
        pipe.delete(k)
    pipe.set(member_key, value)
    pipe.execute()
    return client.get(member_key)


def drain(db: Engine | PgConnection, client: Any, *, prefix: str = "", full: bool = False,
          lock_timeout: float = 30.0) -> RefreshResult:
    """Refresh Redis from the outbox (``full=True``: also every routing public id - cache sync).

    Raises :class:`CachePending` (exit 6) when Redis cannot be written, or when the refresh
    lock is not free within ``lock_timeout`` seconds; the outbox stays either way.
    """
    try:
        return _drain(db, client, prefix, full, lock_timeout)
    except Exception as e:
        if not is_lock_timeout(e) and "database is locked" not in str(getattr(e, "orig", "")):
            raise
        raise CachePending(
            f"the cache refresh lock was not free within {lock_timeout:g}s (another expsync run holds it); "
            "run `expsync cache sync` (any later expsync run also finishes it)"
        ) from None


@contextmanager
def _transaction(db: Engine | PgConnection, lock_timeout: float) -> Iterator[Any]:
    if isinstance(db, PgConnection):
        with db.transaction() as conn:
            yield conn
        return
    from expsync.state.db import begin

    with begin(db, immediate=True, lock_timeout=lock_timeout) as conn:
        yield conn


def _drain(db: Engine | PgConnection, client: Any, prefix: str, full: bool, lock_timeout: float) -> RefreshResult:
    started: list[bool] = []
    try:
        return _drain_once(db, client, prefix, full, lock_timeout, started)
    except DatabaseUnavailable:
        if not isinstance(db, PgConnection) or started:
            raise
    # the server ended the session while it was idle (after apply's commit, say): nothing of
    # the refresh ran yet, so it starts again on a new session, as a pool's pre-ping would
    db.reconnect()
    return _drain_once(db, client, prefix, full, lock_timeout, started)


def _drain_once(db: Engine | PgConnection, client: Any, prefix: str, full: bool, lock_timeout: float,
                started: list[bool]) -> RefreshResult:
    with _transaction(db, lock_timeout) as conn:
        if backend(conn) == "postgresql":
            # held until the outbox rows are deleted: refreshes must not interleave (module doc);
            # read by the next statement, so its snapshot is taken once the lock is held
            xact_lock(conn, REFRESH_LOCK, lock_timeout, keep_timeout=False)
        started.append(True)
        rows, value = _pending(conn)
        routing = json.loads(value) if full else []
        if not rows and not full:
            return RefreshResult((), value, 0)
        mkey = membership_key(prefix)
        keys = {str(k) for _, k in rows if k != mkey and not str(k).endswith(MEMBERSHIP_KEY)}
        keys |= {per_id_key(pid, prefix) for pid in routing}
        delete = sorted(keys)
        try:
            _write(client, delete, mkey, value)
        except CachePending:
            raise
        except Exception as e:  # redis errors of any kind: the DB change stands, the outbox stays
            raise CachePending(
                f"the database change is committed but Redis could not be refreshed ({type(e).__name__}); "
                "run `expsync cache sync` (any later expsync run also finishes it)"
            ) from None
        if rows:
            _clear(conn, [r[0] for r in rows])
    return RefreshResult(tuple(delete), value, len(rows))


def drain_leftover(db: Engine | PgConnection, url: str, *, prefix: str = "") -> int:
    """Finish a refresh an earlier run left pending (spec §6); return how many outbox rows were
    pending (0 also when the database is not initialised: the command itself reports that).

    Raises like :func:`drain` (CachePending, ConfigError) when Redis cannot be refreshed; the
    caller decides whether that is fatal (plan and apply go on: the outbox stays)."""
    count = "SELECT count(*) FROM expsync_cache_outbox"
    if isinstance(db, PgConnection):
        try:  # one statement outside any transaction: one round trip, not BEGIN + it + ROLLBACK
            pending = int(ask(db, count)[0][0])
            if pending:
                drain(db, connect(url), prefix=prefix)
        except driver_errors()[3]:
            return 0
        return pending
    from sqlalchemy.exc import SQLAlchemyError

    try:
        with db.connect() as conn:
            if conn.dialect.name == "postgresql":
                conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            pending = int(conn.exec_driver_sql(count).scalar_one())
        if pending:
            drain(db, connect(url), prefix=prefix)
    except SQLAlchemyError:
        return 0
    return pending


__all__ = ["REDIS_SCHEMES", "RefreshResult", "check_url", "connect", "drain", "drain_leftover", "enqueue", "membership_json", "membership_value",
           "PER_ID_KEY_PREFIX"]
