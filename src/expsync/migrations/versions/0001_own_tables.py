"""expsync's own tables: managed records, cache outbox, audit.

Revision ID: 0001
Revises:
Create Date: 2026-11-26

Frozen: never edit a released migration; add a new revision instead. Types are spelled out
here (not imported from expsync.state.tables) so later model changes cannot rewrite history.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_JSON = sa.JSON().with_variant(JSONB(), "postgresql")
_TS = sa.DateTime(timezone=True)
_SERIAL = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _now() -> sa.TextClause:
    # Same text form as expsync.state.tables.utcnow, spelled out to keep this file frozen.
    if op.get_bind().dialect.name == "sqlite":
        return sa.text("(strftime('%Y-%m-%d %H:%M:%f000', 'now'))")
    return sa.text("now()")


def upgrade() -> None:
    now = _now()
    op.create_table(
        "expsync_managed",
        sa.Column("key", sa.Text(), primary_key=True),
        sa.Column("experiment_id", sa.Uuid(), nullable=False),
        sa.Column("last_applied", _JSON, nullable=False),
        sa.Column("applied_at", _TS, nullable=False, server_default=now),
        sa.UniqueConstraint("experiment_id", name="expsync_managed_experiment_id_key"),
    )
    op.create_table(
        "expsync_cache_outbox",
        sa.Column("id", _SERIAL, primary_key=True, autoincrement=True),
        sa.Column("cache_key", sa.Text(), nullable=False),
        sa.Column("created_at", _TS, nullable=False, server_default=now),
    )
    op.create_table(
        "expsync_audit",
        sa.Column("id", _SERIAL, primary_key=True, autoincrement=True),
        sa.Column("started_at", _TS, nullable=False, server_default=now),
        sa.Column("finished_at", _TS, nullable=True),
        sa.Column("actor", sa.Text(), nullable=True),
        sa.Column("revision", sa.Text(), nullable=True),
        sa.Column("plan_digest", sa.Text(), nullable=False),
        sa.Column("summary", _JSON, nullable=False),
        sa.Column("outcome", sa.Text(), nullable=False),
        sa.Column("statements", sa.Integer(), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("expsync_audit")
    op.drop_table("expsync_cache_outbox")
    op.drop_table("expsync_managed")
