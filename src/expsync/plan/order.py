"""Execution order as data (spec §5 item 5).

One sort key ``(phase, experiment_key, op rank, variant key)``. Phases make every
intermediate state valid:

0. unarchive            - an archived row cannot become active (CHECK constraint)
1. edits                - creates, field/variant/version edits while the status still allows them
2. complete/pause/delete- frees public ids (completion) before anything activates
3. activate             - after the other experiment on the public id has completed
4. archive              - last: the experiment has left ``active`` by now
5. bookkeeping          - expsync's ownership records
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Final

from expsync.plan.machine import Trigger
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

#: rank of each op type inside its phase (a test checks every Op type is here)
OP_RANK: Final[Mapping[type, int]] = {
    SetArchived: 0,
    CreateExperiment: 1,
    UpdateFields: 2,
    RemoveVariant: 3,  # free labels before adding/relabelling
    RelabelVariant: 4,
    AddVariant: 5,
    ChangeWeight: 6,
    InsertVersion: 7,
    DeleteExperiment: 8,
    Transition: 9,
    ReleaseExperiment: 10,
    RecordManaged: 11,
}

_EDIT, _RELEASE, _ACTIVATE, _ARCHIVE, _BOOKKEEPING = 1, 2, 3, 4, 5


def phase_of(op: Op) -> int:
    match op:
        case SetArchived(after=False):
            return 0
        case SetArchived():
            return _ARCHIVE
        case Transition(trigger=Trigger.ACTIVATE):
            return _ACTIVATE
        case Transition() | DeleteExperiment():
            return _RELEASE
        case ReleaseExperiment() | RecordManaged():
            return _BOOKKEEPING
        case _:
            return _EDIT


def sort_key(op: Op) -> tuple[int, str, int, str]:
    return (phase_of(op), op.experiment_key, OP_RANK[type(op)], getattr(op, "variant_key", "") or getattr(op, "label", ""))


def order(ops: Iterable[Op]) -> tuple[Op, ...]:
    return tuple(sorted(ops, key=sort_key))
