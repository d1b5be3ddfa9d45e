"""Execute a plan's ops inside the caller's transaction, writing exactly what the gateway's
admin API would (spec §1.1, §2): ``updated_at = now()`` on every UPDATE, ``started_at`` only
when NULL, ``ended_at`` on completion, versions insert-only, encrypted keys in the exact
``{iv, data, authTag}`` format, ``created_by*`` from the actor (NULL when unset).

Order: :func:`execute` runs exactly the ops it is given, in that order. The planner's order
(:mod:`expsync.plan.order`) already puts ops of one type next to each other inside a phase,
so the executor only groups *consecutive* ops of the same type into one batch, and every batch
is a fixed number of multi-row statements: the rows travel as one bound parameter, a JSON
array (:func:`_rows`: ``jsonb_to_recordset`` on Postgres, ``json_each`` on SQLite) into ``INSERT ... SELECT``, ``UPDATE ... FROM`` or ``... IN (SELECT ...)``. What the
server executes grows with the kinds of change, never with rows, and the statement text does
not depend on the number of rows either.

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
from sqlalchemy.dialects.postgresql import JSONB
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


# -- rows as one parameter ---------------------------------------------------------------

#: the value kinds a row source carries, with their Postgres column types
_PG_TYPES: Final[Mapping[str, sa.types.TypeEngine[Any]]] = {
    "uuid": sa.Uuid(), "text": sa.Text(), "int": sa.Integer(), "bool": sa.Boolean(), "json": JSONB(),
}


def _json_text(value: Any) -> str | None:
    return None if value is None else json.dumps(value)


def _rows(conn: Connection, name: str, columns: Sequence[tuple[str, str]],
          rows: Sequence[Sequence[Any]]) -> tuple[Any, dict[str, Any]]:
    """``rows`` as a row source bound as ONE text parameter (a JSON array), whatever their
    number: returns the source and one SQL expression per column name.

    ``columns`` are (name, kind) with kind one of :data:`_PG_TYPES`. Postgres:
    ``jsonb_to_recordset(CAST(:name_rows AS JSONB)) AS name(col1 UUID, col2 JSONB, ...)``
    (JSON values stay nested: no per-value encoding; a JSON null is SQL NULL). SQLite:
    ``json_each(:name_rows)``, each value read with ``json_extract`` in the form SQLAlchemy
    itself stores it (a Uuid as 32 hex digits, JSON as its text, a boolean as 0/1).

    One string, not one array per column: psycopg dumps a list parameter element by element
    in Python (and escapes every quote of a JSON text inside an array literal)."""
    if conn.dialect.name == "postgresql":
        uuids = [i for i, (_, kind) in enumerate(columns) if kind == "uuid"]
        names = [col for col, _ in columns]
        docs = []
        for r in rows:
            values = list(r)
            for i in uuids:
                values[i] = None if values[i] is None else str(values[i])
            docs.append(dict(zip(names, values)))
        param = sa.cast(sa.bindparam(f"{name}_rows", json.dumps(docs), type_=sa.Text()), JSONB)
        src = sa.func.jsonb_to_recordset(param).table_valued(
            *[sa.column(col, _PG_TYPES[kind]) for col, kind in columns]).render_derived(name, with_types=True)
        return src, {col: src.c[col] for col, _ in columns}
    encode: Mapping[str, Callable[[Any], Any]] = {
        "uuid": lambda v: None if v is None else v.hex, "json": _json_text, "bool": lambda v: None if v is None else int(v),
        "text": lambda v: v, "int": lambda v: v,
    }
    data = json.dumps([[encode[kind](r[i]) for i, (_, kind) in enumerate(columns)] for r in rows])
    src = sa.func.json_each(sa.bindparam(f"{name}_rows", data, type_=sa.Text())).table_valued("value").alias(name)
    return src, {col: sa.func.json_extract(src.c.value, f"$[{i}]") for i, (col, _) in enumerate(columns)}


def _insert(conn: Connection, table: sa.Table, columns: Sequence[tuple[str, str]],
            rows: Sequence[Sequence[Any]], *, constants: Mapping[str, Any] | None = None) -> int:
    """One ``INSERT INTO table (...) SELECT ... FROM <rows>``; ``constants`` are the same for
    every row (one parameter each). Returns the number of statements (1)."""
    src, cols = _rows(conn, "w", columns, rows)
    consts = dict(constants or {})
    names = [c for c, _ in columns] + list(consts)
    values = [cols[c] for c, _ in columns] + [sa.bindparam(f"k_{c}", v, type_=table.c[c].type) for c, v in consts.items()]
    conn.execute(sa.insert(table).from_select(names, sa.select(*values).select_from(src)))
    return 1


def _update(conn: Connection, table: sa.Table, columns: Sequence[tuple[str, str]], rows: Sequence[Sequence[Any]],
            what: str, *, extra: Mapping[str, Any] | None = None) -> int:
    """One ``UPDATE table SET col = w.col, ... FROM <rows> w WHERE table.id = w.id`` (the
    first column is ``id``); every row must match exactly one row of ``table``."""
    src, cols = _rows(conn, "w", columns, rows)
    stmt = (
        sa.update(table)
        .where(table.c.id == cols["id"])
        .values({c: cols[c] for c, _ in columns[1:]} | dict(extra or {}))
    )
    # UPDATE ... FROM: Postgres and SQLite (3.33+) alike
    _expect(conn.execute(stmt), len(rows), what)
    return 1


def _ids(conn: Connection, ids: Sequence[Any], kind: str = "uuid", *, name: str = "ids") -> Any:
    """A subquery yielding ``ids`` (one parameter whatever their number), for ``col IN (...)``;
    ``name`` must be unique within the statement."""
    src, cols = _rows(conn, name, [("v", kind)], [(i,) for i in ids])
    return sa.select(cols["v"]).select_from(src).scalar_subquery()


@executes(CreateExperiment)
def _create(conn: Connection, ops: Sequence[CreateExperiment], ctx: ApplyContext) -> int:
    # the metadata column exists only in gateway profiles that have metadata, and only such
    # profiles' YAML can set it: it is named only when some op has a value
    with_metadata = any(o.metadata is not None for o in ops)
    columns = [("id", "uuid"), ("public_model_id", "text"), ("name", "text"), ("description", "text"),
               ("is_archived", "bool")] + ([(METADATA_COLUMN, "json")] if with_metadata else [])
    rows = [(o.experiment_id, o.public_model_id, o.name, o.description, o.archived)
            + ((o.metadata,) if with_metadata else ()) for o in ops]
    return _insert(conn, experiment_with_metadata if with_metadata else experiment, columns, rows,
                   constants={"status": CREATED_AS.value, "created_by_user_id": ctx.actor})


#: the kind of each column UpdateFields may set
_FIELD_KINDS: Final = {"public_model_id": "text", "name": "text", "description": "text", METADATA_COLUMN: "json"}


@executes(UpdateFields)
def _update_fields(conn: Connection, ops: Sequence[UpdateFields], ctx: ApplyContext) -> int:
    # one statement per run of ops setting the same columns (the plan orders them together)
    statements = 0
    for cols, group in itertools.groupby(ops, key=shape_of):
        names = cols.split(",")
        table = experiment_with_metadata if METADATA_COLUMN in names else experiment
        rows = []
        for o in group:
            after = {c.path: c.after for c in o.changes}
            rows.append((o.experiment_id, *[after[c] for c in names]))
        statements += _update(conn, table, [("id", "uuid")] + [(c, _FIELD_KINDS[c]) for c in names], rows,
                              "update experiment fields", extra={"updated_at": utcnow()})
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
            .where(experiment.c.id.in_(_ids(conn, ids)), experiment.c.status == src.value)
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
        stmt = (sa.update(experiment).where(experiment.c.id.in_(_ids(conn, ids)))
                .values(is_archived=after, updated_at=utcnow()))
        _expect(conn.execute(stmt), len(ids), "archive" if after else "unarchive")
        statements += 1
    return statements


@executes(AddVariant)
def _add_variant(conn: Connection, ops: Sequence[AddVariant], ctx: ApplyContext) -> int:
    return _insert(conn, variant, [("id", "uuid"), ("experiment_id", "uuid"), ("label", "text"), ("weight", "int")],
                   [(o.variant_id, o.experiment_id, o.label, o.weight) for o in ops])


@executes(RemoveVariant)
def _remove_variant(conn: Connection, ops: Sequence[RemoveVariant], ctx: ApplyContext) -> int:
    ids = [o.variant_id for o in ops]
    _expect(conn.execute(sa.delete(variant).where(variant.c.id.in_(_ids(conn, ids)))), len(ids), "remove variants")
    return 1


def _update_variants(conn: Connection, rows: list[tuple[Any, Any]], column: str, kind: str, what: str) -> int:
    return _update(conn, variant, [("id", "uuid"), (column, kind)], rows, what, extra={"updated_at": utcnow()})


@executes(RelabelVariant)
def _relabel(conn: Connection, ops: Sequence[RelabelVariant], ctx: ApplyContext) -> int:
    # Two steps, because labels may be swapped or rotated between variants of one experiment
    # and (experiment_id, label) is unique at every statement: first a placeholder unique per
    # variant ("~" + its id in hex: 33 characters, within the 1-64 label rule), then the final
    # labels. Both run inside the transaction; nobody outside sees the placeholder.
    _update_variants(conn, [(o.variant_id, "~" + o.variant_id.hex) for o in ops], "label", "text", "relabel variants")
    _update_variants(conn, [(o.variant_id, o.after) for o in ops], "label", "text", "relabel variants")
    return 2


@executes(ChangeWeight)
def _weight(conn: Connection, ops: Sequence[ChangeWeight], ctx: ApplyContext) -> int:
    return _update_variants(conn, [(o.variant_id, o.after) for o in ops], "weight", "int", "change weights")


@executes(InsertVersion)
def _insert_version(conn: Connection, ops: Sequence[InsertVersion], ctx: ApplyContext) -> int:
    copies = [o for o in ops if o.key_change is KeyChange.UNCHANGED and o.base_version_id is not None]
    fresh = [o for o in ops if not (o.key_change is KeyChange.UNCHANGED and o.base_version_id is not None)]
    statements = 0
    if copies:
        # upstream-only change: the previous version's ciphertext is copied as is (spec §2.3),
        # in SQL - the key never passes through Python. One INSERT ... SELECT joins the base
        # version rows with the new upstreams (:func:`_rows`) whatever the number of swaps.
        wanted, cols = _rows(conn, "w", [("base", "uuid"), ("upstream", "json")],
                             [(o.base_version_id, o.upstream_after) for o in copies])
        src = version.alias("src")
        stmt = sa.insert(version).from_select(
            ["variant_id", "upstream", "encrypted_api_key", "created_by"],
            sa.select(src.c.variant_id, cols["upstream"], src.c.encrypted_api_key,
                      sa.bindparam("b_actor", ctx.actor, type_=sa.Text()))
            .join_from(src, wanted, src.c.id == cols["base"]),
        ).returning(version.c.id)  # counted from the rows: INSERT ... SELECT reports no rowcount on psycopg
        _expect_rows(len(conn.execute(stmt).all()), len(copies), "copy api keys into new versions")
        statements += 1
    if fresh:
        statements += _insert(conn, version, [("variant_id", "uuid"), ("upstream", "json"), ("encrypted_api_key", "json")],
                              [_fresh_row(o, ctx) for o in fresh], constants={"created_by": ctx.actor})
    return statements


def _fresh_row(o: InsertVersion, ctx: ApplyContext) -> tuple[Any, ...]:
    secret = ctx.secrets.get(o.api_key_ref)
    if secret is None or ctx.byok_key is None:
        raise ExpsyncError(f"api key for {o.experiment_key}/{o.label} was not resolved")
    return (o.variant_id, o.upstream_after, encrypt_api_key(secret, ctx.byok_key))


@executes(DeleteExperiment)
def _delete(conn: Connection, ops: Sequence[DeleteExperiment], ctx: ApplyContext) -> int:
    ids = [o.experiment_id for o in ops]
    # each row must still be in the status the plan saw (the planner decided it may be deleted)
    src, cols = _rows(conn, "w", [("id", "uuid"), ("status", "text")], [(o.experiment_id, o.status.value) for o in ops])
    seen = sa.tuple_(experiment.c.id, experiment.c.status).in_(sa.select(cols["id"], cols["status"]).select_from(src))
    _expect(conn.execute(sa.delete(experiment).where(seen)), len(ids), "delete drafts")
    conn.execute(sa.delete(managed).where(managed.c.experiment_id.in_(_ids(conn, ids))))
    return 2


@executes(ReleaseExperiment)
def _release(conn: Connection, ops: Sequence[ReleaseExperiment], ctx: ApplyContext) -> int:
    conn.execute(sa.delete(managed).where(managed.c.key.in_(_ids(conn, [o.experiment_key for o in ops], "text"))))
    return 1


@executes(RecordManaged)
def _record(conn: Connection, ops: Sequence[RecordManaged], ctx: ApplyContext) -> int:
    # delete-then-insert instead of an upsert: a key rename (same id pinned under a new key)
    # would otherwise collide on the experiment_id unique constraint
    keys = [o.experiment_key for o in ops]
    ids = [o.experiment_id for o in ops]
    conn.execute(sa.delete(managed).where(sa.or_(managed.c.key.in_(_ids(conn, keys, "text", name="keys")),
                                                 managed.c.experiment_id.in_(_ids(conn, ids)))))
    return 1 + _insert(conn, managed, [("key", "text"), ("experiment_id", "uuid"), ("last_applied", "json")],
                       [(o.experiment_key, o.experiment_id, o.last_applied) for o in ops])
