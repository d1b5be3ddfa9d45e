"""SQLAlchemy engine, transactions and schema initialisation.

* :func:`database_url` (from :mod:`~expsync.state.location`) picks ``EXPSYNC_DATABASE_URL``
  or the embedded SQLite default (:data:`DEFAULT_SQLITE_PATH`, relative to the working directory).
* :func:`make_engine` builds an engine that behaves the same on Postgres and SQLite:
  foreign keys enforced, real transactions (SQLite's driver otherwise defers BEGIN and
  cannot take a write lock up front), and connection failures raised as
  :class:`~expsync.errors.DatabaseUnavailable` carrying the URL without its password.
* :func:`begin` opens a transaction; ``immediate=True`` takes SQLite's write lock at BEGIN
  (``BEGIN IMMEDIATE``), which is how two concurrent applies serialize there.
* :func:`init_db` creates the gateway's tables when absent and migrates expsync's own tables
  to the newest revision; :func:`ensure_initialized` does so only when something is missing,
  and is what the embedded default runs on first use.

The catalogue questions (:func:`missing_tables` ...) live in :mod:`~expsync.state.catalog` and
JSON decoding in :mod:`~expsync.state.jsonvalues`; both are re-exported here.

expsync's own tables are migrated with Alembic (scripts in :mod:`expsync.migrations`,
located from this file so an installed wheel works) and a version table of their own,
:data:`OWN_VERSION_TABLE`; a host application's ``alembic_version`` is never touched.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine, ExceptionContext
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from expsync.errors import ConfigError, DatabaseUnavailable, ExpsyncError
from expsync.state.catalog import has_metadata_column, missing_tables, missing_tables_and_metadata
from expsync.state.connection import CONNECT_ARGS, CONNECT_TIMEOUT
from expsync.state.jsonvalues import load_json
from expsync.state.location import DEFAULT_SQLITE_PATH, ENV_DATABASE_URL, database_url, is_embedded_default
from expsync.state.tables import APP_TABLES, OWN_TABLES, add_metadata_column_ddl, app_metadata, own_metadata
from expsync.urls import mask_url, scrub

if TYPE_CHECKING:  # Alembic is imported only when something is migrated (or a revision read)
    from alembic.config import Config

__all__ = [
    "DEFAULT_SQLITE_PATH",
    "ENV_DATABASE_URL",
    "MIGRATIONS_DIR",
    "OWN_VERSION_TABLE",
    "SchemaTooNew",
    "alembic_config",
    "begin",
    "database_url",
    "engine_from_environ",
    "ensure_initialized",
    "load_json",
    "has_metadata_column",
    "missing_tables_and_metadata",
    "head_revision",
    "init_db",
    "is_embedded_default",
    "make_engine",
    "missing_tables",
    "own_revision",
    "safe_url",
    "upgrade_own_tables",
]

#: Alembic scripts for the ``expsync_*`` tables, shipped as package data.
MIGRATIONS_DIR: Final = Path(__file__).resolve().parent.parent / "migrations"
#: expsync's own Alembic version table; the host's ``alembic_version`` stays untouched.
OWN_VERSION_TABLE: Final = "expsync_alembic_version"
#: The newest revision in :data:`MIGRATIONS_DIR` (a test checks it equals Alembic's head): lets
#: :func:`ensure_initialized` see "nothing to migrate" without importing Alembic.
HEAD_REVISION: Final = "0001"

#: Postgres advisory lock key held while initialising, so concurrent first runs serialize.
_INIT_LOCK_KEY: Final = int.from_bytes(b"expsync", "big")
_IMMEDIATE: Final = "expsync_begin_immediate"
_BUSY_TIMEOUT: Final = "expsync_busy_timeout_ms"


# --------------------------------------------------------------------------------------
# URLs
# --------------------------------------------------------------------------------------


def safe_url(url: str | sa.URL) -> str:
    """The URL with its password and credential query parameters masked (``***``): safe to
    print and log (:func:`expsync.urls.mask_url`)."""
    return mask_url(url if isinstance(url, str) else url.render_as_string(hide_password=False))


# --------------------------------------------------------------------------------------
# Engine and transactions
# --------------------------------------------------------------------------------------


def make_engine(url: str, *, create: bool = True, **kwargs: Any) -> Engine:
    """An engine for ``url`` (Postgres via psycopg 3, or SQLite). Does not connect yet.

    Raises :class:`~expsync.errors.ConfigError` for a malformed (the URL not echoed: what a
    mask makes of a URL it cannot parse may still hold a secret) or unsupported URL. Once
    connected, failures to reach the database raise
    :class:`~expsync.errors.DatabaseUnavailable`. Extra ``kwargs`` go to
    :func:`sqlalchemy.create_engine`.
    """
    try:
        parsed = sa.make_url(url)
    except (ArgumentError, ValueError) as exc:  # never echoed: a mangled URL masks badly (ValueError: the port)
        port = "" if isinstance(exc, ArgumentError) else ": its port must be a number (or left out, ':' too)"
        raise ConfigError(f"{ENV_DATABASE_URL} is not a valid database URL{port}; expected "
                          "postgresql://USER:PASSWORD@HOST[:PORT]/DATABASE or sqlite:///PATH") from None
    backend = parsed.get_backend_name()
    if backend not in ("postgresql", "sqlite"):
        raise ConfigError(
            f"unsupported database {safe_url(parsed)}: use postgresql://... or sqlite:///PATH"
        )
    if backend == "postgresql":
        # every datetime expsync handles is tz-aware, so nothing depends on TimeZone=UTC but speed
        connect_args: dict[str, Any] = dict(CONNECT_ARGS)
        if "connect_timeout" not in parsed.query:
            connect_args["connect_timeout"] = CONNECT_TIMEOUT
        kwargs.setdefault("connect_args", connect_args)
        # no pool_pre_ping (a round trip per checkout): see _ping_when_reused_after_idle
        # expsync stores no hstore: skip the type lookup (three round trips on first connect)
        kwargs.setdefault("use_native_hstore", False)
    elif create:
        _prepare_sqlite_file(parsed)
    else:
        # a mistyped sqlite URL must not create folders and an empty database on `plan`
        db = parsed.database
        if db and db != ":memory:" and not db.startswith("file:") and not Path(db).is_file():
            raise DatabaseUnavailable(f"no SQLite database at {db}: check {ENV_DATABASE_URL}, or create it "
                                      "with `expsync db init`")
    kwargs.setdefault("json_deserializer", load_json)
    # a driver error's text (what --debug shows of an unexpected one) never carries the
    # statement's parameters: the rows of a write hold encrypted api keys
    kwargs.setdefault("hide_parameters", True)
    try:
        engine = sa.create_engine(parsed, **kwargs)
    except (ArgumentError, NoSuchModuleError, ImportError) as exc:
        raise ConfigError(f"cannot use database {safe_url(parsed)}: {scrub(str(exc), url)}") from None
    if backend == "sqlite":
        _configure_sqlite(engine)
    else:
        _fewer_first_connect_queries(engine)
        if not kwargs.get("pool_pre_ping"):
            _ping_when_reused_after_idle(engine)
    _translate_connection_errors(engine)
    return engine


def _prepare_sqlite_file(url: sa.URL) -> None:
    """Create the folder (0700) and the empty file (0600) of a SQLite database expsync
    creates: it holds encrypted api keys, which no other user of the machine should read
    (SQLite gives its journal the database file's mode). Existing ones are left as they are."""
    db = url.database
    if db and db != ":memory:" and not db.startswith("file:"):
        path = Path(db)
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        except OSError:
            pass  # it exists, or cannot be made: SQLite's own open reports what is wrong


def _configure_sqlite(engine: Engine) -> None:
    # SQLAlchemy's documented recipe: stop pysqlite from managing transactions itself
    # (it defers BEGIN until the first write, so a lock cannot be taken up front) and
    # emit BEGIN ourselves, IMMEDIATE when the connection asks for it.
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, connection_record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA foreign_keys = ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        options = conn.get_execution_options()
        busy_ms = options.get(_BUSY_TIMEOUT)
        if busy_ms is not None:
            conn.exec_driver_sql(f"PRAGMA busy_timeout = {int(busy_ms)}")
        conn.exec_driver_sql("BEGIN IMMEDIATE" if options.get(_IMMEDIATE) else "BEGIN")


def _fewer_first_connect_queries(engine: Engine) -> None:
    """SQLAlchemy's first connect asks Postgres five things one query at a time (version,
    current schema, default isolation level, standard_conforming_strings, hstore). The server
    already reported its version and standard_conforming_strings at start-up (ParameterStatus,
    no query needed); the schema and isolation level come back together from one query. Same
    values, three round trips fewer on every run (each costs a full RTT over a WAN)."""
    dialect: Any = engine.dialect
    found: dict[str, str] = {}

    def server_version_info(connection: Connection) -> tuple[int, ...]:
        v = int(connection.connection.dbapi_connection.info.server_version)  # type: ignore[union-attr]
        return (v // 10000, v % 10000) if v >= 100000 else (v // 10000, v // 100 % 100, v % 100)

    def default_schema_name(connection: Connection) -> str:
        from psycopg.pq import TransactionStatus

        raw: Any = connection.connection.dbapi_connection
        idle = raw.info.transaction_status == TransactionStatus.IDLE
        prev = raw.autocommit
        if idle:  # no BEGIN (and so no ROLLBACK) just to ask
            raw.autocommit = True
        try:
            cur = raw.cursor()
            cur.execute("SELECT current_schema(), current_setting('transaction_isolation')")
            row = cur.fetchone()
            assert row is not None
            cur.close()
        finally:
            if idle:
                raw.autocommit = prev
        found["isolation"] = str(row[1]).upper()
        return str(row[0])

    def default_isolation_level(dbapi_connection: Any) -> str:
        level = found.pop("isolation", None)
        return level if level is not None else str(type(dialect).get_default_isolation_level(dialect, dbapi_connection))

    def set_backslash_escapes(connection: Connection) -> None:
        status = connection.connection.dbapi_connection.info.parameter_status("standard_conforming_strings")  # type: ignore[union-attr]
        if status is None:
            type(dialect)._set_backslash_escapes(dialect, connection)
        else:
            dialect._backslash_escapes = status == "off"

    dialect._get_server_version_info = server_version_info
    dialect._get_default_schema_name = default_schema_name
    dialect.get_default_isolation_level = default_isolation_level
    dialect._set_backslash_escapes = set_backslash_escapes


#: a pooled connection idle longer than this (seconds) is pinged before it is used again
IDLE_PING_SECONDS: Final = 5.0


def _ping_when_reused_after_idle(engine: Engine) -> None:
    """Ping a pooled connection at checkout only when it may have died while idle: after a
    committed transaction (the cache refresh runs after apply's commit, maybe after slow Redis
    calls) or after more than :data:`IDLE_PING_SECONDS` in the pool (a confirmation prompt).
    Within one command the set-up questions, the plan's snapshot and apply's transaction
    reuse a connection seconds apart: they cost no ping round trip. A dead connection is
    replaced (``DisconnectionError`` makes the pool retry with a fresh one)."""

    @event.listens_for(engine, "commit")
    def _committed(conn: Connection) -> None:
        conn.info["expsync_ping"] = True

    @event.listens_for(engine.pool, "checkin")
    def _checkin(dbapi_connection: Any, record: Any) -> None:
        record.info["expsync_idle_since"] = time.monotonic()

    @event.listens_for(engine.pool, "checkout")
    def _checkout(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        since = record.info.pop("expsync_idle_since", None)
        ping = record.info.pop("expsync_ping", False)
        if not ping and (since is None or time.monotonic() - since <= IDLE_PING_SECONDS):
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception:
            raise sa.exc.DisconnectionError("pooled connection lost while idle") from None


def _translate_connection_errors(engine: Engine) -> None:
    raw_url = engine.url.render_as_string(hide_password=False)
    shown = safe_url(raw_url)

    @event.listens_for(engine, "handle_error")
    def _on_error(ctx: ExceptionContext) -> None:
        # Only "cannot reach / lost the database"; SQL errors (constraint violations ...)
        # keep their own types for the callers that handle them.
        if ctx.connection is not None and not ctx.is_disconnect:
            return
        if ctx.is_pre_ping:
            return  # the pool replaces the dead connection (pool_pre_ping); nothing failed
        reason = str(ctx.original_exception).strip().splitlines()
        text = reason[0] if reason else type(ctx.original_exception).__name__
        text = scrub(text, raw_url)
        raise DatabaseUnavailable(f"cannot reach the database at {shown}: {text}") from None


@contextmanager
def begin(
    engine: Engine,
    *,
    immediate: bool = False,
    lock_timeout: float | None = None,
    snapshot: bool = False,
) -> Iterator[Connection]:
    """A connection inside a transaction, committed on success, rolled back on error.

    ``immediate=True`` starts the transaction with SQLite's write lock (``BEGIN IMMEDIATE``)
    so concurrent writers serialize at BEGIN; ``lock_timeout`` (seconds) bounds how long
    SQLite waits for that lock. Both are no-ops on Postgres, which uses advisory locks.
    ``snapshot=True`` makes every statement see the same snapshot on Postgres
    (REPEATABLE READ), as :func:`expsync.state.reader.read_actual` wants for a plan; a
    SQLite transaction already reads from one snapshot.
    """
    with engine.connect() as conn:
        if snapshot and engine.dialect.name == "postgresql":
            conn.execution_options(isolation_level="REPEATABLE READ")
        if engine.dialect.name == "sqlite":
            options: dict[str, Any] = {_IMMEDIATE: immediate}
            if lock_timeout is not None:
                options[_BUSY_TIMEOUT] = max(0, round(lock_timeout * 1000))
            conn.execution_options(**options)
        with conn.begin():
            yield conn


# --------------------------------------------------------------------------------------
# Schema
# --------------------------------------------------------------------------------------


def alembic_config(connection: Connection | None = None) -> Config:
    """Alembic configuration for expsync's own migrations (also handy for authoring new
    revisions: ``command.revision(alembic_config(), "message")``)."""
    from alembic.config import Config

    cfg = Config()
    # configparser interpolation: a literal % in the path must be doubled.
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    cfg.set_main_option("path_separator", "os")
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


@functools.cache
def head_revision() -> str:
    """The newest revision of expsync's own migrations."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()
    assert head is not None, "expsync.migrations has no revisions"
    return head


def own_revision(conn: Connection) -> str | None:
    """The revision of expsync's own tables in this database, or None if never migrated."""
    from alembic.runtime.migration import MigrationContext

    ctx = MigrationContext.configure(conn, opts={"version_table": OWN_VERSION_TABLE})
    return ctx.get_current_revision()


class SchemaTooNew(ExpsyncError):
    """expsync's tables were migrated by a newer expsync (a revision this one does not know)."""

    exit_code = 1


def upgrade_own_tables(conn: Connection) -> None:
    """Migrate expsync's own tables to the newest revision inside ``conn``'s transaction.

    Raises :class:`SchemaTooNew` when the database records a revision this expsync does not
    know (a newer expsync migrated it): expsync never downgrades its tables."""
    from alembic import command
    from alembic.script import ScriptDirectory

    known = {s.revision for s in ScriptDirectory(str(MIGRATIONS_DIR)).walk_revisions()}
    unknown = sorted(_recorded_revisions(conn) - known) if OWN_VERSION_TABLE in sa.inspect(conn).get_table_names() else []
    if unknown:
        raise SchemaTooNew(f"expsync's tables in this database are at migration {', '.join(unknown)}, which this "
                           f"expsync (newest migration {head_revision()}) does not know: a newer expsync migrated "
                           "them; use that version or a newer one (expsync never downgrades its tables)")
    command.upgrade(alembic_config(conn), "head")
    # a table dropped after it was migrated (a partial restore) is not Alembic's to notice: at
    # head the table definitions are the migrated schema (a test compares them), so recreate it
    own_metadata.create_all(conn, checkfirst=True)


@contextmanager
def _explain_denied() -> Iterator[None]:
    """A role without CREATE on the schema (or a read-only SQLite file) is told so, not
    reported as an unexpected error."""
    try:
        yield
    except sa.exc.DBAPIError as e:
        orig = e.orig
        text = str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__
        if getattr(orig, "sqlstate", None) != "42501" and "readonly database" not in text:
            raise
        raise ExpsyncError(f"permission denied creating or migrating expsync's tables ({text}): run `expsync db "
                           "init` as a role with CREATE on the schema (and owning expsync's tables)") from None


def init_db(engine: Engine, *, with_metadata: bool = False) -> list[str]:
    """Create the gateway's tables where absent and migrate expsync's own tables to head.

    ``with_metadata``: a ``model_experiment`` created here gets the ``metadata`` column (the
    gateway profile has one). Idempotent and safe to run concurrently (Postgres: advisory
    lock; SQLite: immediate transaction). Existing tables are never altered, and other tables
    (a host's ``alembic_version``) are never touched. Returns the names of the tables it created.
    """
    with _explain_denied(), begin(engine, immediate=True) as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_INIT_LOCK_KEY)))
        before = set(sa.inspect(conn).get_table_names())
        app_metadata.create_all(conn, checkfirst=True)
        if with_metadata and "model_experiment" not in before:
            conn.execute(sa.text(add_metadata_column_ddl(conn.dialect.name)))
        upgrade_own_tables(conn)
        after = set(sa.inspect(conn).get_table_names())
    order = [t.name for t in (*APP_TABLES, *OWN_TABLES)] + [OWN_VERSION_TABLE]
    return [name for name in order if name in after - before]


def _recorded_revisions(conn: Connection) -> set[str]:
    """The revisions in the version table, read with plain SQL (no Alembic import)."""
    table = sa.table(OWN_VERSION_TABLE, sa.column("version_num"))
    rows: list[Any] = list(conn.execute(sa.select(table.c.version_num)).scalars())
    return {str(v) for v in rows}


def ensure_initialized(engine: Engine, *, create_app_tables: bool = True, with_metadata: bool = False) -> list[str]:
    """Run :func:`init_db` only when something is missing or behind; return what it created.

    With ``create_app_tables=False`` (a real gateway database, whose tables belong to the
    gateway's own migrations) only expsync's own tables are migrated.
    """
    with engine.connect() as conn:
        names = set(sa.inspect(conn).get_table_names())
        needed = {t.name for t in OWN_TABLES} | ({t.name for t in APP_TABLES} if create_app_tables else set())
        if needed | {OWN_VERSION_TABLE} <= names and _recorded_revisions(conn) == {HEAD_REVISION}:
            return []
    if create_app_tables:
        return init_db(engine, with_metadata=with_metadata)
    with _explain_denied(), begin(engine, immediate=True) as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_INIT_LOCK_KEY)))
        upgrade_own_tables(conn)
        after = set(sa.inspect(conn).get_table_names())
    return [name for name in [t.name for t in OWN_TABLES] + [OWN_VERSION_TABLE] if name in after - names]


def engine_from_environ(environ: Mapping[str, str], *, cwd: Path | None = None, with_metadata: bool = False) -> Engine:
    """The engine for this run; the embedded default is initialised on first use (its
    ``model_experiment`` with the ``metadata`` column when ``with_metadata``)."""
    url = database_url(environ, cwd=cwd)
    embedded = is_embedded_default(url, cwd=cwd)
    engine = make_engine(url, create=embedded)  # only the embedded default is created on use
    if embedded:
        ensure_initialized(engine, with_metadata=with_metadata)
    return engine
