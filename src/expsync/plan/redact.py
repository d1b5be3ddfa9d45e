"""Hiding the values of experiments expsync does not manage (``--no-secrets``, untrusted PRs).

A pull request from a fork may pin the id of an experiment expsync does not manage; the plan
would then show that experiment's name, description, labels, weights and upstream as the
"before" side of its ops. In that mode the planner replaces every value read from such a row
with ``None`` (or, for a label, the variant id) before the checks run, so no format and no
diagnostic can show it; renderers say "not shown". Such a plan is never applyable.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Final

from expsync.plan.ops import ChangeWeight, FieldChange, InsertVersion, Op, RelabelVariant, RemoveVariant, UpdateFields
from expsync.urls import mask_json

#: how an experiment expsync does not manage is named when its values are hidden
UNMANAGED: Final = "an experiment not managed by expsync"


def hide_op(op: Op) -> Op:
    """``op`` without any value it read from the database (ids, statuses and flags stay)."""
    match op:
        case UpdateFields():
            return replace(op, changes=tuple(FieldChange(c.path, None, c.after) for c in op.changes))
        case RemoveVariant():
            return replace(op, label=str(op.variant_id), weight=None)
        case RelabelVariant():
            return replace(op, before=str(op.variant_id))
        case ChangeWeight():
            return replace(op, before=None)
        case InsertVersion():
            return replace(op, upstream_before=None, upstream_diff=())
        case _:
            return op


def _masked_before(c: FieldChange) -> FieldChange:
    before = mask_json(c.before, c.path.rpartition(".")[2].partition("[")[0])
    return c if before == c.before else FieldChange(c.path, before, c.after)


def mask_op(op: Op) -> Op:
    """``op`` with credentials in the values it read from the database masked (``***``): a
    ``base_url`` password or key parameter, a value under a credential-named key that another
    writer stored. Only display fields change (the before side); what apply writes does not.
    Masked here, in the plan, so every format and the saved plan's ops digest agree."""
    match op:
        case UpdateFields():
            changes = tuple(_masked_before(c) for c in op.changes)
            return op if changes == op.changes else replace(op, changes=changes)
        case InsertVersion():
            before = mask_json(op.upstream_before) if op.upstream_before is not None else None
            diff = tuple(_masked_before(c) for c in op.upstream_diff)
            if before == op.upstream_before and diff == op.upstream_diff:
                return op
            return replace(op, upstream_before=before, upstream_diff=diff)
        case _:
            return op

