"""The saved-plan loader checks a plan file against itself: its ops digest is recomputed from
its own ``operations`` (and each experiment's operations must be its share of them)."""

from __future__ import annotations

import copy
import dataclasses
import json
from typing import Any

import pytest

from expsync.errors import InvalidInput, StalePlan
from expsync.plan.document import op_document
from expsync.plan.ops import OP_TYPES, CreateExperiment
from expsync.render.json import op_model, render_json
from expsync.render.saved import SavedPlanInvalid, SavedPlanTampered, applyable_digests, load_saved_plan
from tests.render import plans


def saved(plan: Any) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(render_json(plan))
    return data


@pytest.mark.parametrize("name", sorted(plans.ALL))
def test_every_plan_file_loads_and_its_digests_are_the_plans(name: str) -> None:
    plan = plans.ALL[name]()
    loaded = load_saved_plan(render_json(plan))
    assert loaded.digests == plan.digests
    assert loaded.model.operations == [op_model(op) for op in plan.ops]


def test_the_json_operation_is_the_digested_document_for_every_op_type() -> None:
    seen = set()
    for make in plans.ALL.values():
        for op in make().ops:
            assert op_model(op).model_dump(mode="json") == json.loads(json.dumps(op_document(op))), type(op)
            seen.add(type(op))
    assert seen == set(OP_TYPES)
    create = next(op for op in plans.create_active().ops if isinstance(op, CreateExperiment))
    with_metadata = dataclasses.replace(create, metadata={"team": "search", "ratio": 0.25, "tags": ["a"]})
    assert op_model(with_metadata).model_dump(mode="json") == op_document(with_metadata)


def _swap_op(data: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    flat = next(o for o in data["operations"] if o["type"] == "insert_version")
    per = next(o for e in data["experiments"] for o in e["operations"] if o == flat)
    return flat, per


def test_edited_operations_with_kept_digests_are_refused_with_exit_5() -> None:
    data = saved(plans.hot_swap_on_active())
    load_saved_plan(json.dumps(data))  # as written: fine
    for flat_too, shown_too in ((True, True), (True, False), (False, True)):
        edited = copy.deepcopy(data)
        flat, per = _swap_op(edited)
        for op, edit in ((flat, flat_too), (per, shown_too)):
            if edit:
                op["upstream_after"]["base_url"] = "https://attacker.example/v1"
        with pytest.raises(SavedPlanTampered) as e:
            load_saved_plan(json.dumps(edited), name="plan.json")
        assert isinstance(e.value, StalePlan) and e.value.exit_code == 5
        assert "plan.json" in str(e.value) and "[E507]" in str(e.value) and "edited" in str(e.value)


def test_dropped_or_reordered_operations_are_refused() -> None:
    data = saved(plans.transitions())
    assert len(data["operations"]) > 1
    for change in (lambda ops: ops.pop(), lambda ops: ops.reverse()):
        edited = copy.deepcopy(data)
        change(edited["operations"])
        with pytest.raises(SavedPlanTampered):
            load_saved_plan(json.dumps(edited))


def test_not_a_plan_file_is_invalid_input() -> None:
    for text in ("", "[]", "{", json.dumps({"format_version": "1"}), json.dumps(saved(plans.no_changes()) | {"x": 1})):
        with pytest.raises(SavedPlanInvalid) as e:
            load_saved_plan(text, name="p.json")
        assert isinstance(e.value, InvalidInput) and e.value.exit_code == 3 and "p.json" in str(e.value)


def test_a_no_secrets_plan_loads_for_showing_but_is_not_applyable() -> None:
    loaded = load_saved_plan(render_json(plans.no_secrets()))
    with pytest.raises(SavedPlanInvalid, match="--no-secrets"):
        applyable_digests(loaded)


def test_loading_encodes_each_operation_document_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """The flat ``operations`` are encoded once for both the digest and the comparison with
    the per-experiment lists (which are documents of their own, encoded once each)."""
    from expsync.plan import digest

    data = saved(plans.hot_swap_on_active())
    text = json.dumps(data)
    encoded: list[object] = []
    real = digest._encode
    monkeypatch.setattr(digest, "_encode", lambda obj: encoded.append(obj) or real(obj))
    load_saved_plan(text)
    per_experiment = [o for e in data["experiments"] for o in e["operations"]]
    assert data["operations"] and len(encoded) == len(data["operations"]) + len(per_experiment)
