"""Reading ``expsync_audit``: one row per apply (and per apply that failed on a conflict).

:func:`read_history` returns the newest rows first as frozen :class:`AuditEntry` values, in one
statement, on SQLite and Postgres alike. The rows hold counts, keys and digests, never a secret
value (apply writes them that way), so they can be printed as they are.
"""

from __future__ import annotations

import json
from expsync.records import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from expsync.state.tables import audit

__all__ = ["AuditEntry", "read_history"]


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditEntry:
    """One apply as recorded. ``counts`` are changed experiments by action (as in the plan's
    summary line); ``experiments`` the keys of the experiments it changed."""

    id: int
    started_at: datetime
    finished_at: datetime | None
    actor: str | None
    revision: str | None
    outcome: str
    plan_digest: str
    statements: int | None
    counts: dict[str, int]
    experiments: tuple[str, ...]

    @property
    def duration_seconds(self) -> float | None:
        if self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "duration_seconds": self.duration_seconds,
            "actor": self.actor,
            "revision": self.revision,
            "outcome": self.outcome,
            "plan_digest": self.plan_digest,
            "statements": self.statements,
            "counts": dict(self.counts),
            "experiments": list(self.experiments),
        }


def read_history(conn: sa.Connection, *, limit: int) -> list[AuditEntry]:
    """The ``limit`` most recent audit rows, newest first (by start time, then id)."""
    rows = conn.execute(
        sa.select(audit.c.id, audit.c.started_at, audit.c.finished_at, audit.c.actor, audit.c.revision,
                  audit.c.outcome, audit.c.plan_digest, audit.c.statements, audit.c.summary)
        .order_by(audit.c.started_at.desc(), audit.c.id.desc())
        .limit(limit)
    ).all()
    return [_entry(r) for r in rows]


def _entry(r: sa.Row[Any]) -> AuditEntry:
    summary = r.summary
    if isinstance(summary, str):  # JSON text on a backend without a JSON type
        summary = json.loads(summary)
    if not isinstance(summary, dict):
        summary = {}
    counts = summary.get("counts")
    counts = counts if isinstance(counts, dict) else {}
    experiments = summary.get("experiments")
    experiments = experiments if isinstance(experiments, list) else []
    return AuditEntry(
        id=int(r.id),
        started_at=r.started_at,
        finished_at=r.finished_at,
        actor=r.actor,
        revision=r.revision,
        outcome=r.outcome,
        plan_digest=r.plan_digest,
        statements=r.statements,
        counts={str(k): int(v) for k, v in counts.items() if isinstance(v, int)},
        experiments=tuple(str(x) for x in experiments),
    )
