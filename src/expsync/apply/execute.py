"""Execute a plan's ops inside the caller's transaction, writing exactly what the gateway's
admin API would (spec §1.1, §2): ``updated_at = now()`` on every UPDATE, ``started_at`` only
when NULL, ``ended_at`` on completion, versions insert-only, encrypted keys in the exact
``{iv, data, authTag}`` format, ``created_by*`` from the actor (NULL when unset).

Order: :func:`execute` runs exactly the ops it is given, in that order. The planner's order
(:mod:`expsync.plan.order`) already puts ops of one type next to each other inside a phase,
so the executor only groups *consecutive* ops of the same type into one batch, and every batch
is a fixed number of multi-row statements: the rows travel as one bound parameter, a JSON
array (``jsonb_to_recordset`` on Postgres, ``json_each`` on SQLite) into ``INSERT ... SELECT``,
``UPDATE ... FROM`` or ``... IN (SELECT ...)``. What the server executes grows with the kinds
of change, never with rows, and the statement text does not depend on the number of rows
either.

What each op writes is stated once, here, as calls on a :class:`Writer`, which turns them into
statements: :class:`~expsync.apply.write_pg.PgWriter` (SQL text on a bare psycopg connection,
``apply`` on Postgres) or :class:`~expsync.apply.write_core.CoreWriter` (SQLAlchemy Core on a
SQLAlchemy connection: SQLite, or Postgres through the engine).

Every statement also checks what it expects (e.g. ``AND status = :from``): a row changed by a
writer that does not take expsync's lock makes the whole transaction fail rather than apply
on top of a state nobody planned for.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Mapping, Sequence
from expsync.records import dataclass
from typing import Any, Final, Protocol, TypeAlias

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
from expsync.state.catalog import METADATA_COLUMN

#: (column name, value kind): kind is one of uuid, text, int, bool, json
Column: TypeAlias = tuple[str, str]
#: a value the same for every row: (kind, value)
Constant: TypeAlias = tuple[str, Any]


class _Clock:
    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


#: a column value: the transaction's current time (``now()``)
NOW: Final = _Clock("NOW")
#: a column value: the column's own value, or the transaction's current time when it is NULL
NOW_IF_NULL: Final = _Clock("NOW_IF_NULL")

EXPERIMENTS: Final = "model_experiment"
VARIANTS: Final = "model_experiment_variant"
VERSIONS: Final = "model_experiment_variant_version"
MANAGED: Final = "expsync_managed"


def rows_json(columns: Sequence[Column], rows: Sequence[Sequence[Any]]) -> str:
    """``rows`` as the JSON array of objects both writers bind as one parameter and read with
    ``jsonb_to_recordset`` on Postgres (uuids as their text; JSON values nested as they are)."""
    names = [col for col, _ in columns]
    uuids = [i for i, (_, kind) in enumerate(columns) if kind == "uuid"]
    docs = []
    for r in rows:
        values = list(r)
        for i in uuids:
            values[i] = None if values[i] is None else str(values[i])
        docs.append(dict(zip(names, values)))
    return json.dumps(docs)


class Writer(Protocol):
    """The statements ops are written with; each is ONE statement whatever the number of rows."""

    def insert(self, table: str, columns: Sequence[Column], rows: Sequence[Sequence[Any]],
               constants: Mapping[str, Constant] | None = None) -> None:
        """``INSERT INTO table (columns..., constants...) SELECT ... FROM <rows>``."""

    def update_rows(self, table: str, columns: Sequence[Column], rows: Sequence[Sequence[Any]]) -> int:
        """``UPDATE table SET col = w.col, ..., updated_at = now() FROM <rows> w WHERE table.id =
        w.id`` (the first column is ``id``); returns the rows changed."""

    def update_ids(self, table: str, ids: Sequence[Any], values: Mapping[str, Any], *,
                   status: str | None = None) -> int:
        """``UPDATE table SET values WHERE id IN ids [AND status = status]``; a value is a
        :data:`Constant`, :data:`NOW` or :data:`NOW_IF_NULL`. Returns the rows changed."""

    def delete(self, table: str, matches: Sequence[tuple[Sequence[Column], Sequence[Sequence[Any]]]]) -> int:
        """``DELETE FROM table WHERE (cols) IN <rows> OR ...``; returns the rows deleted."""

    def copy_versions(self, rows: Sequence[tuple[Any, Any]], actor: str | None) -> int:
        """For each (base version id, new upstream): a new version of the base's variant with
        that upstream and the base's encrypted key, copied in SQL. Returns the rows inserted."""


def writer_for(conn: Any) -> Writer:
    """The writer for a connection: SQL text on a bare psycopg connection, Core otherwise."""
    from expsync.state.connection import PgConnection

    if isinstance(conn, PgConnection):
        from expsync.apply.write_pg import PgWriter

        return PgWriter(conn)
    from expsync.apply.write_core import CoreWriter

    return CoreWriter(conn)


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


Executor = Callable[[Writer, Sequence[Any], ApplyContext], int]
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


def execute(ops: Sequence[Op], conn: Any, ctx: ApplyContext) -> list[OpResult]:
    """Run ``ops`` in the given order on ``conn`` (a SQLAlchemy connection or a
    :class:`~expsync.state.connection.PgConnection`, inside its transaction); each run of
    consecutive ops of one type is one batch. Returns one result per batch."""
    writer = writer_for(conn)
    results = []
    for op_type, group in itertools.groupby(ops, key=type):
        items = list(group)
        n = executor_for(op_type)(writer, items, ctx)
        results.append(OpResult(op_type.__name__, len(items), n))
    return results


def _expect_rows(changed: int, expected: int, what: str) -> None:
    if changed != expected:
        raise ApplyConflict(
            f"{what}: expected to change {expected} row(s), changed {changed}; the database was "
            "changed by another writer during apply - nothing was applied, re-run plan"
        )


@executes(CreateExperiment)
def _create(w: Writer, ops: Sequence[CreateExperiment], ctx: ApplyContext) -> int:
    # the metadata column exists only in gateway profiles that have metadata, and only such
    # profiles' YAML can set it: it is named only when some op has a value
    with_metadata = any(o.metadata is not None for o in ops)
    columns = [("id", "uuid"), ("public_model_id", "text"), ("name", "text"), ("description", "text"),
               ("is_archived", "bool")] + ([(METADATA_COLUMN, "json")] if with_metadata else [])
    rows = [(o.experiment_id, o.public_model_id, o.name, o.description, o.archived)
            + ((o.metadata,) if with_metadata else ()) for o in ops]
    w.insert(EXPERIMENTS, columns, rows,
             constants={"status": ("text", CREATED_AS.value), "created_by_user_id": ("text", ctx.actor)})
    return 1


#: the kind of each column UpdateFields may set
_FIELD_KINDS: Final = {"public_model_id": "text", "name": "text", "description": "text", METADATA_COLUMN: "json"}


@executes(UpdateFields)
def _update_fields(w: Writer, ops: Sequence[UpdateFields], ctx: ApplyContext) -> int:
    # one statement per run of ops setting the same columns (the plan orders them together)
    statements = 0
    for cols, group in itertools.groupby(ops, key=shape_of):
        names = cols.split(",")
        rows = []
        for o in group:
            after = {c.path: c.after for c in o.changes}
            rows.append((o.experiment_id, *[after[c] for c in names]))
        changed = w.update_rows(EXPERIMENTS, [("id", "uuid")] + [(c, _FIELD_KINDS[c]) for c in names], rows)
        _expect_rows(changed, len(rows), "update experiment fields")
        statements += 1
    return statements


_TRANSITION_VALUES: Final[Mapping[Trigger, dict[str, Any]]] = {
    # activation sets started_at only if it is NULL; completion sets ended_at (spec §1.1)
    Trigger.ACTIVATE: {"started_at": NOW_IF_NULL},
    Trigger.PAUSE: {},
    Trigger.COMPLETE: {"ended_at": NOW},
}


@executes(Transition)
def _transition(w: Writer, ops: Sequence[Transition], ctx: ApplyContext) -> int:
    statements = 0
    # one statement per run of one edge, in plan order (the plan orders each edge's ops together)
    for _, run in itertools.groupby(ops, key=shape_of):
        group = list(run)
        trigger, src, dst = group[0].trigger, group[0].from_status, group[0].to_status
        ids = [o.experiment_id for o in group]
        values = {"status": ("text", dst.value), "updated_at": NOW, **_TRANSITION_VALUES[trigger]}
        _expect_rows(w.update_ids(EXPERIMENTS, ids, values, status=src.value), len(ids), f"{trigger} {src} -> {dst}")
        statements += 1
    return statements


@executes(SetArchived)
def _archive(w: Writer, ops: Sequence[SetArchived], ctx: ApplyContext) -> int:
    statements = 0
    for after, group in itertools.groupby(ops, key=lambda o: o.after):
        ids = [o.experiment_id for o in group]
        changed = w.update_ids(EXPERIMENTS, ids, {"is_archived": ("bool", after), "updated_at": NOW})
        _expect_rows(changed, len(ids), "archive" if after else "unarchive")
        statements += 1
    return statements


@executes(AddVariant)
def _add_variant(w: Writer, ops: Sequence[AddVariant], ctx: ApplyContext) -> int:
    w.insert(VARIANTS, [("id", "uuid"), ("experiment_id", "uuid"), ("label", "text"), ("weight", "int")],
             [(o.variant_id, o.experiment_id, o.label, o.weight) for o in ops])
    return 1


@executes(RemoveVariant)
def _remove_variant(w: Writer, ops: Sequence[RemoveVariant], ctx: ApplyContext) -> int:
    rows = [(o.variant_id,) for o in ops]
    _expect_rows(w.delete(VARIANTS, [([("id", "uuid")], rows)]), len(rows), "remove variants")
    return 1


def _update_variants(w: Writer, rows: list[tuple[Any, Any]], column: str, kind: str, what: str) -> int:
    _expect_rows(w.update_rows(VARIANTS, [("id", "uuid"), (column, kind)], rows), len(rows), what)
    return 1


@executes(RelabelVariant)
def _relabel(w: Writer, ops: Sequence[RelabelVariant], ctx: ApplyContext) -> int:
    # Two steps, because labels may be swapped or rotated between variants of one experiment
    # and (experiment_id, label) is unique at every statement: first a placeholder unique per
    # variant ("~" + its id in hex: 33 characters, within the 1-64 label rule), then the final
    # labels. Both run inside the transaction; nobody outside sees the placeholder.
    _update_variants(w, [(o.variant_id, "~" + o.variant_id.hex) for o in ops], "label", "text", "relabel variants")
    _update_variants(w, [(o.variant_id, o.after) for o in ops], "label", "text", "relabel variants")
    return 2


@executes(ChangeWeight)
def _weight(w: Writer, ops: Sequence[ChangeWeight], ctx: ApplyContext) -> int:
    return _update_variants(w, [(o.variant_id, o.after) for o in ops], "weight", "int", "change weights")


@executes(InsertVersion)
def _insert_version(w: Writer, ops: Sequence[InsertVersion], ctx: ApplyContext) -> int:
    copies = [o for o in ops if o.key_change is KeyChange.UNCHANGED and o.base_version_id is not None]
    fresh = [o for o in ops if not (o.key_change is KeyChange.UNCHANGED and o.base_version_id is not None)]
    statements = 0
    if copies:
        # upstream-only change: the previous version's ciphertext is copied as is (spec §2.3),
        # in SQL - the key never passes through Python. One INSERT ... SELECT joins the base
        # version rows with the new upstreams whatever the number of swaps.
        copied = w.copy_versions([(o.base_version_id, o.upstream_after) for o in copies], ctx.actor)
        _expect_rows(copied, len(copies), "copy api keys into new versions")
        statements += 1
    if fresh:
        w.insert(VERSIONS, [("variant_id", "uuid"), ("upstream", "json"), ("encrypted_api_key", "json")],
                 [_fresh_row(o, ctx) for o in fresh], constants={"created_by": ("text", ctx.actor)})
        statements += 1
    return statements


def _fresh_row(o: InsertVersion, ctx: ApplyContext) -> tuple[Any, ...]:
    secret = ctx.secrets.get(o.api_key_ref)
    if secret is None or ctx.byok_key is None:
        raise ExpsyncError(f"api key for {o.experiment_key}/{o.label} was not resolved")
    return (o.variant_id, o.upstream_after, encrypt_api_key(secret, ctx.byok_key))


@executes(DeleteExperiment)
def _delete(w: Writer, ops: Sequence[DeleteExperiment], ctx: ApplyContext) -> int:
    # each row must still be in the status the plan saw (the planner decided it may be deleted)
    seen = [(o.experiment_id, o.status.value) for o in ops]
    _expect_rows(w.delete(EXPERIMENTS, [([("id", "uuid"), ("status", "text")], seen)]), len(ops), "delete drafts")
    w.delete(MANAGED, [([("experiment_id", "uuid")], [(o.experiment_id,) for o in ops])])
    return 2


@executes(ReleaseExperiment)
def _release(w: Writer, ops: Sequence[ReleaseExperiment], ctx: ApplyContext) -> int:
    w.delete(MANAGED, [([("key", "text")], [(o.experiment_key,) for o in ops])])
    return 1


@executes(RecordManaged)
def _record(w: Writer, ops: Sequence[RecordManaged], ctx: ApplyContext) -> int:
    # delete-then-insert instead of an upsert: a key rename (same id pinned under a new key)
    # would otherwise collide on the experiment_id unique constraint
    w.delete(MANAGED, [([("key", "text")], [(o.experiment_key,) for o in ops]),
                       ([("experiment_id", "uuid")], [(o.experiment_id,) for o in ops])])
    w.insert(MANAGED, [("key", "text"), ("experiment_id", "uuid"), ("last_applied", "json")],
             [(o.experiment_key, o.experiment_id, o.last_applied) for o in ops])
    return 2
