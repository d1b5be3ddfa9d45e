"""Execute a plan's ops inside the caller's transaction, writing exactly what the gateway's
admin API would (spec §1.1, §2): ``updated_at = now()`` on every UPDATE, ``started_at`` only
when NULL, ``ended_at`` on completion, versions insert-only, encrypted keys in the exact
``{iv, data, authTag}`` format, ``created_by*`` from the actor (NULL when unset).

Batching: within one phase of :mod:`expsync.plan.order`, ops of different experiments are
independent (no row of one experiment refers to another's), so the executor runs each phase
as one batch per op type - multi-row INSERTs, ``UPDATE ... WHERE id IN (...)`` or executemany
for per-row values. The statement count grows with the kinds of change, not with rows.

Every statement also checks what it expects (e.g. ``AND status = :from``): a row changed by a
writer that does not take expsync's lock makes the whole transaction fail rather than apply
on top of a state nobody planned for.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from expsync.crypto import encrypt_api_key
from expsync.errors import ApplyConflict, ExpsyncError
from expsync.model import ActualState, JsonObject, KeyChange, Secret, SecretRef, Status
from expsync.plan.machine import Trigger
from expsync.plan.ops import (
    AddVariant,
    ChangeWeight,
    CreateExperiment,
    DeleteExperiment,
    InsertVersion,
    Op,
    RecordManaged,
    RelabelVariant,
    ReleaseExperiment,
    RemoveVariant,
    SetArchived,
    Transition,
    UpdateFields,
)
from expsync.plan.order import OP_RANK, phase_of
from expsync.secrets.refs import parse_ref
from expsync.state.tables import experiment, managed, utcnow, variant, version


@dataclass(frozen=True, slots=True)
class ApplyContext:
    """Everything execution needs besides the connection; built once by the CLI."""

    actor: str | None
    #: the actual state the plan was computed from, read inside this transaction
    actual: ActualState
    secrets: Mapping[SecretRef, Secret]
    byok_key: bytes | None


@dataclass(frozen=True, slots=True)
class OpResult:
    op_type: str
    count: int
    statements: int


class _Expect(ExpsyncError):
    exit_code = 5


Executor = Callable[[Connection, Sequence[Any], ApplyContext], int]
EXECUTORS: dict[type, Executor] = {}


def executes(op_type: type) -> Callable[[Executor], Executor]:
    def register(fn: Executor) -> Executor:
        if op_type in EXECUTORS:
            raise RuntimeError(f"duplicate executor for {op_type.__name__}")
        EXECUTORS[op_type] = fn
        return fn

    return register


def executor_for(op_type: type) -> Executor:
    try:
        return EXECUTORS[op_type]
    except KeyError:
        raise NotImplementedError(f"no executor for {op_type.__name__}") from None


def execute(ops: Sequence[Op], conn: Connection, ctx: ApplyContext) -> list[OpResult]:
    """Run ``ops`` (in plan order) as batches of (phase, op type); return one result per batch."""
    results = []
    batches = sorted(ops, key=lambda op: (phase_of(op), OP_RANK[type(op)]))
    for (_, _), group in itertools.groupby(batches, key=lambda op: (phase_of(op), OP_RANK[type(op)])):
        items = list(group)
        n = executor_for(type(items[0]))(conn, items, ctx)
        results.append(OpResult(type(items[0]).__name__, len(items), n))
    return results


def _expect(result: sa.CursorResult[Any], expected: int, what: str) -> None:
    if result.rowcount != expected:
        raise ApplyConflict(
            f"{what}: expected to change {expected} row(s), changed {result.rowcount}; the database was "
            "changed by another writer during apply - nothing was applied, re-run plan"
        )


@executes(CreateExperiment)
def _create(conn: Connection, ops: Sequence[CreateExperiment], ctx: ApplyContext) -> int:
    conn.execute(
        sa.insert(experiment),
        [
            {"id": o.experiment_id, "public_model_id": o.public_model_id, "name": o.name, "description": o.description,
             "status": Status.DRAFT.value, "is_archived": o.archived, "created_by_user_id": ctx.actor}
            for o in ops
        ],
    )
    return 1


@executes(UpdateFields)
def _update_fields(conn: Connection, ops: Sequence[UpdateFields], ctx: ApplyContext) -> int:
    # one statement per distinct set of columns; executemany for the per-row values
    statements = 0
    by_cols: dict[tuple[str, ...], list[UpdateFields]] = {}
    for o in ops:
        by_cols.setdefault(tuple(sorted(c.path for c in o.changes)), []).append(o)
    for cols, group in by_cols.items():
        stmt = (
            sa.update(experiment)
            .where(experiment.c.id == sa.bindparam("b_id"))
            .values({c: sa.bindparam(f"b_{c}") for c in cols} | {"updated_at": utcnow()})
        )
        rows = [{"b_id": o.experiment_id} | {f"b_{c.path}": c.after for c in o.changes} for o in group]
        _expect(conn.execute(stmt, rows), len(rows), "update experiment fields")
        statements += 1
    return statements


_TRANSITION_VALUES: Final[Mapping[Trigger, dict[str, Any]]] = {
    # activation sets started_at only if it is NULL; completion sets ended_at (spec §1.1)
    Trigger.ACTIVATE: {"started_at": sa.func.coalesce(experiment.c.started_at, utcnow())},
    Trigger.PAUSE: {},
    Trigger.COMPLETE: {"ended_at": utcnow()},
}


@executes(Transition)
def _transition(conn: Connection, ops: Sequence[Transition], ctx: ApplyContext) -> int:
    statements = 0
    keyf = lambda o: (o.trigger, o.from_status, o.to_status)  # noqa: E731
    for (trigger, src, dst), group in itertools.groupby(sorted(ops, key=keyf), key=keyf):
        ids = [o.experiment_id for o in group]
        stmt = (
            sa.update(experiment)
            .where(experiment.c.id.in_(ids), experiment.c.status == src.value)
            .values(status=dst.value, updated_at=utcnow(), **_TRANSITION_VALUES[trigger])
        )
        _expect(conn.execute(stmt), len(ids), f"{trigger} {src} -> {dst}")
        statements += 1
    return statements


@executes(SetArchived)
def _archive(conn: Connection, ops: Sequence[SetArchived], ctx: ApplyContext) -> int:
    statements = 0
    for after, group in itertools.groupby(sorted(ops, key=lambda o: o.after), key=lambda o: o.after):
        ids = [o.experiment_id for o in group]
        stmt = sa.update(experiment).where(experiment.c.id.in_(ids)).values(is_archived=after, updated_at=utcnow())
        _expect(conn.execute(stmt), len(ids), "archive" if after else "unarchive")
        statements += 1
    return statements


@executes(AddVariant)
def _add_variant(conn: Connection, ops: Sequence[AddVariant], ctx: ApplyContext) -> int:
    conn.execute(
        sa.insert(variant),
        [{"id": o.variant_id, "experiment_id": o.experiment_id, "label": o.label, "weight": o.weight} for o in ops],
    )
    return 1


@executes(RemoveVariant)
def _remove_variant(conn: Connection, ops: Sequence[RemoveVariant], ctx: ApplyContext) -> int:
    ids = [o.variant_id for o in ops]
    _expect(conn.execute(sa.delete(variant).where(variant.c.id.in_(ids))), len(ids), "remove variants")
    return 1


def _update_variants(conn: Connection, rows: list[dict[str, Any]], column: str, what: str) -> int:
    stmt = (
        sa.update(variant)
        .where(variant.c.id == sa.bindparam("b_id"))
        .values({column: sa.bindparam("b_value"), "updated_at": utcnow()})
    )
    _expect(conn.execute(stmt, rows), len(rows), what)
    return 1


@executes(RelabelVariant)
def _relabel(conn: Connection, ops: Sequence[RelabelVariant], ctx: ApplyContext) -> int:
    # Two steps, because labels may be swapped or rotated between variants of one experiment
    # and (experiment_id, label) is unique at every statement: first a placeholder unique per
    # variant ("~" + its id in hex: 33 characters, within the 1-64 label rule), then the final
    # labels. Both run inside the transaction; nobody outside sees the placeholder.
    _update_variants(conn, [{"b_id": o.variant_id, "b_value": "~" + o.variant_id.hex} for o in ops],
                     "label", "relabel variants")
    _update_variants(conn, [{"b_id": o.variant_id, "b_value": o.after} for o in ops], "label", "relabel variants")
    return 2


@executes(ChangeWeight)
def _weight(conn: Connection, ops: Sequence[ChangeWeight], ctx: ApplyContext) -> int:
    return _update_variants(conn, [{"b_id": o.variant_id, "b_value": o.after} for o in ops], "weight", "change weights")


def _stored_keys(actual: ActualState) -> dict[uuid.UUID, JsonObject]:
    out = {}
    for a in actual.experiments.values():
        for v in a.variants:
            for ver in (v.current, v.pending):
                if ver is not None:
                    out[ver.id] = ver.encrypted_api_key
    return out


@executes(InsertVersion)
def _insert_version(conn: Connection, ops: Sequence[InsertVersion], ctx: ApplyContext) -> int:
    stored = _stored_keys(ctx.actual)
    rows = []
    for o in ops:
        enc: Mapping[str, Any]
        if o.key_change is KeyChange.UNCHANGED and o.base_version_id in stored:
            # upstream-only change: the previous ciphertext is copied as is (spec §2.3)
            enc = stored[o.base_version_id]
        else:
            secret = ctx.secrets.get(parse_ref(o.api_key_ref))
            if secret is None or ctx.byok_key is None:
                raise ExpsyncError(f"api key for {o.experiment_key}/{o.label} was not resolved")
            enc = encrypt_api_key(secret, ctx.byok_key)
        rows.append({"variant_id": o.variant_id, "upstream": o.upstream_after, "encrypted_api_key": enc,
                     "created_by": ctx.actor})
    conn.execute(sa.insert(version), rows)
    return 1


@executes(DeleteExperiment)
def _delete(conn: Connection, ops: Sequence[DeleteExperiment], ctx: ApplyContext) -> int:
    ids = [o.experiment_id for o in ops]
    # each row must still be in the status the plan saw (the planner decided it may be deleted)
    expected = sa.or_(*[sa.and_(experiment.c.id == o.experiment_id, experiment.c.status == o.status.value) for o in ops])
    _expect(conn.execute(sa.delete(experiment).where(experiment.c.id.in_(ids), expected)), len(ids), "delete drafts")
    conn.execute(sa.delete(managed).where(managed.c.experiment_id.in_(ids)))
    return 2


@executes(ReleaseExperiment)
def _release(conn: Connection, ops: Sequence[ReleaseExperiment], ctx: ApplyContext) -> int:
    conn.execute(sa.delete(managed).where(managed.c.key.in_([o.experiment_key for o in ops])))
    return 1


@executes(RecordManaged)
def _record(conn: Connection, ops: Sequence[RecordManaged], ctx: ApplyContext) -> int:
    # delete-then-insert instead of an upsert: a key rename (same id pinned under a new key)
    # would otherwise collide on the experiment_id unique constraint
    keys = [o.experiment_key for o in ops]
    ids = [o.experiment_id for o in ops]
    conn.execute(sa.delete(managed).where(sa.or_(managed.c.key.in_(keys), managed.c.experiment_id.in_(ids))))
    conn.execute(
        sa.insert(managed),
        [{"key": o.experiment_key, "experiment_id": o.experiment_id, "last_applied": o.last_applied} for o in ops],
    )
    return 2
