"""Shared fixtures: real PostgreSQL and Redis (see scripts/services.sh), SQLite, statement counts.

* ``pg_url``: a fresh, empty database per test on 127.0.0.1:5432 (user ``$PGUSER`` or
  ``postgres``, trust auth), dropped afterwards. ``pg_engine``: a fresh database with
  ``init_db`` done, cloned (``CREATE DATABASE ... TEMPLATE``) from a template database that
  ``init_db`` migrates once per session (``pg_template``), instead of migrating every test.
* ``sqlite_url`` / ``sqlite_engine``: a file database in ``tmp_path``.
* ``db_engine``: parametrized over both backends (initialised), ids ``sqlite`` / ``postgres``.
* ``redis_url``: a Redis database number of the test's own (leased across concurrent pytest
  processes, flushed before and after); ``redis_prefix``: a unique key prefix.
* ``count_statements``: ``with count_statements(engine) as log: ...; log.count``.
"""

from __future__ import annotations

import logging
import os
import queue
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis
import sqlalchemy as sa
from sqlalchemy import event

from expsync.state.db import init_db, make_engine

#: The suite itself runs in CI (.ci/run sets CI=true), where apply refuses to resolve secrets
#: without an allowlist. Tests start from a local, allowlist-free environment; the tests of the
#: CI behaviour set these variables themselves (run_cli overlays os.environ, subprocesses inherit it).
for _name in ("CI", "GITHUB_ACTIONS", "EXPSYNC_SECRET_REFS"):
    os.environ.pop(_name, None)



@pytest.fixture(autouse=True)
def _root_log_level() -> Iterator[None]:
    """`--debug` sets the root logger's level; no test inherits it from an earlier one."""
    root = logging.getLogger()
    level = root.level
    yield
    root.setLevel(level)


PG_HOST = "127.0.0.1"
PG_PORT = 5432
REDIS_HOST = "127.0.0.1"
REDIS_PORT = 6379
#: Redis databases handed to tests (0 holds the leases).
REDIS_DBS = range(1, 16)
_LEASE_SECONDS = 900


def _pg_user() -> str:
    return os.environ.get("PGUSER") or "postgres"


def _pg_admin() -> psycopg.Connection[Any]:
    try:
        return psycopg.connect(
            host=PG_HOST, port=PG_PORT, user=_pg_user(), dbname="postgres", autocommit=True, connect_timeout=5
        )
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL is not reachable on {PG_HOST}:{PG_PORT} (run scripts/services.sh): {exc}")


def _pg_db_url(name: str) -> str:
    return f"postgresql+psycopg://{_pg_user()}@{PG_HOST}:{PG_PORT}/{name}"


@contextmanager
def _pg_database(template: str | None = None) -> Iterator[str]:
    """A new database (a copy of ``template`` when given), dropped (WITH (FORCE)) afterwards."""
    name = f"expsync_test_{uuid.uuid4().hex[:16]}"
    with _pg_admin() as admin:
        admin.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
    try:
        yield name
    finally:
        with _pg_admin() as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def pg_url() -> Iterator[str]:
    """URL of a new empty Postgres database, dropped (WITH (FORCE)) after the test."""
    with _pg_database() as name:
        yield _pg_db_url(name)


class _Clones:
    """Copies of the template database, made and dropped by two background threads.

    Creating a copy (about as slow as the migration it replaces) and dropping it (Postgres
    checkpoints on DROP DATABASE) are waits on the server: one thread keeps copies ready
    (a bounded queue of :attr:`AHEAD`), the other drops used ones, while the tests run."""

    AHEAD = 2

    def __init__(self, template: str) -> None:
        self.template = template
        self.ready: queue.Queue[str | BaseException] = queue.Queue(maxsize=self.AHEAD)
        self.used: queue.Queue[str | None] = queue.Queue()
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._make, name="pg-clone-make", daemon=True),
                        threading.Thread(target=self._drop, name="pg-clone-drop", daemon=True)]
        for t in self.threads:
            t.start()

    def _make(self) -> None:
        with _pg_admin() as admin:
            while not self.stop.is_set():
                name = f"expsync_test_{uuid.uuid4().hex[:16]}"
                got: str | BaseException = name
                try:
                    admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"')
                except BaseException as exc:  # reported to the test that takes this copy
                    got = exc
                while not self.stop.is_set():
                    try:
                        self.ready.put(got, timeout=0.2)
                        break
                    except queue.Full:
                        continue
                else:
                    if isinstance(got, str):
                        self.used.put(got)

    def _drop(self) -> None:
        with _pg_admin() as admin:
            while (name := self.used.get()) is not None:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def take(self) -> str:
        got = self.ready.get(timeout=300)
        if isinstance(got, BaseException):
            raise got
        return got

    def give_back(self, name: str) -> None:
        self.used.put(name)

    def close(self) -> None:
        self.stop.set()
        self.threads[0].join(timeout=300)
        while not self.ready.empty():
            got = self.ready.get()
            if isinstance(got, str):
                self.used.put(got)
        self.used.put(None)
        self.threads[1].join(timeout=600)


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str]:
    """Name of a database ``init_db`` migrated once for this session (its own name, so
    concurrent pytest runs never share one). No connection stays open on it: Postgres copies
    a template only while nobody is connected to it."""
    with _pg_database() as name:
        engine = make_engine(_pg_db_url(name))
        try:
            init_db(engine)
        finally:
            engine.dispose()
        yield name


@pytest.fixture(scope="session")
def _pg_clones(pg_template: str) -> Iterator[_Clones]:
    clones = _Clones(pg_template)
    try:
        yield clones
    finally:
        clones.close()


@pytest.fixture
def pg_engine(_pg_clones: _Clones) -> Iterator[sa.Engine]:
    """Engine on a fresh Postgres database with ``init_db`` done (a copy of ``pg_template``)."""
    name = _pg_clones.take()
    engine = make_engine(_pg_db_url(name))
    try:
        yield engine
    finally:
        engine.dispose()
        _pg_clones.give_back(name)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'expsync.db'}"


@pytest.fixture
def sqlite_engine(sqlite_url: str) -> Iterator[sa.Engine]:
    """Engine on a fresh SQLite file with ``init_db`` done."""
    engine = make_engine(sqlite_url)
    init_db(engine)
    try:
        yield engine
    finally:
        engine.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def db_engine(request: pytest.FixtureRequest) -> sa.Engine:
    """An initialised engine, once per backend."""
    name = "pg_engine" if request.param == "postgres" else "sqlite_engine"
    engine: sa.Engine = request.getfixturevalue(name)
    return engine


def _lease_redis_db(admin: redis.Redis, token: str) -> int:
    deadline = time.monotonic() + 60
    while True:
        for db in REDIS_DBS:
            if admin.set(f"expsync-test:lease:{db}", token, nx=True, ex=_LEASE_SECONDS):
                return db
        if time.monotonic() > deadline:
            pytest.fail("no free Redis test database (1..15) after 60 s")
        time.sleep(0.2)


_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"


@pytest.fixture
def redis_url() -> Iterator[str]:
    """``redis://127.0.0.1:6379/N`` with N leased to this test alone (also across concurrent
    pytest runs), flushed before and after."""
    admin = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=0, socket_timeout=5)
    try:
        admin.ping()
    except redis.RedisError as exc:
        pytest.fail(f"Redis is not reachable on {REDIS_HOST}:{REDIS_PORT} (run scripts/services.sh): {exc}")
    token = uuid.uuid4().hex
    db = _lease_redis_db(admin, token)
    client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=db, socket_timeout=5)
    try:
        client.flushdb()
        yield f"redis://{REDIS_HOST}:{REDIS_PORT}/{db}"
    finally:
        try:
            client.flushdb()
            client.close()
        finally:
            admin.eval(_RELEASE, 1, f"expsync-test:lease:{db}", token)
            admin.close()


@pytest.fixture
def redis_prefix() -> str:
    """A key prefix no other test uses."""
    return f"expsync-test-{uuid.uuid4().hex[:12]}:"


_TX_CONTROL = re.compile(r"^\s*(BEGIN|COMMIT|ROLLBACK|SAVEPOINT|RELEASE|PRAGMA)\b", re.IGNORECASE)


@dataclass
class StatementLog:
    """Statements sent to the database while the block ran."""

    #: every statement, including transaction control (BEGIN/COMMIT/SAVEPOINT/PRAGMA)
    all: list[str] = field(default_factory=list)

    @property
    def statements(self) -> list[str]:
        """The statements that do work: transaction control excluded, so counts are equal on
        Postgres (implicit BEGIN) and SQLite (explicit BEGIN)."""
        return [s for s in self.all if not _TX_CONTROL.match(s)]

    @property
    def count(self) -> int:
        return len(self.statements)


@contextmanager
def _count_statements(engine: sa.Engine) -> Iterator[StatementLog]:
    log = StatementLog()

    def before(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        log.all.append(statement)

    event.listen(engine, "before_cursor_execute", before)
    try:
        yield log
    finally:
        event.remove(engine, "before_cursor_execute", before)


@pytest.fixture
def count_statements() -> Callable[[sa.Engine], AbstractContextManager[StatementLog]]:
    """``with count_statements(engine) as log: ...`` then ``log.count`` / ``log.statements``."""
    return _count_statements
