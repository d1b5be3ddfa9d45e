"""``expsync history`` output: audit entries -> text table or JSON. No database access here.

Every value that came from the database (actor, revision, outcome) goes through
:func:`expsync.escape.terminal` (the one definition of what never reaches a terminal or a
CI log raw) before it is printed.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING

from expsync.escape import json_document
from expsync.escape import terminal as _safe

if TYPE_CHECKING:
    from expsync.state.audit import AuditEntry

__all__ = ["render_history_json", "render_history_text"]

_COUNTED = ("create", "update", "transition", "delete", "manage")


def _counts(e: AuditEntry) -> str:
    parts = [f"{e.counts[k]} {k}" for k in _COUNTED if e.counts.get(k)]
    return ", ".join(parts) if parts else "no changes"


def render_history_text(entries: Sequence[AuditEntry]) -> str:
    if not entries:
        return "No applies recorded yet."
    header = ("started (UTC)", "duration", "actor", "revision", "outcome", "changes", "plan digest")
    rows = [header]
    for e in entries:
        dur = e.duration_seconds
        rows.append((
            e.started_at.strftime("%Y-%m-%d %H:%M:%S"),
            "-" if dur is None else f"{dur:.2f}s",
            _safe(e.actor or "-"),
            _safe((e.revision or "-")[:12]),
            _safe(e.outcome),
            _counts(e),
            _safe(e.plan_digest[:19] or "-"),
        ))
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


def render_history_json(entries: Sequence[AuditEntry]) -> str:
    return json_document(json.dumps({"history": [e.as_dict() for e in entries]}, indent=2, ensure_ascii=True))
