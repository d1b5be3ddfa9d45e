"""Saved plan -> Plan: every operation type of the JSON format has a loader, and a loaded plan
renders to the same JSON it was loaded from (also for ops the CLI tests do not produce)."""

from __future__ import annotations

import typing
import uuid

from expsync.model import Status
from expsync.rules import Trigger
from expsync.plan.document import ops_digest
from expsync.plan.ops import OP_TYPES, Explained, Reason, ReleaseExperiment, Transition
from expsync.plan.types import Digests, ExperimentPlan, Plan, shares
from expsync.render import json as render_json
from expsync.render import load


def test_every_operation_model_has_a_loader() -> None:
    union = typing.get_args(typing.get_args(render_json.OperationOut)[0])
    assert len(union) == len(OP_TYPES)
    fallback = load._op.dispatch(object)
    assert all(load._op.dispatch(model) is not fallback for model in union)


def test_release_round_trips() -> None:
    eid = uuid.uuid4()
    split = shares([(uuid.uuid4(), "a", 1), (uuid.uuid4(), "b", 2), (uuid.uuid4(), "c", 4)])
    ops = (Transition(experiment_key="old", experiment_id=eid, trigger=Trigger.COMPLETE, from_status=Status.PAUSED,
                      to_status=Status.COMPLETED),
           ReleaseExperiment(experiment_key="old", experiment_id=eid, reason=Reason.RELEASED_COMPLETED_ARCHIVED))
    e = ExperimentPlan(key="old", experiment_id=eid, public_model_id="p/old", public_model_id_before="p/old",
                       status_before=Status.PAUSED, status_after=Status.COMPLETED, archived_before=True,
                       archived_after=True, shares_before=split, shares_after=split,
                       routing_impact=(Explained(Reason.STOPS_ROUTING, (("public_model_id", "p/old"),)),),
                       cache_keys=("k",), ops=ops, notes=(Explained(Reason.MEMBERSHIP_CACHE),))
    plan = Plan(ops=ops, experiments=(e,), drift=(), diagnostics=(), digests=Digests("d", "a", ops_digest(ops)),
                cache_keys=("k",))  # the loader recomputes the ops digest from the file
    text = render_json.render_json(plan)
    assert render_json.render_json(load.load_plan(text)) == text


def test_show_refuses_a_file_whose_operations_were_edited() -> None:
    """``show`` loads through the same checks as ``apply --plan``: it never displays operations
    other than those the file's digest stands for."""
    import json

    import pytest

    from expsync.render.saved import SavedPlanTampered
    from tests.render import plans

    data = json.loads(render_json.render_json(plans.hot_swap_on_active()))
    for op in [*data["operations"], *(o for e in data["experiments"] for o in e["operations"])]:
        if op["type"] == "insert_version":
            op["upstream_after"]["internal_id"] = "edited"
    with pytest.raises(SavedPlanTampered):
        load.load_plan(json.dumps(data))
