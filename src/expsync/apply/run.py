"""One apply: lock, re-plan inside the transaction, refuse or execute, audit, commit.

    BEGIN (READ COMMITTED: a REPEATABLE READ snapshot would predate the lock)
      Postgres: lock_timeout (local) + pg_advisory_xact_lock(APPLY_LOCK) + table check, one statement (state/locks.py)   SQLite: BEGIN IMMEDIATE
      read actual state -> compare keys -> plan          (the same code as `expsync plan`)
      refuse: key problems (3), violations (4), digests differ from the saved plan (5)
      Postgres: lock the changed experiment + variant rows FOR UPDATE, re-check them (5)
      execute ops -> outbox rows -> audit row
    COMMIT

Everything before the first write is a check; any exception rolls the whole transaction back,
so a killed or failed apply leaves the database exactly as before. Database errors are mapped
to friendly messages naming the rule or public id (never a traceback).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from expsync.records import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Final

from expsync import rules
from expsync.apply.execute import ApplyContext, OpResult, execute
from expsync.apply.lock import lock_and_verify
from expsync.cache.refresh import enqueue
from expsync.crypto import load_key
from expsync.diagnostics import Diagnostic
from expsync.errors import (
    ApplyConflict,
    CachePending,
    ExpsyncError,
    InvalidInput,
    LockTimeout,
    PlanRefused,
    StalePlan,
)
from expsync.model import DesiredState, KeyChange, Secret, SecretRef
from expsync.pipeline import REQUIRED_TABLES, Computed, Settings, check_initialized, compute_plan, raise_missing
from expsync.plan import Digests, Plan, cache_keys_for
from expsync.plan.ops import InsertVersion
from expsync.state.connection import PgConnection, ask, backend, driver_errors, run_text
from expsync.state.locks import is_lock_timeout, xact_lock

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

#: advisory lock key shared by every expsync apply on a database (bigint: b"expsapp")
APPLY_LOCK: Final = int.from_bytes(b"expsapp", "big")


class KeyProblems(InvalidInput):
    def __init__(self, diags: tuple[Diagnostic, ...]) -> None:
        super().__init__("stored api keys cannot be compared")
        self.diagnostics = diags


class Refused(PlanRefused):
    def __init__(self, plan: Plan) -> None:
        super().__init__(f"plan refused: {sum(d.is_error for d in plan.diagnostics)} error(s); nothing was applied")
        self.plan = plan


@dataclass(frozen=True, slots=True)
class ApplyResult:
    plan: Plan
    results: tuple[OpResult, ...]
    statements: int
    seconds: float

    @property
    def changed(self) -> bool:
        return self.plan.has_changes


_CONSTRAINT_MESSAGES: Final = {
    "model_experiment_active_not_archived": f"archiving is allowed only in {rules.allowed_in(rules.Change.ARCHIVE)} "
    "(CHECK model_experiment_active_not_archived)",
    "model_experiment_status_valid": "invalid experiment status (CHECK model_experiment_status_valid)",
    "model_experiment_variant_weight_positive": "variant weights must be positive (CHECK model_experiment_variant_weight_positive)",
    "UQ_model_experiment_variant_experiment_label": "two variants of one experiment would share a label "
    "(UNIQUE UQ_model_experiment_variant_experiment_label)",
}


def _orig(err: BaseException) -> Any:
    """The driver's error (SQLAlchemy wraps it in ``.orig``)."""
    return getattr(err, "orig", err)


def _constraint(err: BaseException) -> str:
    diag = getattr(_orig(err), "diag", None)
    name = getattr(diag, "constraint_name", None) if diag else None
    if name:
        return str(name)
    text = str(_orig(err))
    if "model_experiment.public_model_id" in text:
        return "UQ_model_experiment_public_model_id_routing"
    for known in _CONSTRAINT_MESSAGES:
        if known in text:
            return known
    m = re.search(r"constraint failed: ([\w.]+)", text)
    return m.group(1) if m else ""


def _friendly(err: BaseException, plan: Plan | None) -> ExpsyncError:
    name = _constraint(err)
    if name == "UQ_model_experiment_public_model_id_routing":
        # Postgres names the conflicting value; otherwise the candidates are the experiments this
        # plan brings into the index (draft or new -> active), not every routing one it touches
        m = re.search(r"\(public_model_id\)=\((.*)\) already exists", getattr(getattr(_orig(err), "diag", None),
                                                                              "message_detail", None) or "")
        pids = [m.group(1)] if m else sorted({
            e.public_model_id for e in plan.experiments
            if e.status_after in rules.ROUTING_STATUSES and e.status_before not in rules.ROUTING_STATUSES}) if plan else []
        return ApplyConflict(
            f"another experiment became active or paused on {', '.join(pids) or 'the public id'} while applying "
            "(routing unique index); nothing was applied - re-run plan"
        )
    if name in _CONSTRAINT_MESSAGES:
        return ApplyConflict(f"the database refused the change: {_CONSTRAINT_MESSAGES[name]}; nothing was applied")
    if getattr(_orig(err), "sqlstate", None) == "23503" or "FOREIGN KEY constraint failed" in str(_orig(err)):
        # in the gateway's own database created_by* reference its users table: not a race
        return InvalidInput(
            f"the database refused the change: foreign key {name or '(unnamed)'} - --actor / EXPSYNC_ACTOR must be "
            "an existing gateway user id, or unset (NULL); nothing was applied")
    column = _not_null_column(err)
    if column is not None:
        # a column of a newer gateway schema that expsync writes nothing into: not a race, so
        # re-running plan would not help (exit 1, not 5)
        return ExpsyncError(f"the database refused the change: {column or 'a column'} may not be null and expsync "
                            "writes no value into it (is the gateway's schema newer than its gateway profile?); "
                            "nothing was applied")
    return ApplyConflict(f"the database refused the change ({name or type(_orig(err)).__name__}); nothing was applied")


def _not_null_column(err: BaseException) -> str | None:
    """``table.column`` of a NOT NULL violation ("" if the driver does not say), else None."""
    orig = _orig(err)
    if getattr(orig, "sqlstate", None) == "23502":
        diag = getattr(orig, "diag", None)
        table, column = getattr(diag, "table_name", None), getattr(diag, "column_name", None)
        return f"{table}.{column}" if table and column else ""
    m = re.search(r"NOT NULL constraint failed: ([\w.]+)", str(orig))  # SQLite
    return m.group(1) if m else None


_LOCK_HOLDER: Final = (
    "SELECT a.pid, a.application_name, a.usename, a.client_addr, a.xact_start FROM pg_locks l "
    "JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory' AND l.granted "
    "AND l.classid = %(hi)s AND l.objid = %(lo)s AND l.objsubid = 1 "
    # advisory locks are per database: another database on the server is not the holder
    "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())")


def _lock_holder(db: Engine | PgConnection) -> str:
    """Who holds the apply lock, asked outside the failed transaction (best effort)."""
    params = {"hi": APPLY_LOCK >> 32, "lo": APPLY_LOCK & 0xFFFFFFFF}
    rows: Sequence[Sequence[Any]]
    try:
        if isinstance(db, PgConnection):
            rows = ask(db, _LOCK_HOLDER, params)
        else:
            with db.connect() as c:
                rows = c.exec_driver_sql(_LOCK_HOLDER, params).all()
    except Exception:  # best effort: the timeout is reported either way
        return ""
    if not rows:
        return ""
    pid, application, user, _, xact_start = tuple(rows[0])
    since = xact_start.isoformat(timespec="seconds") if xact_start else "?"
    return f" (held by pid {pid}, application {application or '?'!r}, user {user}, since {since})"


#: SQLSTATEs of a transaction the server aborted because of another one: deadlock, serialization
_CONCURRENCY_FAILURES: Final = frozenset({"40P01", "40001"})
#: SQLSTATE of a statement the server cancelled (``statement_timeout``, ``pg_cancel_backend``)
_QUERY_CANCELED: Final = "57014"


class _LockBusy(Exception):
    """The apply lock was not granted in time (reported once the transaction has ended)."""


#: the required tables that do not exist, evaluated by the lock statement itself
_MISSING_TABLES: Final = (
    ", ARRAY(SELECT t FROM unnest(CAST(:names AS TEXT[])) t LEFT JOIN pg_catalog.pg_class c "
    "ON c.oid = to_regclass(quote_ident(t)) AND c.relkind IN ('r', 'p') WHERE c.oid IS NULL ORDER BY t) AS missing")


def _take_lock(conn: Any, lock_timeout: float) -> None:
    """Take the apply lock, then check the tables exist (exit 3 otherwise)."""
    if backend(conn) != "postgresql":
        check_initialized(conn)
        return  # SQLite: BEGIN IMMEDIATE already holds the write lock
    # one statement, so one round trip, which also lists the required tables that are missing
    try:
        row = xact_lock(conn, APPLY_LOCK, lock_timeout, keep_timeout=True, columns=_MISSING_TABLES,
                        params={"names": sorted(REQUIRED_TABLES)})
    except Exception as e:
        if is_lock_timeout(e):
            raise _LockBusy from None
        raise
    raise_missing(list(row[-1]))
    # lock_timeout stays set for the rest of the transaction: a long admin-UI transaction
    # holding a row lock must not make apply (holding the apply lock) wait forever


class _Store:
    """How :func:`apply` talks to its database: a SQLAlchemy engine (SQLite; Postgres reached
    through the engine), or a bare psycopg connection (:class:`PgConnection`: Postgres without
    SQLAlchemy). Only the transaction, the statement count, the audit insert and the driver's
    error classes differ; every statement of the plan and the writes is the same code."""

    def __init__(self, db: Engine | PgConnection, lock_timeout: float) -> None:
        self.db = db
        self.lock_timeout = lock_timeout
        self.statements = self.began = 0
        if isinstance(db, PgConnection):
            self.errors = driver_errors()[:3]
        else:
            from sqlalchemy.exc import DataError, IntegrityError, OperationalError

            self.errors = (IntegrityError, DataError, OperationalError)

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        if isinstance(self.db, PgConnection):
            self.began = self.db.statements
            try:
                with self.db.transaction() as conn:
                    yield conn
            finally:
                self.statements = self.so_far()
            return
        from sqlalchemy import event

        from expsync.state.db import begin

        def count(*_: Any) -> None:
            self.statements += 1

        event.listen(self.db, "before_cursor_execute", count)
        try:
            with begin(self.db, immediate=True, lock_timeout=self.lock_timeout) as engine_conn:
                yield engine_conn
        finally:
            event.remove(self.db, "before_cursor_execute", count)

    def so_far(self) -> int:
        """Statements of the transaction sent so far."""
        return self.db.statements - self.began if isinstance(self.db, PgConnection) else self.statements

    def audit(self, conn: Any, row: dict[str, Any]) -> None:
        """Insert one audit row (``summary`` a JSON-able dict)."""
        if isinstance(conn, PgConnection):
            run_text(conn, [(_AUDIT_SQL, {**row, "summary": json.dumps(row["summary"])})])
            return
        import sqlalchemy as sa

        from expsync.state.tables import audit

        conn.execute(sa.insert(audit).values(**row))

    def audit_failure(self, row: dict[str, Any]) -> None:
        """Best effort, in its own transaction (the apply's was rolled back)."""
        try:
            if isinstance(self.db, PgConnection):
                with self.db.transaction() as conn:
                    self.audit(conn, row)
                return
            with self.db.begin() as conn:
                self.audit(conn, row)
        except Exception:
            pass


#: the audit insert as SQL text (what ``sa.insert(audit)`` writes on Postgres)
_AUDIT_SQL: Final = (
    "INSERT INTO expsync_audit (started_at, finished_at, actor, revision, plan_digest, summary, outcome, statements) "
    "VALUES (:started_at, :finished_at, CAST(:actor AS TEXT), CAST(:revision AS TEXT), :plan_digest, "
    "CAST(:summary AS JSONB), :outcome, CAST(:statements AS INTEGER))")


def apply(
    db: Engine | PgConnection,
    desired: DesiredState,
    secrets: Mapping[SecretRef, Secret],
    settings: Settings,
    *,
    lock_timeout: float = 30.0,
    expect: Digests | None = None,
) -> ApplyResult:
    """Apply ``desired``; ``expect`` are the digests of a saved or confirmed plan (exit 5 if they differ)."""
    started = time.monotonic()
    started_at = datetime.now(timezone.utc)
    store = _Store(db, lock_timeout)
    integrity, data, operational = store.errors
    plan: Plan | None = None
    try:
        try:
            with store.transaction() as conn:
                _take_lock(conn, lock_timeout)  # and the table check
                computed = compute_plan(conn, desired, secrets, settings, now=datetime.now(timezone.utc))
                plan = computed.plan
                _refuse_before_writing(computed, expect)
                if plan.has_changes:
                    # rows other writers (the admin UI) could change under this plan: locked, re-checked
                    lock_and_verify(conn, plan.ops, computed.actual)
                results = _execute(conn, computed, secrets, settings) if plan.has_changes else ()
                store.audit(conn, _audit_row(settings, plan, started_at, "applied" if plan.has_changes else "no_changes",
                                             store.so_far() + 1, bound=expect is not None))
        except _LockBusy:
            raise LockTimeout(f"could not take the apply lock within {lock_timeout:g}s{_lock_holder(db)}") from None
        except integrity as e:
            raise _friendly(e, plan) from None
        except data as e:
            orig = _orig(e)
            raise InvalidInput(f"the database refused a value ({type(orig).__name__}: "
                               f"{str(orig).splitlines()[0] if str(orig) else 'invalid data'}); nothing was applied") from None
        except operational as e:
            text = str(_orig(e)).lower()
            if getattr(_orig(e), "sqlstate", None) in _CONCURRENCY_FAILURES:
                # the server chose this transaction as a deadlock victim (or could not serialize
                # it): a concurrent conflict with another writer, rolled back whole (exit 5)
                raise ApplyConflict("the database aborted the apply because of a concurrent writer "
                                    f"({type(_orig(e)).__name__}); nothing was applied - re-run plan") from None
            if getattr(_orig(e), "sqlstate", None) == _QUERY_CANCELED:
                raise ExpsyncError("the database cancelled a statement of the apply (its statement_timeout, or a "
                                   "cancel request); nothing was applied") from None
            if "database is locked" in text or is_lock_timeout(e):
                raise LockTimeout(f"could not take the apply lock within {lock_timeout:g}s, or waited longer for "
                                  "a row lock (another apply, or a long transaction of another writer); nothing "
                                  "was applied") from None
            raise
    except ExpsyncError as e:
        if isinstance(e, ApplyConflict):  # refusals, stale plans, bad input and lock timeouts write nothing at all
            store.audit_failure(_audit_row(settings, plan, started_at, f"failed: {type(e).__name__}", None,
                                           bound=expect is not None))
        raise
    return ApplyResult(plan, results, store.statements, time.monotonic() - started)


def _refuse_before_writing(computed: Computed, expect: Digests | None) -> None:
    plan = computed.plan
    if any(d.is_error for d in computed.key_diagnostics):
        raise KeyProblems(computed.key_diagnostics)
    # stale before refused: a saved plan that no longer matches is exit 5 (spec §5.7)
    # whatever the re-plan says now; the fresh plan the user re-runs explains it
    if expect is not None and expect != plan.digests:
        changed = [n for n in ("desired", "actual", "ops") if getattr(expect, n) != getattr(plan.digests, n)]
        if changed:
            raise StalePlan(f"stale plan: the {' and '.join(changed)} state changed since it was made; "
                            "re-run plan (nothing was applied)")
        raise StalePlan("stale plan: an api key value the plan encrypts changed since it was made (or the plan was "
                        "made without BYOK_ENCRYPTION_KEY, which binds the values); re-run plan (nothing was "
                        "applied) [E508]")
    if plan.refused:
        raise Refused(plan)


def _execute(conn: Any, computed: Computed, secrets: Mapping[SecretRef, Secret],
             settings: Settings) -> tuple[OpResult, ...]:
    """Run exactly ``Plan.ops`` in order, then enqueue the cache keys of the executed ops."""
    plan = computed.plan
    byok = load_key(settings.byok_value) if _needs_encryption(plan) else None
    results = tuple(execute(plan.ops, conn, ApplyContext(actor=settings.actor, secrets=secrets, byok_key=byok)))
    # the same function made plan.cache_keys: the outbox gets the executed ops' keys
    keys = cache_keys_for(plan.ops, computed.actual, settings.redis_prefix)
    if keys:
        enqueue(conn, keys)
    return results


def _needs_encryption(plan: Plan) -> bool:
    return any(isinstance(o, InsertVersion) and o.key_change is not KeyChange.UNCHANGED for o in plan.ops)


def _audit_row(settings: Settings, plan: Plan | None, started_at: datetime, outcome: str,
               statements: int | None, bound: bool) -> dict[str, Any]:
    return dict(started_at=started_at, finished_at=datetime.now(timezone.utc), actor=settings.actor,
                revision=settings.revision, plan_digest=plan.digests.ops if plan else "",
                summary=_summary(plan, bound) if plan else {}, outcome=outcome, statements=statements)


def _summary(plan: Plan, bound: bool) -> dict[str, Any]:
    """What the audit row keeps: counts and keys, never values that could hold a secret.

    The digests are the plan digest (``ops``) and the binding of the api key values
    (``secrets``); the digests of the whole desired and actual state are kept when the apply
    was bound to a plan (``bound``: a saved plan, or the one confirmed on a terminal), where
    they are what was checked. An unattended ``apply --yes`` records the git revision instead:
    two digests of the whole state only for the record would cost about a tenth of a large
    apply."""
    digests = {"ops": plan.digests.ops, "secrets": plan.digests.secrets}
    if bound:
        digests |= {"desired": plan.digests.desired, "actual": plan.digests.actual}
    return {
        "counts": plan.counts(),
        "operations": plan.op_counts(),
        "experiments": [e.key for e in plan.experiments if e.ops],
        "cache_keys": len(plan.cache_keys),
        "digests": dict(sorted(digests.items())),
    }


@contextmanager
def after_commit() -> Iterator[None]:
    """Wrap everything that runs after apply committed (reporting, the cache refresh): any
    failure there, a Ctrl-C included, is :class:`CachePending` (exit 6, "applied; cache
    refresh pending"), never exit 1 or 130 - the change is in the database and the outbox
    still holds its cache keys, which ``expsync cache sync`` or any later run refreshes."""
    try:
        yield
    except CachePending:
        raise
    except KeyboardInterrupt:
        # Ctrl-C after the commit: a bare "Aborted." (exit 130) would read as "nothing was
        # applied" to whoever pressed it, yet the change stands and its refresh is pending
        raise CachePending("applied; cache refresh pending (interrupted); run `expsync cache sync` (any later "
                           "expsync run also finishes it)") from None
    except Exception as e:
        # an ExpsyncError's text is written to be shown (URLs masked); anything else only by type
        detail = str(e) if isinstance(e, ExpsyncError) else type(e).__name__
        raise CachePending(f"applied; cache refresh pending ({detail}); run `expsync cache sync` (any later "
                           "expsync run also finishes it)") from None
