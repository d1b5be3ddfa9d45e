"""Postgres transaction-level advisory locks with a bounded wait, in one round trip.

Taking such a lock means setting ``lock_timeout``, waiting for the lock, and (for a caller
that must not time out later) setting ``lock_timeout`` back to 0: three statements, so three
round trips, when sent apart. :func:`xact_lock` sends one statement instead, whose nested
subqueries run in order (``OFFSET 0`` keeps the planner from flattening them):

    SELECT <after> FROM (
        SELECT pg_advisory_xact_lock(:key) FROM (
            SELECT set_config('lock_timeout', :timeout, true) OFFSET 0) AS bounded
        OFFSET 0) AS locked

``set_config(..., true)`` is transaction-local, as ``SET LOCAL`` is. Extra select-list
expressions (``columns``) run once the lock is held; they share the statement's snapshot,
which READ COMMITTED takes *before* the wait, so rows another writer committed meanwhile are
read by the caller's next statement, never here (catalogue lookups are fine).

A lock not granted in time raises an ``OperationalError`` (psycopg's, or SQLAlchemy's on a
SQLAlchemy connection) with SQLSTATE ``55P03`` (:func:`is_lock_timeout`); each caller words
its own message.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from expsync.state.connection import run_text

if TYPE_CHECKING:
    from expsync.state.connection import AnyConnection

__all__ = ["LOCK_NOT_AVAILABLE", "is_lock_timeout", "timeout_text", "xact_lock"]

#: SQLSTATE of a lock wait that ran into ``lock_timeout``
LOCK_NOT_AVAILABLE: Final = "55P03"


def timeout_text(seconds: float) -> str:
    """``lock_timeout`` as Postgres reads it: whole milliseconds, at least 1 (0 would mean none)."""
    return f"{max(1, int(seconds * 1000))}ms"


def xact_lock(conn: AnyConnection, key: int, timeout: float, *, keep_timeout: bool,
              columns: str = "", params: dict[str, Any] | None = None) -> tuple[Any, ...]:
    """Take advisory lock ``key`` for the rest of the transaction, waiting at most ``timeout``
    seconds, in one statement. ``keep_timeout`` leaves ``lock_timeout`` set for the rest of the
    transaction (later row-lock waits are bounded too); otherwise it is reset to 0 once the
    lock is held. ``columns`` (``", expr AS name ..."``, ``:name`` parameters bound from
    ``params``) are evaluated after the lock is granted; the returned row holds them after the
    lock's own column (and the reset's, unless ``keep_timeout``)."""
    reset = "" if keep_timeout else ", set_config('lock_timeout', '0', true) AS reset"
    sql = (f"SELECT held{reset}{columns} FROM (SELECT pg_advisory_xact_lock(:lock_key) AS held FROM "
           "(SELECT set_config('lock_timeout', :lock_timeout, true) OFFSET 0) AS bounded OFFSET 0) AS locked")
    [done] = run_text(conn, [(sql, {"lock_key": key, "lock_timeout": timeout_text(timeout), **(params or {})})])
    return tuple(done.rows[0])


def is_lock_timeout(err: BaseException) -> bool:
    """A lock wait that ran into ``lock_timeout`` (a driver error, or SQLAlchemy's wrapping one)."""
    return getattr(getattr(err, "orig", err), "sqlstate", None) == LOCK_NOT_AVAILABLE
