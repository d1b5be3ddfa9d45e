"""Table definitions (SQLAlchemy Core) for the gateway's tables and expsync's own tables.

``app_metadata`` mirrors spec §2.1 byte for byte: the three ``model_experiment*`` tables
belong to the gateway application in a real deployment, and expsync only creates them
itself (``init_db``) for development, tests and the embedded SQLite default. Every name
(constraints, indexes) and every server default matters: the gateway's own migrations and
error handling refer to them.

``own_metadata`` holds expsync's own tables (prefix ``expsync_``). They are *not* created
from this metadata: the Alembic migrations in :mod:`expsync.migrations` create and evolve
them. The definitions here are what the code reads and writes, and a test checks that they
agree with the migrated schema.

Both work on PostgreSQL and SQLite. Two portability helpers live here:

* :class:`UTCDateTime` is ``timestamptz`` on Postgres; on SQLite (which has no time zone
  type) it stores UTC and hands back tz-aware UTC datetimes, so callers see the same values
  on both backends.
* :func:`gen_random_uuid` is the Postgres server default for uuid primary keys; on SQLite
  it compiles to a random 32-hex-digit string (SQLAlchemy's storage form of ``Uuid``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from expsync import rules
from expsync.model import Status
from expsync.state.catalog import METADATA_COLUMN

__all__ = [
    "APP_TABLES",
    "JSON_TYPE",
    "OWN_TABLES",
    "METADATA_COLUMN",
    "ROUTING_STATUS_VALUES",
    "STATUS_VALUES",
    "UTCDateTime",
    "app_metadata",
    "audit",
    "cache_outbox",
    "add_metadata_column_ddl",
    "experiment",
    "experiment_with_metadata",
    "gen_random_uuid",
    "managed",
    "own_metadata",
    "utcnow",
    "variant",
    "version",
]

#: derived from the one definition of the statuses and :mod:`expsync.rules` (enum order: the
#: CHECK text stays ``'draft', 'active', 'paused', 'completed'`` and the partial index
#: ``'active', 'paused'``)
STATUS_VALUES: Final = tuple(s.value for s in Status)
ROUTING_STATUS_VALUES: Final = rules.ROUTING_STATUS_VALUES
#: statuses in which a row may not be archived (the edit matrix's archive row): ``active``
NOT_ARCHIVABLE_VALUES: Final = tuple(s.value for s in Status if not rules.may(rules.Change.ARCHIVE, s))

#: ``jsonb`` on Postgres, JSON text elsewhere.
JSON_TYPE: Final = sa.JSON().with_variant(JSONB(), "postgresql")


class UTCDateTime(sa.TypeDecorator[datetime]):
    """``timestamptz``; always binds and returns tz-aware UTC datetimes, on any backend.

    Naive datetimes are refused when binding: a naive value is ambiguous, and storing it on
    Postgres would silently apply the session time zone.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: pass a tz-aware datetime")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            # SQLite stores text; a fixed UTC wall clock keeps string comparison chronological.
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class gen_random_uuid(FunctionElement[Any]):
    """Server-side random uuid: ``gen_random_uuid()`` on Postgres (built in since 13)."""

    type = sa.Uuid()
    inherit_cache = True


@compiles(gen_random_uuid)
def _gen_random_uuid_default(element: gen_random_uuid, compiler: SQLCompiler, **kw: Any) -> str:
    return "gen_random_uuid()"


@compiles(gen_random_uuid, "sqlite")
def _gen_random_uuid_sqlite(element: gen_random_uuid, compiler: SQLCompiler, **kw: Any) -> str:
    # Uuid is stored as CHAR(32) lower-case hex on SQLite.
    return "lower(hex(randomblob(16)))"


class utcnow(FunctionElement[datetime]):
    """The transaction's current time: ``now()`` on Postgres.

    On SQLite it renders UTC with microseconds in exactly the text form SQLAlchemy uses
    for bound datetimes (``YYYY-MM-DD HH:MM:SS.ffffff``), so server-defaulted and bound
    values compare and sort correctly as strings. (SQLite's ``CURRENT_TIMESTAMP`` has no
    fraction and would sort before an equal bound value.) Use it in statements too
    (``updated_at = utcnow()``) rather than ``func.now()``.
    """

    type = UTCDateTime()
    inherit_cache = True


@compiles(utcnow)
def _utcnow_default(element: utcnow, compiler: SQLCompiler, **kw: Any) -> str:
    return "now()"


@compiles(utcnow, "sqlite")
def _utcnow_sqlite(element: utcnow, compiler: SQLCompiler, **kw: Any) -> str:
    # %f is SS.SSS (milliseconds); the trailing 000 pads to SQLAlchemy's six digits.
    return "strftime('%Y-%m-%d %H:%M:%f000', 'now')"


def _now() -> utcnow:
    return utcnow()


def _timestamps() -> list[sa.Column[Any]]:
    return [
        sa.Column("created_at", UTCDateTime(), nullable=False, server_default=_now()),
        sa.Column("updated_at", UTCDateTime(), nullable=False, server_default=_now()),
    ]


def _uuid_pk() -> sa.Column[Any]:
    return sa.Column("id", sa.Uuid(), primary_key=True, server_default=gen_random_uuid())


_status_list: Final = ", ".join(f"'{s}'" for s in STATUS_VALUES)
_routing_list: Final = ", ".join(f"'{s}'" for s in ROUTING_STATUS_VALUES)
_routing_where: Final = sa.text(f"status IN ({_routing_list})")
# the gateway's exact CHECK text for its one non-archivable status
_archive_check: Final = " AND ".join(f"status <> '{s}'" for s in NOT_ARCHIVABLE_VALUES) + " OR is_archived = false"

# --------------------------------------------------------------------------------------
# The gateway's tables (spec §2.1)
# --------------------------------------------------------------------------------------

app_metadata: Final = sa.MetaData()

experiment: Final = sa.Table(
    "model_experiment",
    app_metadata,
    _uuid_pk(),
    sa.Column("public_model_id", sa.Text(), nullable=False),
    sa.Column("name", sa.Text(), nullable=False),
    sa.Column("description", sa.Text(), nullable=True),
    sa.Column("status", sa.Text(), nullable=False, server_default=sa.text("'draft'")),
    sa.Column("is_archived", sa.Boolean(), nullable=False, server_default=sa.false()),
    sa.Column("created_by_user_id", sa.Text(), nullable=True),
    *_timestamps(),
    sa.Column("started_at", UTCDateTime(), nullable=True),
    sa.Column("ended_at", UTCDateTime(), nullable=True),
    sa.CheckConstraint(f"status IN ({_status_list})", name="model_experiment_status_valid"),
    sa.CheckConstraint(
        _archive_check, name="model_experiment_active_not_archived"
    ),
    # The final arbiter of "one routing experiment per public id" under concurrency.
    sa.Index(
        "UQ_model_experiment_public_model_id_routing",
        "public_model_id",
        unique=True,
        postgresql_where=_routing_where,
        sqlite_where=_routing_where,
    ),
    sa.Index("IDX_model_experiment_status", "status"),
)

variant: Final = sa.Table(
    "model_experiment_variant",
    app_metadata,
    _uuid_pk(),
    sa.Column(
        "experiment_id",
        sa.Uuid(),
        sa.ForeignKey("model_experiment.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("label", sa.Text(), nullable=False),
    sa.Column("weight", sa.Integer(), nullable=False),
    *_timestamps(),
    sa.UniqueConstraint("experiment_id", "label", name="UQ_model_experiment_variant_experiment_label"),
    sa.CheckConstraint("weight > 0", name="model_experiment_variant_weight_positive"),
    sa.Index("IDX_model_experiment_variant_experiment_id", "experiment_id"),
)

#: Insert-only: a row is never updated or deleted (history stays attributable).
version: Final = sa.Table(
    "model_experiment_variant_version",
    app_metadata,
    _uuid_pk(),
    sa.Column(
        "variant_id",
        sa.Uuid(),
        sa.ForeignKey("model_experiment_variant.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("upstream", JSON_TYPE, nullable=False),
    sa.Column("encrypted_api_key", JSON_TYPE, nullable=False),
    sa.Column("effective_at", UTCDateTime(), nullable=False, server_default=_now()),
    sa.Column("created_by", sa.Text(), nullable=True),
    sa.Column("created_at", UTCDateTime(), nullable=False, server_default=_now()),
)
sa.Index(
    "IDX_model_experiment_variant_version_variant_effective",
    version.c.variant_id,
    version.c.effective_at.desc(),
)

APP_TABLES: Final = (experiment, variant, version)

#: ``model_experiment.metadata`` (jsonb NULL, no default, no CHECK): added by the gateway's
#: migration 0157 and present in gateway profiles whose ``metadata`` is not None. Not part of
#: ``experiment`` (a database on the older gateway has no such column, and every statement
#: built from ``experiment`` must work there); statements that read or write it use
#: :data:`experiment_with_metadata`, the same table seen with the column.
experiment_with_metadata: Final = experiment.to_metadata(sa.MetaData())
# none_as_null: a Python None is SQL NULL (what the admin API's "null clears" stores; the
# catalog then uses its defaults), never the JSON value null
experiment_with_metadata.append_column(sa.Column(
    METADATA_COLUMN, sa.JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql"), nullable=True))


def add_metadata_column_ddl(dialect_name: str) -> str:
    """The gateway's migration 0157 (``ALTER TABLE ... ADD COLUMN "metadata" jsonb``)."""
    col_type = "jsonb" if dialect_name == "postgresql" else "JSON"
    return f'ALTER TABLE model_experiment ADD COLUMN "{METADATA_COLUMN}" {col_type}'

# --------------------------------------------------------------------------------------
# expsync's own tables (created by the migrations in expsync.migrations, not from here)
# --------------------------------------------------------------------------------------

own_metadata: Final = sa.MetaData()

#: What expsync last applied per experiment key (ownership and drift detection).
managed: Final = sa.Table(
    "expsync_managed",
    own_metadata,
    sa.Column("key", sa.Text(), primary_key=True),
    sa.Column("experiment_id", sa.Uuid(), nullable=False),
    sa.Column("last_applied", JSON_TYPE, nullable=False),
    sa.Column("applied_at", UTCDateTime(), nullable=False, server_default=_now()),
    sa.UniqueConstraint("experiment_id", name="expsync_managed_experiment_id_key"),
)

#: Redis keys to refresh; written in the apply transaction, cleared after the refresh.
cache_outbox: Final = sa.Table(
    "expsync_cache_outbox",
    own_metadata,
    sa.Column(
        "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True
    ),
    sa.Column("cache_key", sa.Text(), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False, server_default=_now()),
)

#: One row per apply: who, which revision, which plan, what happened. Never secret material.
audit: Final = sa.Table(
    "expsync_audit",
    own_metadata,
    sa.Column(
        "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True
    ),
    sa.Column("started_at", UTCDateTime(), nullable=False, server_default=_now()),
    sa.Column("finished_at", UTCDateTime(), nullable=True),
    sa.Column("actor", sa.Text(), nullable=True),
    sa.Column("revision", sa.Text(), nullable=True),
    sa.Column("plan_digest", sa.Text(), nullable=False),
    sa.Column("summary", JSON_TYPE, nullable=False),
    sa.Column("outcome", sa.Text(), nullable=False),
    sa.Column("statements", sa.Integer(), nullable=True),
)

OWN_TABLES: Final = (managed, cache_outbox, audit)
