"""``expsync history`` output: audit entries -> text table or JSON. No database access here.

Every value that came from the database (actor, revision, outcome) has its control, bidi and
zero-width characters escaped before it reaches a terminal or a CI log.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from expsync.state.audit import AuditEntry

__all__ = ["render_history_json", "render_history_text"]

_COUNTED = ("create", "update", "transition", "delete", "manage")


def _safe(s: str) -> str:
    """Control, bidi and zero-width characters shown as ``\\uXXXX`` (a value from the database
    must not move the cursor, retitle the terminal or inject a workflow command)."""
    out = []
    for ch in s:
        o = ord(ch)
        if o < 0x20 or 0x7F <= o < 0xA0 or 0x200B <= o <= 0x200F or 0x202A <= o <= 0x202E or 0x2066 <= o <= 0x2069 \
                or o == 0xFEFF:
            out.append(f"\\u{o:04x}")
        else:
            out.append(ch)
    return "".join(out)


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
    return json.dumps({"history": [e.as_dict() for e in entries]}, indent=2, ensure_ascii=True)
