"""Row locks for writers that do not take expsync's apply lock (the gateway's admin UI).

The apply lock serializes expsync runs only. Between apply's re-plan and its writes, the admin
API could still insert a version, rename an experiment or change a weight, and apply would
write on top of a state nobody planned for. So, after the re-plan and before the first write,
:func:`lock_and_verify` (Postgres; on SQLite ``BEGIN IMMEDIATE`` already excludes every other
writer) runs three statements whatever the number of rows:

1. ``SELECT ... FROM model_experiment WHERE id = ANY(:ids) ORDER BY id FOR UPDATE`` - every
   existing experiment the plan changes, in id order (so two lockers never deadlock);
2. the same for all their variants (``FOR UPDATE`` conflicts with the ``FOR KEY SHARE`` lock a
   foreign-key check takes, so the admin API's version and variant inserts wait for apply's
   commit from here on);
3. a fresh read of each locked variant's current and pending version (a new statement, so it
   sees every insert that committed while statement 2 waited).

Then every locked row is compared with what the plan was computed from (the same columns
:mod:`expsync.state.reader` reads): any difference is :class:`RowsChanged` (exit 5, E509),
before anything is written. A writer that comes later waits for apply's commit and lands on
top of it, so no change is lost silently either way.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Connection

from expsync.errors import StalePlan
from expsync.model import ActualExperiment, ActualState
from expsync.plan.ops import Op, touches_gateway
from expsync.state.tables import experiment, variant, version

__all__ = ["LOCK_STATEMENTS", "RowsChanged", "lock_and_verify", "locked_experiment_ids"]

#: statements :func:`lock_and_verify` issues on Postgres when the plan changes existing rows
LOCK_STATEMENTS: Final = 3

_EXPERIMENT_COLUMNS: Final = (experiment.c.id, experiment.c.public_model_id, experiment.c.name,
                              experiment.c.description, experiment.c.status, experiment.c.is_archived,
                              experiment.c.created_at, experiment.c.updated_at, experiment.c.started_at,
                              experiment.c.ended_at, experiment.c.created_by_user_id)


class RowsChanged(StalePlan):
    """A row the plan changes was changed by another writer after the re-plan (exit 5)."""


def locked_experiment_ids(ops: Iterable[Op], actual: ActualState) -> list[uuid.UUID]:
    """Existing experiments whose gateway rows the ops change, in Postgres's uuid order."""
    ids = {op.experiment_id for op in ops if touches_gateway(op) and op.experiment_id in actual.experiments}
    return sorted(ids, key=lambda i: i.int)


def _any(column: sa.ColumnElement[Any], ids: list[uuid.UUID]) -> sa.ColumnElement[bool]:
    return column == sa.any_(sa.bindparam(None, ids, type_=ARRAY(sa.Uuid())))


def _newest_version(future: bool) -> sa.ScalarSelect[Any]:
    """The reader's pick (newest current / newest future-dated version) at the transaction's
    ``now()``, which is the clock the plan was computed with."""
    v = version.alias("v")
    when = v.c.effective_at > sa.func.now() if future else v.c.effective_at <= sa.func.now()
    return (sa.select(v.c.id).where(v.c.variant_id == variant.c.id, when)
            .order_by(v.c.effective_at.desc(), v.c.id.desc()).limit(1).correlate(variant).scalar_subquery())


def _expected_experiment(a: ActualExperiment) -> tuple[Any, ...]:
    return (a.id, a.public_model_id, a.name, a.description, a.status.value, a.is_archived, a.created_at,
            a.updated_at, a.started_at, a.ended_at, a.created_by_user_id)


def _expected_variants(a: ActualExperiment) -> set[tuple[Any, ...]]:
    out: set[tuple[Any, ...]] = set()
    for v in a.variants:
        out.add((v.id, v.experiment_id, v.label, v.weight))
        out.add(("version", v.id, v.current.id if v.current else None, v.pending.id if v.pending else None))
    return out


def lock_and_verify(conn: Connection, ops: Iterable[Op], actual: ActualState) -> int:
    """Lock and re-check the rows ``ops`` change; returns the number of statements issued."""
    ids = locked_experiment_ids(ops, actual)
    if conn.dialect.name != "postgresql" or not ids:
        return 0
    exp_rows = conn.execute(sa.select(*_EXPERIMENT_COLUMNS).where(_any(experiment.c.id, ids))
                            .order_by(experiment.c.id).with_for_update()).all()
    var_rows = conn.execute(sa.select(variant.c.id, variant.c.experiment_id, variant.c.label, variant.c.weight)
                            .where(_any(variant.c.experiment_id, ids)).order_by(variant.c.id).with_for_update()).all()
    ver_rows = conn.execute(sa.select(variant.c.id, _newest_version(False), _newest_version(True))
                            .where(_any(variant.c.experiment_id, ids))).all()

    fresh_exp = {r[0]: (*r[:5], bool(r[5]), *r[6:]) for r in exp_rows}
    owner = {r[0]: r[1] for r in var_rows}
    fresh_var: dict[uuid.UUID, set[tuple[Any, ...]]] = {i: set() for i in ids}
    for r in var_rows:
        fresh_var[r[1]].add(tuple(r))
    for r in ver_rows:
        if r[0] in owner:  # (the locks keep both statements on the same variants)
            fresh_var[owner[r[0]]].add(("version", *r))
    changed = [a.public_model_id for a in (actual.experiments[i] for i in ids)
               if fresh_exp.get(a.id) != _expected_experiment(a) or fresh_var[a.id] != _expected_variants(a)
               or len(ver_rows) != len(var_rows)]
    if changed:
        raise RowsChanged(
            f"another writer (e.g. the admin UI) changed the experiment, its variants or versions on "
            f"{', '.join(sorted(set(changed)))} after apply read them; nothing was applied - re-run plan [E509]")
    return LOCK_STATEMENTS
