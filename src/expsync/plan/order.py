"""Execution order as data (spec §5 item 5): the order of ``Plan.ops`` is the order apply runs.

One sort key ``(phase, op rank, statement shape, experiment key, variant key)`` from the
per-op table (:data:`expsync.plan.ops.OP_TABLE`); the statement shape (a transition's edge,
the archive direction, the columns an update sets) keeps ops that share one statement next to
each other. Phases make every intermediate state valid (see
:class:`~expsync.plan.ops.Phase`); inside a phase, ops of one type are consecutive, so apply
can run each run of consecutive same-type ops as one batch without reordering anything. Ops
of different experiments in one phase are independent (no row of one refers to another's).
"""

from __future__ import annotations

from collections.abc import Iterable

from expsync.plan.ops import Op, SetArchived, Transition, UpdateFields, phase_of, rank_of


def shape_of(op: Op) -> str:
    """What decides the statement an op runs in, beyond its type (apply batches by it)."""
    match op:
        case Transition():
            return f"{op.trigger}:{op.from_status}:{op.to_status}"
        case SetArchived():
            return str(op.after)
        case UpdateFields():
            return ",".join(sorted(c.path for c in op.changes))
        case _:
            return ""


def sort_key(op: Op) -> tuple[int, int, str, str, str]:
    return (phase_of(op), rank_of(op), shape_of(op), op.experiment_key,
            getattr(op, "variant_key", "") or getattr(op, "label", ""))


def order(ops: Iterable[Op]) -> tuple[Op, ...]:
    return tuple(sorted(ops, key=sort_key))
