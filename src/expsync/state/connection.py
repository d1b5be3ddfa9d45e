"""The database connection ``plan`` and ``apply`` work with: a SQLAlchemy one, or psycopg alone.

On Postgres, importing SQLAlchemy and building an engine cost a command more than its reads
and writes (which are a handful of pipelined statements whatever the number of rows). So
``plan`` and ``apply`` open a :class:`PgConnection` instead; the embedded SQLite default, a URL
only SQLAlchemy reads, and the other commands (``db``, ``import``, ``history``, ``cache sync``)
keep the engine. The catalogue questions (:mod:`~expsync.state.catalog`), the reader,
:mod:`expsync.pipeline`, the row locks, the writes (:mod:`expsync.apply.execute` through a
writer for each kind of connection), the audit row and the cache refresh take either
connection and ask it only what this module answers:

* :func:`backend`: ``"postgresql"`` or ``"sqlite"``;
* :func:`driver`: the psycopg connection underneath (Postgres);
* :func:`batch`: statements pipelined in one round trip (:func:`ask`: one of them, outside a
  transaction when none is open);
* :func:`run_text`: SQL text with ``:name`` parameters, with row counts (one round trip on a
  :class:`PgConnection`); :meth:`PgConnection.transaction`: a read-write transaction whose
  BEGIN goes out with its first statement.

:func:`connect` opens a :class:`PgConnection` as :func:`expsync.state.db.make_engine`'s engine
connects (:data:`CONNECT_ARGS`, a connect timeout, the JSON decoder, connection failures as
:class:`~expsync.errors.DatabaseUnavailable`) for every URL it parses exactly as SQLAlchemy
does; for any other it returns ``None`` and the caller uses the engine. :func:`session`,
:func:`read_snapshot` and :func:`close` treat an engine and a :class:`PgConnection` alike.
Nothing here imports SQLAlchemy unless the caller already holds an engine.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from expsync.records import dataclass
from typing import TYPE_CHECKING, Any, ContextManager, Final
from urllib.parse import parse_qsl, unquote

from expsync.errors import DatabaseUnavailable
from expsync.state.location import URL_PATTERN
from expsync.urls import mask_url, scrub

if TYPE_CHECKING:
    import psycopg
    from sqlalchemy.engine import Connection, Engine

    from typing import TypeAlias

    #: a connection the read side accepts
    AnyConnection: TypeAlias = "Connection | PgConnection"

__all__ = ["BEFORE_STATEMENT", "CONNECT_ARGS", "CONNECT_TIMEOUT", "PgConnection", "Written", "ask", "backend", "batch",
           "close", "connect", "settle", "driver_errors", "driver", "read_snapshot", "run_text", "session", "write"]

#: What every Postgres connection of expsync says at start-up (the engine's ``connect_args`` too).
#: JIT compilation costs more than it saves on expsync's short, index-driven queries.
#: TimeZone=UTC: timestamptz values arrive in UTC already (no per-value conversion).
CONNECT_ARGS: Final = {"application_name": "expsync", "options": "-c jit=off -c TimeZone=UTC"}
#: seconds, unless the URL sets ``connect_timeout``
CONNECT_TIMEOUT: Final = 10

#: query keys SQLAlchemy treats specially (multi-host) or that are psycopg.connect's own arguments
_ENGINE_ONLY_KEYS: Final = frozenset({"host", "port", "autocommit", "prepare_threshold", "context",
                                       "row_factory", "cursor_factory"})
_BEGIN_SNAPSHOT: Final = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"
#: a read-write transaction at the server's default level (READ COMMITTED), as the engine begins
_BEGIN: Final = "BEGIN"

#: called with the connection and each statement's text just before a :class:`PgConnection`
#: sends it (what SQLAlchemy's ``before_cursor_execute`` event is for an engine): tests choose a
#: moment with it
BEFORE_STATEMENT: list[Callable[[PgConnection, str], None]] = []
#: each statement a :class:`PgConnection` sends, with its parameters, at DEBUG (what the
#: ``sqlalchemy.engine`` logger is for an engine). Off unless a caller sets this logger's level
#: itself: like SQLAlchemy's own loggers it starts at WARNING, so ``--debug`` (the root logger
#: at DEBUG) does not write every statement and its parameters into a CI log
SQL_LOG: Final = logging.getLogger("expsync.sql")
if SQL_LOG.level == logging.NOTSET:
    SQL_LOG.setLevel(logging.WARNING)


def connect_kwargs(url: str) -> dict[str, Any] | None:
    """The keyword arguments SQLAlchemy's psycopg dialect would pass to ``psycopg.connect`` for
    ``url`` (with :data:`CONNECT_ARGS`), or None for a URL this module leaves to the engine:
    another driver, a multi-host or repeated query parameter, a port that is empty or not a
    number (the engine decides: it refuses an empty one)."""
    m = URL_PATTERN.fullmatch(url)  # what SQLAlchemy's prefix match reads short goes to the engine
    port = m["port"] if m is not None else None
    if m is None or m["name"] != "postgresql+psycopg" or (port is not None and not (port.isascii()
                                                                                    and port.isdigit())):
        return None
    query = parse_qsl(m["query"]) if m["query"] is not None else []
    keys = [k for k, _ in query]
    if len(set(keys)) != len(keys) or _ENGINE_ONLY_KEYS & set(keys):
        return None
    parts: dict[str, Any] = {"host": m["ipv4host"] or m["ipv6host"], "port": int(port) if port else None}
    for name, group in (("dbname", "database"), ("user", "username"), ("password", "password")):
        parts[name] = unquote(m[group]) if m[group] is not None else None
    # what URL.translate_connect_args keeps (truthy values), then the query
    kwargs: dict[str, Any] = {name: value for name, value in parts.items() if value} | dict(query)
    args: dict[str, Any] = dict(CONNECT_ARGS)
    if "connect_timeout" not in kwargs:
        args["connect_timeout"] = CONNECT_TIMEOUT
    return kwargs | args


class PgConnection:
    """A psycopg connection in autocommit mode: no transaction but the ones :meth:`snapshot`
    begins. ``url`` is the database URL (for messages, always masked)."""

    backend: Final = "postgresql"

    def __init__(self, raw: psycopg.Connection[Any], url: str, kwargs: dict[str, Any] | None = None) -> None:
        self.raw = raw
        self.url = url
        self._kwargs = kwargs
        #: statements that go out in front of the next request (the snapshot's BEGIN, ROLLBACK)
        self.pending: list[str] = []
        #: statements sent so far, not counting BEGIN, COMMIT and ROLLBACK
        self.statements = 0

    @contextmanager
    def snapshot(self) -> Iterator[PgConnection]:
        """One REPEATABLE READ, READ ONLY transaction: every statement inside sees the same
        snapshot, and none can write. Neither end costs a round trip: BEGIN goes out with the
        first request inside, ROLLBACK with the first one after (closing the connection ends
        the transaction too)."""
        self.pending.append(_BEGIN_SNAPSHOT)
        try:
            yield self
        finally:
            if self.pending[-1:] == [_BEGIN_SNAPSHOT]:
                self.pending.pop()  # nothing was sent: there is no transaction to end
            else:
                self.pending.append("ROLLBACK")

    @contextmanager
    def transaction(self) -> Iterator[PgConnection]:
        """One read-write transaction (READ COMMITTED), committed when the block ends, rolled
        back when it raises. BEGIN costs no round trip: it goes out with the first statement
        inside. A session the server ended while it sat idle is replaced first
        (:meth:`replace_if_ended`)."""
        self.replace_if_ended()
        self.pending.append(_BEGIN)
        try:
            yield self
        except BaseException:
            if self.pending[-1:] == [_BEGIN]:
                self.pending.pop()
            else:
                self._end("ROLLBACK")
            raise
        if self.pending[-1:] == [_BEGIN]:
            self.pending.pop()  # nothing was sent: nothing to commit
            return
        try:
            self._end("COMMIT")
        except DatabaseUnavailable as e:
            raise DatabaseUnavailable(
                f"{e} (at COMMIT: the transaction may or may not have been committed; run `expsync plan` to see "
                "the database as it is)") from None

    def _end(self, statement: str) -> None:
        if statement == "COMMIT":
            _run(self, [(statement, None)], None, lone_question=False, outcome=True, counted=False)
            return
        self.pending = []  # what was waiting to go out belongs to the transaction being ended
        try:  # the error being raised is what the caller reports; a dead connection ends the transaction too
            self.raw.execute(statement)
        except Exception:
            pass

    def settle(self) -> None:
        """Send what is waiting to go out (a finished snapshot's ROLLBACK) now, not with the
        next statement: before a wait of unknown length (a confirmation prompt), so that no
        transaction stays open across it holding its snapshot and its table locks (one round
        trip, only when something is pending)."""
        if self.pending:
            _run(self, [], None, lone_question=False, counted=False)

    def replace_if_ended(self) -> None:
        """A new session in place of one the server ended while it sat idle (idle_session_timeout,
        a restart, pg_terminate_backend: e.g. while a person read the plan at the confirmation
        prompt), as the engine's check of a connection reused after idle would, but without a
        round trip: the server's goodbye (an error message, then the end of the stream) waits
        unread on the socket, where an idle session that is alive has nothing. Only between
        transactions; a session that was idle in a transaction (a finished snapshot's ROLLBACK
        pending) lost nothing either."""
        import select

        import psycopg

        if self.raw.closed:
            self.reconnect()
            return
        for _ in range(8):  # each round reads what arrived; a live session runs out of it at once
            if not select.select([self.raw.fileno()], [], [], 0)[0]:
                return
            try:
                self.raw.pgconn.consume_input()
            except psycopg.OperationalError:  # the end of the stream: the server ended the session
                self.reconnect()
                return

    def reconnect(self) -> None:
        """A new session in place of one the server ended (as a pool's pre-ping replaces it);
        only between transactions."""
        self.raw.close()
        fresh = connect(self.url) if self._kwargs is None else _open(self.url, self._kwargs)
        assert fresh is not None
        self.raw, self.pending = fresh.raw, []

    def close(self) -> None:
        self.raw.close()


def connect(url: str) -> PgConnection | None:
    """A :class:`PgConnection` to ``url`` (a ``postgresql+psycopg://`` URL), or None when
    :func:`connect_kwargs` leaves the URL to the engine. Raises
    :class:`~expsync.errors.DatabaseUnavailable` (the URL masked) when it cannot connect."""
    kwargs = connect_kwargs(url)
    if kwargs is None:
        return None
    return _open(url, kwargs)


def _open(url: str, kwargs: dict[str, Any]) -> PgConnection:
    import psycopg
    from psycopg.types.json import set_json_loads

    from expsync.state.jsonvalues import load_json

    try:
        raw = psycopg.connect(autocommit=True, **kwargs)
    except psycopg.Error as e:
        reason = str(e).strip().splitlines()
        text = scrub(reason[0] if reason else type(e).__name__, url)
        raise DatabaseUnavailable(f"cannot reach the database at {mask_url(url)}: {text}") from None
    set_json_loads(load_json, raw)  # json and jsonb, as the engine's json_deserializer
    return PgConnection(raw, url, kwargs)


def driver_errors() -> tuple[type[Exception], type[Exception], type[Exception], type[Exception]]:
    """What a statement on a :class:`PgConnection` raises: psycopg's ``IntegrityError``,
    ``DataError``, ``OperationalError`` and their base ``Error``."""
    import psycopg

    return psycopg.IntegrityError, psycopg.DataError, psycopg.OperationalError, psycopg.Error


def backend(conn: AnyConnection) -> str:
    """``"postgresql"`` or ``"sqlite"``."""
    return PgConnection.backend if isinstance(conn, PgConnection) else str(conn.dialect.name)


def driver(conn: AnyConnection) -> psycopg.Connection[Any]:
    """The psycopg connection under a Postgres connection."""
    return conn.raw if isinstance(conn, PgConnection) else conn.connection.driver_connection  # type: ignore[return-value]


def ask(conn: AnyConnection, sql: str, params: Any = None) -> list[Any]:
    """The rows of one question, in one round trip: outside a transaction when none is open
    (no BEGIN and ROLLBACK just for it), else inside it."""
    return _run(conn, [(sql, params)], None, lone_question=True)[0]


def batch(conn: AnyConnection, statements: Sequence[tuple[str, Any]],
          guard: Callable[[list[Any]], None] | None = None) -> list[list[Any]]:
    """The rows of each statement, all sent in one psycopg pipeline (one round trip), inside
    the connection's transaction if it has one. ``guard`` gets the first statement's rows
    before any error of a later statement is raised, so what it raises wins (a missing table
    explains every failure after it). Driver errors are raised as the connection's caller
    expects them: psycopg's own on a :class:`PgConnection`, SQLAlchemy's ``DBAPIError`` on a
    SQLAlchemy connection; a connection lost meanwhile is
    :class:`~expsync.errors.DatabaseUnavailable` either way."""
    return _run(conn, statements, guard, lone_question=False)


@dataclass(frozen=True, slots=True)
class Written:
    """What one statement of :func:`write` did: the rows it changed and the rows it returned."""

    rowcount: int
    rows: list[Any]


#: a ``:name`` parameter of SQL text (not the second colon of a ``::`` cast)
_NAMED: Final = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")


def run_text(conn: AnyConnection, statements: Sequence[tuple[str, dict[str, Any]]]) -> list[Written]:
    """Statements written as SQL text with ``:name`` parameters, on either kind of connection,
    counted and observed like its other statements: on a :class:`PgConnection` in one round
    trip (:func:`write`), on a SQLAlchemy connection one after the other (``text()``)."""
    if isinstance(conn, PgConnection):
        return write(conn, [(_NAMED.sub(r"%(\1)s", sql), params) for sql, params in statements])
    import sqlalchemy as sa  # the caller holds a SQLAlchemy connection: already imported

    out = []
    for sql, params in statements:
        r = conn.execute(sa.text(sql), params)
        out.append(Written(r.rowcount, list(r.all()) if r.returns_rows else []))
    return out


def write(conn: PgConnection, statements: Sequence[tuple[str, Any]]) -> list[Written]:
    """Run ``statements`` (writes or reads) in one round trip inside the connection's
    transaction; errors are psycopg's own (a lost connection is
    :class:`~expsync.errors.DatabaseUnavailable`)."""
    return _run(conn, statements, None, lone_question=False, outcome=True)


def _run(conn: AnyConnection, statements: Sequence[tuple[str, Any]], guard: Callable[[list[Any]], None] | None,
         *, lone_question: bool, outcome: bool = False, counted: bool = True) -> list[Any]:
    import psycopg
    from psycopg.pq import ExecStatus, TransactionStatus

    raw = driver(conn)
    front: list[tuple[str, Any]] = []
    if isinstance(conn, PgConnection):  # in autocommit already; its own BEGIN/ROLLBACK go in front
        front, conn.pending[:] = [(sql, None) for sql in conn.pending], []
        if counted:
            conn.statements += len(statements)
            for hook in BEFORE_STATEMENT:
                for sql, _ in statements:
                    hook(conn, sql)
            if SQL_LOG.isEnabledFor(logging.DEBUG):
                for sql, params in statements:
                    SQL_LOG.debug("%s %r", sql, params)
    # SQLAlchemy begins a transaction lazily: a question asked before it has begun needs none
    idle = lone_question and not front and not raw.autocommit \
        and raw.info.transaction_status == TransactionStatus.IDLE
    cursors: list[psycopg.Cursor[Any]] = []
    try:
        if idle:
            raw.autocommit = True
        try:
            _send(raw, [*front, *statements], cursors)
        finally:
            if idle:
                raw.autocommit = False
    except psycopg.Error as e:
        first = cursors[len(front)] if len(cursors) > len(front) else None
        if guard is not None and first is not None and first.pgresult is not None \
                and first.pgresult.status == ExecStatus.TUPLES_OK:
            guard(first.fetchall())
        err = _caller_error(conn, raw, e, statements)
        if err is e:
            raise
        raise err from e
    if outcome:
        return [Written(c.rowcount, c.fetchall() if c.pgresult is not None and c.pgresult.status == ExecStatus.TUPLES_OK
                        else []) for c in cursors[len(front):]]
    results = [c.fetchall() for c in cursors[len(front):]]
    if guard is not None:
        guard(results[0])
    return results


def _send(raw: psycopg.Connection[Any], statements: Sequence[tuple[str, Any]], cursors: list[Any]) -> None:
    """Execute ``statements`` on ``raw``, pipelined when there are several; ``cursors`` gets
    one cursor per statement as it is sent (their results stay readable after an error)."""
    if len(statements) == 1:
        cur = raw.cursor()
        cursors.append(cur)
        cur.execute(statements[0][0], statements[0][1])
        return
    with raw.pipeline():
        for sql, params in statements:
            cur = raw.cursor()
            cursors.append(cur)
            cur.execute(sql, params)


def _caller_error(conn: AnyConnection, raw: psycopg.Connection[Any], e: Exception,
                  statements: Sequence[tuple[str, Any]]) -> Exception:
    import psycopg

    if isinstance(e, psycopg.OperationalError) and (raw.closed or raw.broken):
        first = str(e).strip().splitlines()
        return DatabaseUnavailable(f"lost the database connection: {first[0] if first else e}")
    if isinstance(conn, PgConnection):
        return e
    import sqlalchemy as sa  # the caller holds a SQLAlchemy connection: already imported

    sql, params = statements[0] if len(statements) == 1 else (None, None)
    return sa.exc.DBAPIError.instance(sql, params, e, psycopg.Error)


def session(db: Engine | PgConnection) -> ContextManager[Any]:
    """A connection outside a transaction, for a few questions."""
    return nullcontext(db) if isinstance(db, PgConnection) else db.connect()


@contextmanager
def read_snapshot(db: Engine | PgConnection) -> Iterator[Any]:
    """A connection inside a transaction that reads one snapshot and writes nothing (rolled
    back at the end): REPEATABLE READ on Postgres, SQLite's own transaction there."""
    if isinstance(db, PgConnection):
        with db.snapshot() as conn:
            yield conn
        return
    from expsync.state.db import begin

    with begin(db, snapshot=True) as conn:
        yield conn
        conn.rollback()  # never writes


def settle(db: Engine | PgConnection) -> None:
    """End a finished snapshot now on a :class:`PgConnection` (see :meth:`PgConnection.settle`);
    an engine's connections end theirs when the block ends."""
    if isinstance(db, PgConnection):
        db.settle()


def close(db: Engine | PgConnection) -> None:
    if isinstance(db, PgConnection):
        db.close()
    else:
        db.dispose()
