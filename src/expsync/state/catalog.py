"""What a run asks the database before it reads: are expsync's tables there, does
``model_experiment`` have the ``metadata`` column (which gateway profile fits), is a cache
refresh left pending.

On Postgres each question is one round trip through :func:`expsync.state.connection.ask`
(outside a transaction when none is open: table existence needs no snapshot), on a SQLAlchemy
connection or a bare psycopg one alike; SQLite (always SQLAlchemy) asks its inspector.
:data:`MISSING_TABLES_SQL` is also sent inside the plan's read batch (:mod:`~expsync.state.reader`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Final

from expsync.errors import ExpsyncError
from expsync.state.connection import ask, backend

if TYPE_CHECKING:
    from expsync.state.connection import AnyConnection

__all__ = ["METADATA_COLUMN", "MISSING_TABLES_SQL", "REQUIRED_TABLES", "NotInitialized", "has_metadata_column",
           "missing_tables", "missing_tables_and_metadata", "outbox_pending", "raise_missing"]

#: the tables a plan and an apply need (apply writes its audit row last: a missing
#: ``expsync_audit`` must stop it before the first write, not fail it at the end)
REQUIRED_TABLES: Final = ("model_experiment", "model_experiment_variant", "model_experiment_variant_version",
                          "expsync_managed", "expsync_cache_outbox", "expsync_audit")
#: ``model_experiment.metadata``: the gateway's migration 0157 added it (profile 2026-06)
METADATA_COLUMN: Final = "metadata"

#: the names of ``%(tables)s`` (a text array) that are no table, sorted
MISSING_TABLES_SQL: Final = (
    "SELECT ARRAY(SELECT t FROM unnest(%(tables)s::text[]) t LEFT JOIN pg_catalog.pg_class c"
    " ON c.oid = to_regclass(quote_ident(t)) AND c.relkind IN ('r', 'p') WHERE c.oid IS NULL ORDER BY t)"
)
_HAS_METADATA_SQL: Final = (
    "EXISTS (SELECT 1 FROM pg_catalog.pg_attribute WHERE attrelid ="
    " to_regclass('model_experiment') AND attname = %(column)s AND NOT attisdropped)"
)


class NotInitialized(ExpsyncError):
    """The database lacks expsync's tables (and expsync must not create them on a plan)."""

    exit_code = 1


def raise_missing(missing: list[str]) -> None:
    if missing:
        raise NotInitialized(f"database is missing tables {', '.join(missing)}: run `expsync db init` first")


def missing_tables(conn: AnyConnection, names: Iterable[str]) -> list[str]:
    """Which of ``names`` are not tables visible to ``conn`` (sorted)."""
    wanted = sorted(set(names))
    if backend(conn) != "postgresql":
        import sqlalchemy as sa  # SQLite: a SQLAlchemy connection

        return sorted(set(wanted) - set(sa.inspect(conn).get_table_names()))
    return list(ask(conn, MISSING_TABLES_SQL, {"tables": wanted})[0][0])


def missing_tables_and_metadata(conn: AnyConnection, names: Iterable[str]) -> tuple[list[str], bool]:
    """:func:`missing_tables` and :func:`has_metadata_column` answered together: one round trip
    on Postgres (what a run asks before choosing its gateway profile)."""
    if backend(conn) != "postgresql":
        missing = missing_tables(conn, names)
        return missing, "model_experiment" not in missing and has_metadata_column(conn)
    row = ask(conn, f"{MISSING_TABLES_SQL}, {_HAS_METADATA_SQL}", {"tables": sorted(set(names)),
                                                                     "column": METADATA_COLUMN})[0]
    return list(row[0]), bool(row[1])


def has_metadata_column(conn: AnyConnection) -> bool:
    """Whether ``model_experiment.metadata`` exists (the gateway's migration 0157 ran)."""
    if backend(conn) == "postgresql":
        return bool(ask(conn, f"SELECT {_HAS_METADATA_SQL}", {"column": METADATA_COLUMN})[0][0])
    import sqlalchemy as sa

    return any(c["name"] == METADATA_COLUMN for c in sa.inspect(conn).get_columns("model_experiment"))


def outbox_pending(conn: AnyConnection) -> int:
    """How many cache-outbox rows an earlier run left for the refresh to finish (ask it after
    the table check: the table must exist)."""
    return int(ask(conn, "SELECT count(*) FROM expsync_cache_outbox")[0][0])
