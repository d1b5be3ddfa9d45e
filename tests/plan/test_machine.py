"""The state machine table mirrors spec §1.1 and §1.2 exactly."""

from __future__ import annotations

import itertools

import pytest

from expsync.model import Status
from expsync.plan import machine
from expsync.plan.machine import Change, Trigger

D, A, P, C = Status.DRAFT, Status.ACTIVE, Status.PAUSED, Status.COMPLETED

EDGES = {(D, A), (A, P), (P, A), (A, C), (P, C)}


@pytest.mark.parametrize(("src", "dst"), list(itertools.product(Status, Status)))
def test_every_edge_and_non_edge(src: Status, dst: Status) -> None:
    trig = machine.trigger_for(src, dst)
    if (src, dst) in EDGES:
        assert trig is not None and machine.next_status(src, trig) is dst
    else:
        assert trig is None


def test_triggers_named_as_in_spec() -> None:
    assert machine.trigger_for(D, A) is Trigger.ACTIVATE
    assert machine.trigger_for(P, A) is Trigger.ACTIVATE
    assert machine.trigger_for(A, P) is Trigger.PAUSE
    assert machine.trigger_for(A, C) is machine.trigger_for(P, C) is Trigger.COMPLETE


def test_completed_is_terminal_with_guidance() -> None:
    assert machine.legal_triggers(C) == []
    assert "create a new experiment" in machine.describe_alternatives(C)
    assert "activate -> active" in machine.describe_alternatives(D)


SPEC_TABLE = {  # spec §1.2: change -> (draft, active, paused, completed)
    Change.NAME: (1, 1, 1, 1),
    Change.PUBLIC_MODEL_ID: (1, 0, 0, 0),
    Change.VARIANT_SET: (1, 0, 0, 0),
    Change.VARIANT_LABEL: (1, 1, 1, 0),
    Change.NEW_VERSION: (1, 1, 1, 0),
    Change.ARCHIVE: (1, 0, 1, 1),
    Change.UNARCHIVE: (1, 0, 1, 1),  # "-" for active: an active row is never archived
    Change.DELETE: (1, 0, 0, 0),
}


@pytest.mark.parametrize(("change", "status"), list(itertools.product(Change, Status)))
def test_edit_table_cell(change: Change, status: Status) -> None:
    allowed = SPEC_TABLE[change][list(Status).index(status)]
    assert machine.may(change, status) is bool(allowed)
    assert change in machine.REFUSAL_CODE
