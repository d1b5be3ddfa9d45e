"""Execute a plan's ops inside the caller's transaction, writing exactly what the gateway's
admin API would (spec §1.1, §2): ``updated_at = now()`` on every UPDATE, ``started_at`` only
when NULL, ``ended_at`` on completion, versions insert-only, encrypted keys in the exact
``{iv, data, authTag}`` format, ``created_by*`` from the actor (NULL when unset).

Order: :func:`execute` runs exactly the ops it is given, in that order. The planner's order
(:mod:`expsync.plan.order`) already puts ops of one type next to each other inside a phase,
so the executor only groups *consecutive* ops of the same type into one batch - multi-row
INSERTs, ``UPDATE ... WHERE id IN (...)`` or executemany for per-row values. The statement
count grows with the kinds of change, not with rows.

Every statement also checks what it expects (e.g. ``AND status = :from``): a row changed by a
writer that does not take expsync's lock makes the whole transaction fail rather than apply
on top of a state nobody planned for.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.engine import Connection

from expsync.crypto import encrypt_api_key
from expsync.errors import ApplyConflict, ExpsyncError
from expsync.model import KeyChange, Secret, SecretRef
from expsync.rules import CREATED_AS, Trigger
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
from expsync.plan.order import shape_of
from expsync.state.tables import (
    JSON_TYPE,
    METADATA_COLUMN,
    experiment,
    experiment_with_metadata,
    managed,
    utcnow,
    variant,
    version,
)


@dataclass(frozen=True, slots=True)
class ApplyContext:
    """Everything execution needs besides the connection; built once by the CLI."""

    actor: str | None
    secrets: Mapping[SecretRef, Secret]
    byok_key: bytes | None


@dataclass(frozen=True, slots=True)
class OpResult:
    op_type: str
    count: int
    statements: int


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
    """Run ``ops`` in the given order; each run of consecutive ops of one type is one batch.
    Returns one result per batch."""
    results = []
    for op_type, group in itertools.groupby(ops, key=type):
        items = list(group)
        n = executor_for(op_type)(conn, items, ctx)
        results.append(OpResult(op_type.__name__, len(items), n))
    return results


def _expect(result: sa.CursorResult[Any], expected: int, what: str) -> None:
    _expect_rows(result.rowcount, expected, what)


def _expect_rows(changed: int, expected: int, what: str) -> None:
    if changed != expected:
        raise ApplyConflict(
            f"{what}: expected to change {expected} row(s), changed {changed}; the database was "
            "changed by another writer during apply - nothing was applied, re-run plan"
        )


@executes(CreateExperiment)
def _create(conn: Connection, ops: Sequence[CreateExperiment], ctx: ApplyContext) -> int:
    # the metadata column exists only in gateway profiles that have metadata, and only such
    # profiles' YAML can set it: it is named only when some op has a value
    with_metadata = any(o.metadata is not None for o in ops)
    conn.execute(
        sa.insert(experiment_with_metadata if with_metadata else experiment),
        [
            {"id": o.experiment_id, "public_model_id": o.public_model_id, "name": o.name, "description": o.description,
             "status": CREATED_AS.value, "is_archived": o.archived, "created_by_user_id": ctx.actor}
            | ({METADATA_COLUMN: o.metadata} if with_metadata else {})
            for o in ops
        ],
    )
    return 1


@executes(UpdateFields)
def _update_fields(conn: Connection, ops: Sequence[UpdateFields], ctx: ApplyContext) -> int:
    # one statement per run of ops setting the same columns (the plan orders them together);
    # executemany for the per-row values
    statements = 0
    for cols, group in itertools.groupby(ops, key=shape_of):
        items = list(group)
        table = experiment_with_metadata if METADATA_COLUMN in cols.split(",") else experiment
        stmt = (
            sa.update(table)
            .where(table.c.id == sa.bindparam("b_id"))
            .values({c: sa.bindparam(f"b_{c}") for c in cols.split(",")} | {"updated_at": utcnow()})
        )
        rows = [{"b_id": o.experiment_id} | {f"b_{c.path}": c.after for c in o.changes} for o in items]
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
    # one statement per run of one edge, in plan order (the plan orders each edge's ops together)
    for _, run in itertools.groupby(ops, key=shape_of):
        group = list(run)
        trigger, src, dst = group[0].trigger, group[0].from_status, group[0].to_status
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
    for after, group in itertools.groupby(ops, key=lambda o: o.after):
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


@executes(InsertVersion)
def _insert_version(conn: Connection, ops: Sequence[InsertVersion], ctx: ApplyContext) -> int:
    copies = [o for o in ops if o.key_change is KeyChange.UNCHANGED and o.base_version_id is not None]
    fresh = [o for o in ops if not (o.key_change is KeyChange.UNCHANGED and o.base_version_id is not None)]
    statements = 0
    if copies:
        # upstream-only change: the previous version's ciphertext is copied as is (spec §2.3),
        # in SQL - the key never passes through Python. One INSERT ... SELECT joins the base
        # version rows with the new upstreams, passed as one parameter (two arrays on
        # Postgres, one JSON array on SQLite) whatever the number of swaps.
        wanted, base, upstream = _copy_rows(copies, conn.dialect.name)
        src = version.alias("src")
        stmt = sa.insert(version).from_select(
            ["variant_id", "upstream", "encrypted_api_key", "created_by"],
            sa.select(src.c.variant_id, upstream, src.c.encrypted_api_key, sa.bindparam("b_actor", ctx.actor, type_=sa.Text()))
            .join_from(src, wanted, src.c.id == base),
        ).returning(version.c.id)  # counted from the rows: INSERT ... SELECT reports no rowcount on psycopg
        _expect_rows(len(conn.execute(stmt).all()), len(copies), "copy api keys into new versions")
        statements += 1
    if fresh:
        conn.execute(sa.insert(version), [_fresh_row(o, ctx) for o in fresh])
        statements += 1
    return statements


def _copy_rows(ops: Sequence[InsertVersion], dialect: str) -> tuple[Any, Any, Any]:
    """A row source of (base version id, new upstream) for ``ops``, as one bound parameter."""
    if dialect == "postgresql":
        w = sa.func.unnest(
            sa.bindparam("b_bases", [o.base_version_id for o in ops], type_=ARRAY(sa.Uuid())),
            sa.bindparam("b_upstreams", [json.dumps(o.upstream_after) for o in ops], type_=ARRAY(sa.Text())),
        ).table_valued(sa.column("base", sa.Uuid()), sa.column("upstream", sa.Text())).render_derived("w")
        return w, w.c.base, sa.cast(w.c.upstream, JSONB)
    # SQLite stores a Uuid as 32 hex digits and JSON as text
    rows = json.dumps([[o.base_version_id.hex if o.base_version_id else None, o.upstream_after] for o in ops])
    w = sa.func.json_each(sa.bindparam("b_rows", rows, type_=sa.Text())).table_valued("value").alias("w")
    return w, sa.func.json_extract(w.c.value, "$[0]"), sa.func.json_extract(w.c.value, "$[1]")


def _fresh_row(o: InsertVersion, ctx: ApplyContext) -> dict[str, Any]:
    secret = ctx.secrets.get(o.api_key_ref)
    if secret is None or ctx.byok_key is None:
        raise ExpsyncError(f"api key for {o.experiment_key}/{o.label} was not resolved")
    return {"variant_id": o.variant_id, "upstream": o.upstream_after,
            "encrypted_api_key": encrypt_api_key(secret, ctx.byok_key), "created_by": ctx.actor}


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
