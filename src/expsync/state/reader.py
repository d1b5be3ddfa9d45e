"""Read the actual state a plan needs, in a constant number of set-based statements.

:func:`read_actual` issues exactly four statements whatever the number of experiments
(spec §5 item 2, §8: target <= 6):

1. the experiments that matter: ids wanted by the desired state, ids expsync manages, and
   every row that is active/paused on a desired public id (managed or not: they count for
   the one-routing-experiment-per-public-id rule);
2. their variants;
3. per variant, at most two versions, picked in SQL by ``effective_at DESC, id DESC``: the
   newest with ``effective_at <= now`` is *current*, the newest future-dated one (which is
   then the newest overall) is *pending*; older versions never leave the database;
4. every ``expsync_managed`` row.

On Postgres the four go out in one psycopg pipeline (:func:`expsync.state.connection.batch`,
on a SQLAlchemy connection or a bare psycopg one), so they cost one round trip together (plus,
with :func:`read_state` and ``now=None``, ``SELECT now()``, and with ``required_tables`` the
table check, in the same batch): each statement names the experiments it needs by the same
predicate instead of waiting for the first one's ids. Rows are decoded by psycopg itself
(jsonb by :func:`expsync.state.jsonvalues.load_json`), with the cyclic garbage collector paused
meanwhile (no cycles are made). Elsewhere (SQLite) the statements are built with SQLAlchemy
Core and run one after the other (:mod:`~expsync.state.core_read`, imported only then). Both
paths give equal :class:`~expsync.model.ActualState`.

For a consistent snapshot across the four statements, call it inside one transaction; on
Postgres that transaction should be REPEATABLE READ (``db.begin(engine, snapshot=True)``,
``PgConnection.snapshot()``) or hold the apply lock.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Collection, Iterable, Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Final

from expsync import rules
from expsync.diagnostics import Diagnostic
from expsync.errors import InvalidInput
from expsync.heap import long_lived
from expsync.model import (
    ActualExperiment,
    ActualState,
    ActualVariant,
    ActualVersion,
    ManagedRecord,
    Status,
)
from expsync.state.catalog import MISSING_TABLES_SQL, raise_missing
from expsync.state.connection import backend, batch, driver

if TYPE_CHECKING:
    from expsync.state.connection import AnyConnection

__all__ = ["assemble", "read_actual", "read_state"]

#: the statuses that hold a public id, as stored
_ROUTING: Final = list(rules.ROUTING_STATUS_VALUES)


def read_actual(
    conn: AnyConnection,
    *,
    experiment_ids: Collection[uuid.UUID],
    public_model_ids: Collection[str],
    now: datetime,
    with_metadata: bool = False,
) -> ActualState:
    """The rows relevant to a desired state with these experiment ids and public ids.

    ``with_metadata``: the database has ``model_experiment.metadata`` (the gateway profile
    says so) and it is read too, in the same statement.

    ``now`` (tz-aware) decides which version is current and which is pending. Experiments
    and each experiment's variants come in uuid order (Postgres's order: by bytes), which is
    the gateway's bucketing walk order. All datetimes are tz-aware UTC.
    """
    if now.tzinfo is None:
        raise ValueError("read_actual needs a tz-aware 'now'")
    return read_state(conn, experiment_ids=experiment_ids, public_model_ids=public_model_ids, now=now,
                      with_metadata=with_metadata)[1]


def read_state(
    conn: AnyConnection,
    *,
    experiment_ids: Collection[uuid.UUID],
    public_model_ids: Collection[str],
    now: datetime | None,
    with_metadata: bool = False,
    required_tables: Collection[str] = (),
) -> tuple[datetime, ActualState]:
    """Like :func:`read_actual`, and the clock it used: ``now=None`` means the database's
    (Postgres ``now()``, the transaction's start, read in the same round trip as the rows);
    SQLite has no server clock, so it needs an explicit ``now`` there.

    ``required_tables``: check first that these tables exist
    (:class:`~expsync.state.catalog.NotInitialized` otherwise); on Postgres in the same batch."""
    if now is not None and now.tzinfo is None:
        raise ValueError("read_state needs a tz-aware 'now' (or None for the database's clock)")
    if backend(conn) == "postgresql":
        return _read_pipelined(conn, list(experiment_ids), list(public_model_ids), now, with_metadata,
                               sorted(set(required_tables)))
    if now is None:
        raise ValueError(f"{backend(conn)} has no server clock: pass 'now'")
    if required_tables:
        from expsync.state.catalog import missing_tables

        raise_missing(missing_tables(conn, required_tables))
    from expsync.state.core_read import read_core

    return now, read_core(conn, experiment_ids, public_model_ids, now, with_metadata)  # type: ignore[arg-type]


# -- Postgres: one pipelined round trip, rows decoded by psycopg ------------------------------

#: the experiments a plan needs (statement 1's predicate; the others select by it too)
_PG_WANTED = (
    "SELECT e.id FROM model_experiment e WHERE e.id = ANY(%(ids)s::uuid[])"
    " OR (e.public_model_id = ANY(%(pids)s::text[]) AND e.status = ANY(%(routing)s::text[]))"
    " OR e.id IN (SELECT m.experiment_id FROM expsync_managed m)"
)
_PG_EXPERIMENTS = (
    "SELECT id, public_model_id, name, description, status, is_archived, created_at, updated_at,"
    " started_at, ended_at, created_by_user_id{metadata} FROM model_experiment WHERE id IN (" + _PG_WANTED + ")"
)
_PG_VARIANTS = (
    "SELECT id, experiment_id, label, weight FROM model_experiment_variant"
    " WHERE experiment_id IN (" + _PG_WANTED + ")"
)
_PG_PICK = (
    "SELECT (SELECT x.id FROM model_experiment_variant_version x WHERE x.variant_id = v.id"
    " AND x.effective_at {op} {now} ORDER BY x.effective_at DESC, x.id DESC LIMIT 1)"
    " FROM model_experiment_variant v WHERE v.experiment_id IN (" + _PG_WANTED + ")"
)
_PG_VERSIONS = (
    "SELECT id, variant_id, upstream, encrypted_api_key, effective_at, created_by, created_at"
    " FROM model_experiment_variant_version WHERE id IN ("
    + _PG_PICK.replace("{op}", "<=") + " UNION ALL " + _PG_PICK.replace("{op}", ">") + ")"
)
_PG_MANAGED = "SELECT key, experiment_id, last_applied, applied_at FROM expsync_managed"


def _read_pipelined(
    conn: AnyConnection, ids: list[uuid.UUID], pids: list[str], now: datetime | None, with_metadata: bool,
    required: list[str],
) -> tuple[datetime, ActualState]:
    """The table check (when ``required``), ``SELECT now()`` and the four statements in one
    psycopg pipeline on the connection's own transaction: one round trip whatever the number
    of rows."""
    params = {"ids": ids, "pids": pids, "routing": _ROUTING, "now": now}
    clock = "now()" if now is None else "%(now)s::timestamptz"
    statements: list[tuple[str, Any]] = [
        ("SELECT now()", None),
        (_PG_EXPERIMENTS.replace("{metadata}", ", metadata" if with_metadata else ""), params),
        (_PG_VARIANTS, params),
        (_PG_VERSIONS.replace("{now}", clock), params),
        (_PG_MANAGED, None),
    ]
    if required:  # first: a missing table explains why the reads after it failed
        statements.insert(0, (MISSING_TABLES_SQL, {"tables": required}))
    with long_lived():  # decoding makes ~10 objects per row and no cycles: no reason to rescan the heap
        rows = batch(conn, statements, guard=(lambda r: raise_missing(list(r[0][0]))) if required else None)
        db_now, exp_rows, var_rows, ver_rows, managed_rows = rows[1:] if required else rows
        if driver(conn).info.timezone is not timezone.utc:  # the connection asks for UTC; a host may override it
            exp_rows = [(*r[:6], *(_utc(x) for x in r[6:10]), *r[10:]) for r in exp_rows]
            ver_rows = [(*r[:4], _utc(r[4]), r[5], _utc(r[6])) for r in ver_rows]
            managed_rows = [(*r[:3], _utc(r[3])) for r in managed_rows]
        clock_now = now if now is not None else _utc(db_now[0][0])
        assert clock_now is not None
        return clock_now, assemble(exp_rows, var_rows, ver_rows, managed_rows, clock_now)


def _utc(value: datetime | None) -> datetime | None:
    return None if value is None else value.astimezone(timezone.utc)


def _json_kind(value: object) -> str:
    return {type(None): "null", list: "an array", str: "a string", bool: "a boolean"}.get(type(value), "a number")


def _odd_row(what: str) -> InvalidInput:
    """A row another writer (the admin UI, a manual fix) left in a shape the gateway cannot
    serve: a diagnostic (exit 3), never a crash further down."""
    return InvalidInput(diagnostics=[Diagnostic.make(
        "E130", f"the database holds a row the gateway cannot read: {what}",
        hint="fix or remove the row in the gateway's admin UI, then run expsync again")])


def _version(row: Sequence[Any]) -> ActualVersion:
    v = ActualVersion(*row)
    if not isinstance(v.upstream, dict):
        raise _odd_row(f"variant {v.variant_id}: its version {v.id} stores an upstream that is "
                       f"{_json_kind(v.upstream)}, not a JSON object")
    return v


def _metadata(exp_id: uuid.UUID, value: object) -> Any:
    if value is not None and not isinstance(value, dict):
        raise _odd_row(f"experiment {exp_id}: its metadata is {_json_kind(value)}, not a JSON object or NULL")
    return value


def assemble(
    exp_rows: Iterable[Sequence[Any]],
    var_rows: Iterable[Sequence[Any]],
    ver_rows: Iterable[Sequence[Any]],
    managed_rows: Iterable[Sequence[Any]],
    now: datetime,
) -> ActualState:
    # Rows are unpacked positionally (columns in the order of the _*_COLUMNS tuples, which
    # follow the dataclass fields): at 150,000 rows this is several times faster than
    # attribute access on Row objects.
    current: dict[uuid.UUID, ActualVersion] = {}
    pending: dict[uuid.UUID, ActualVersion] = {}
    for row in ver_rows:
        v = _version(row)
        (pending if v.effective_at > now else current)[v.variant_id] = v

    variants: defaultdict[uuid.UUID, list[ActualVariant]] = defaultdict(list)
    for var_id, exp_id, label, weight in var_rows:
        variants[exp_id].append(
            ActualVariant(var_id, exp_id, label, weight, current.get(var_id), pending.get(var_id))
        )

    experiments: dict[uuid.UUID, ActualExperiment] = {}
    # uuid.UUID.int orders like the bytes, which is how Postgres orders uuids (and the
    # gateway walks variants); sorting here makes SQLite agree whatever its text form.
    for row in sorted(exp_rows, key=lambda r: r[0].int):
        (
            exp_id,
            public_model_id,
            name,
            description,
            status,
            is_archived,
            created_at,
            updated_at,
            started_at,
            ended_at,
            created_by_user_id,
        ) = row[:11]
        experiments[exp_id] = ActualExperiment(
            exp_id,
            public_model_id,
            name,
            description,
            Status(status),
            bool(is_archived),
            created_at,
            updated_at,
            started_at,
            ended_at,
            created_by_user_id,
            variants=tuple(sorted(variants.get(exp_id, ()), key=lambda v: v.id.int)),
            metadata=_metadata(exp_id, row[11] if len(row) > 11 else None),
        )

    managed_records = {
        key: ManagedRecord(key, exp_id, last_applied, applied_at)
        for key, exp_id, last_applied, applied_at in sorted(managed_rows, key=lambda r: r[0])
    }
    return ActualState(experiments=experiments, managed=managed_records)
