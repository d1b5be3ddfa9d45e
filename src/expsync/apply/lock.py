"""Row locks for writers that do not take expsync's apply lock (the gateway's admin UI).

The apply lock serializes expsync runs only. Between apply's re-plan and its writes, the admin
API could still insert a version, rename an experiment or change a weight, and apply would
write on top of a state nobody planned for. So, after the re-plan and before the first write,
:func:`lock_and_verify` (Postgres; on SQLite ``BEGIN IMMEDIATE`` already excludes every other
writer) runs three statements whatever the number of rows (in one round trip on a bare
psycopg connection; each still waits for the one before it on the server):

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
from typing import TYPE_CHECKING, Any, Final

from expsync.errors import StalePlan
from expsync.model import ActualExperiment, ActualState
from expsync.plan.ops import Op, touches_gateway
from expsync.state.connection import backend, run_text

if TYPE_CHECKING:
    from expsync.state.connection import AnyConnection

__all__ = ["LOCK_STATEMENTS", "RowsChanged", "lock_and_verify", "locked_experiment_ids"]

#: statements :func:`lock_and_verify` issues on Postgres when the plan changes existing rows
LOCK_STATEMENTS: Final = 3

#: the columns the reader reads, in the order of :func:`_expected_experiment`
_LOCK_EXPERIMENTS: Final = (
    "SELECT id, public_model_id, name, description, status, is_archived, created_at, updated_at, started_at, "
    "ended_at, created_by_user_id FROM model_experiment WHERE id = ANY(:ids) ORDER BY id FOR UPDATE")
_LOCK_VARIANTS: Final = (
    "SELECT id, experiment_id, label, weight FROM model_experiment_variant WHERE experiment_id = ANY(:ids) "
    "ORDER BY id FOR UPDATE")


def _newest_version(future: bool) -> str:
    """The reader's pick (newest current / newest future-dated version) at the transaction's
    ``now()``, which is the clock the plan was computed with."""
    when = "v.effective_at > now()" if future else "v.effective_at <= now()"
    return (f"(SELECT v.id FROM model_experiment_variant_version AS v WHERE v.variant_id = "
            f"model_experiment_variant.id AND {when} ORDER BY v.effective_at DESC, v.id DESC LIMIT 1)")


_READ_VERSIONS: Final = (f"SELECT model_experiment_variant.id, {_newest_version(False)}, {_newest_version(True)} "
                         "FROM model_experiment_variant WHERE model_experiment_variant.experiment_id = ANY(:ids)")


class RowsChanged(StalePlan):
    """A row the plan changes was changed by another writer after the re-plan (exit 5)."""


def locked_experiment_ids(ops: Iterable[Op], actual: ActualState) -> list[uuid.UUID]:
    """Existing experiments whose gateway rows the ops change, in Postgres's uuid order."""
    ids = {op.experiment_id for op in ops if touches_gateway(op) and op.experiment_id in actual.experiments}
    return sorted(ids, key=lambda i: i.int)


def _expected_experiment(a: ActualExperiment) -> tuple[Any, ...]:
    return (a.id, a.public_model_id, a.name, a.description, a.status.value, a.is_archived, a.created_at,
            a.updated_at, a.started_at, a.ended_at, a.created_by_user_id)


def _expected_variants(a: ActualExperiment) -> set[tuple[Any, ...]]:
    out: set[tuple[Any, ...]] = set()
    for v in a.variants:
        out.add((v.id, v.experiment_id, v.label, v.weight))
        out.add(("version", v.id, v.current.id if v.current else None, v.pending.id if v.pending else None))
    return out


def lock_and_verify(conn: AnyConnection, ops: Iterable[Op], actual: ActualState) -> int:
    """Lock and re-check the rows ``ops`` change; returns the number of statements issued."""
    ids = locked_experiment_ids(ops, actual)
    if backend(conn) != "postgresql" or not ids:
        return 0
    params = {"ids": ids}
    exp, var, ver = run_text(conn, [(_LOCK_EXPERIMENTS, params), (_LOCK_VARIANTS, params), (_READ_VERSIONS, params)])
    exp_rows, var_rows, ver_rows = exp.rows, var.rows, ver.rows

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
