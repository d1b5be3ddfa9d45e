"""The reader's four statements built with SQLAlchemy Core, run one after the other: the
path for SQLite (and any SQLAlchemy dialect); Postgres reads them pipelined
(:mod:`~expsync.state.reader`, which gives equal states). Id lists travel as one parameter: a
Postgres array (``= ANY(:ids)``) or, on SQLite, a JSON array expanded with ``json_each``
(SQLite caps bound variables per statement, 32,766 by default, so one parameter per id would
not scale).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Collection
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Connection

from expsync.model import ActualState
from expsync.state.reader import assemble
from expsync.state.tables import (
    ROUTING_STATUS_VALUES,
    UTCDateTime,
    experiment,
    experiment_with_metadata,
    managed,
    variant,
    version,
)

__all__ = ["EXPERIMENT_COLUMNS", "MANAGED_COLUMNS", "VARIANT_COLUMNS", "VERSION_COLUMNS", "read_core"]

# Column order = the positional order of the model dataclasses' fields (see reader.assemble).
EXPERIMENT_COLUMNS = (
    experiment.c.id,
    experiment.c.public_model_id,
    experiment.c.name,
    experiment.c.description,
    experiment.c.status,
    experiment.c.is_archived,
    experiment.c.created_at,
    experiment.c.updated_at,
    experiment.c.started_at,
    experiment.c.ended_at,
    experiment.c.created_by_user_id,
)
VARIANT_COLUMNS = (variant.c.id, variant.c.experiment_id, variant.c.label, variant.c.weight)
VERSION_COLUMNS = (
    version.c.id,
    version.c.variant_id,
    version.c.upstream,
    version.c.encrypted_api_key,
    version.c.effective_at,
    version.c.created_by,
    version.c.created_at,
)
MANAGED_COLUMNS = (managed.c.key, managed.c.experiment_id, managed.c.last_applied, managed.c.applied_at)


def read_core(
    conn: Connection,
    experiment_ids: Collection[uuid.UUID],
    public_model_ids: Collection[str],
    now: datetime,
    with_metadata: bool = False,
) -> ActualState:
    """The four statements built with SQLAlchemy Core, one after the other (any dialect)."""
    dialect = conn.dialect.name

    t = experiment_with_metadata if with_metadata else experiment
    columns = [t.c[c.name] for c in EXPERIMENT_COLUMNS] + ([t.c.metadata] if with_metadata else [])
    exp_rows = conn.execute(
        sa.select(*columns).where(
            sa.or_(
                _in_uuids(t.c.id, experiment_ids, dialect),
                sa.and_(
                    _in_texts(t.c.public_model_id, public_model_ids, dialect),
                    t.c.status.in_(ROUTING_STATUS_VALUES),
                ),
                t.c.id.in_(sa.select(managed.c.experiment_id)),
            )
        )
    ).all()
    found = [row[0] for row in exp_rows]

    var_rows = conn.execute(
        sa.select(*VARIANT_COLUMNS).where(_in_uuids(variant.c.experiment_id, found, dialect))
    ).all()

    now_param = sa.bindparam("now", now, type_=UTCDateTime())
    wanted_variants = _in_uuids(variant.c.experiment_id, found, dialect)
    picked = sa.union_all(
        sa.select(_newest_version(False, now_param)).where(wanted_variants),
        sa.select(_newest_version(True, now_param)).where(wanted_variants),
    )
    ver_rows = conn.execute(sa.select(*VERSION_COLUMNS).where(version.c.id.in_(picked))).all()

    managed_rows = conn.execute(sa.select(*MANAGED_COLUMNS)).all()

    return assemble(exp_rows, var_rows, ver_rows, managed_rows, now)


def _newest_version(newer_than_now: bool, now: sa.BindParameter[datetime]) -> sa.ScalarSelect[Any]:
    """Id of the newest version of the enclosing query's variant: the newest future-dated
    one (``effective_at > now``) if ``newer_than_now``, else the newest other one.

    One probe of IDX_model_experiment_variant_version_variant_effective per variant
    (sorting only that variant's few rows for the id tie-break) instead of ranking every
    version: measured at 5,000 x 3 x 10 rows, as fast as ROW_NUMBER() on Postgres and
    three times faster on SQLite.
    """
    v = version.alias("v")
    return (
        sa.select(v.c.id)
        .where(v.c.variant_id == variant.c.id, v.c.effective_at > now if newer_than_now else v.c.effective_at <= now)
        .order_by(v.c.effective_at.desc(), v.c.id.desc())
        .limit(1)
        .correlate(variant)
        .scalar_subquery()
    )


def _in_uuids(
    column: sa.ColumnElement[Any], ids: Collection[uuid.UUID], dialect: str
) -> sa.ColumnElement[bool]:
    """``column IN ids`` with the whole list as one bound parameter."""
    if dialect == "postgresql":
        return column == sa.any_(sa.bindparam(None, list(ids), type_=ARRAY(sa.Uuid())))
    # SQLite stores Uuid as 32 lower-case hex digits.
    return _in_json_each(column, [i.hex for i in ids])


def _in_texts(
    column: sa.ColumnElement[Any], values: Collection[str], dialect: str
) -> sa.ColumnElement[bool]:
    """``column IN values`` with the whole list as one bound parameter."""
    if dialect == "postgresql":
        return column == sa.any_(sa.bindparam(None, list(values), type_=ARRAY(sa.Text())))
    return _in_json_each(column, list(values))


def _in_json_each(column: sa.ColumnElement[Any], values: list[str]) -> sa.ColumnElement[bool]:
    each = sa.func.json_each(sa.bindparam(None, json.dumps(values), type_=sa.Text()))
    return column.in_(sa.select(each.table_valued("value").c.value))


