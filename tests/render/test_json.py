"""The JSON wire format: versioned, schema-checked, built from its own output models."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from expsync.render import summarize
from expsync.render.json import FORMAT_VERSION, json_schema, render_json, schema_text
from tests.plan.builders import actual, desired, run
from tests.render import plans

ROOT = Path(__file__).resolve().parents[2]
VALIDATOR = jsonschema.Draft7Validator(json_schema())


def rendered(plan: Any) -> dict[str, Any]:
    return json.loads(render_json(plan))


def test_committed_schema_matches_code() -> None:
    committed = (ROOT / "schemas" / "plan.schema.json").read_text(encoding="utf-8")
    assert committed == schema_text(), "run: python -m expsync.render.json > schemas/plan.schema.json"


def test_schema_is_valid_draft_07() -> None:
    schema = json_schema()
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
    jsonschema.Draft7Validator.check_schema(schema)


@pytest.mark.parametrize("name", sorted(plans.ALL))
def test_every_rendered_plan_validates_against_the_committed_schema(name: str) -> None:
    committed = json.loads((ROOT / "schemas" / "plan.schema.json").read_text(encoding="utf-8"))
    jsonschema.Draft7Validator(committed).validate(rendered(plans.ALL[name]()))


def test_top_level_shape_and_status_flags() -> None:
    plan = plans.refused()
    out = rendered(plan)
    assert list(out) == ["format_version", "security", "applyable", "refused", "has_changes", "secrets_compared",
                         "values_hidden", "gateway_profile", "summary", "digests", "experiments", "operations", "drift",
                         "diagnostics", "cache_keys"]
    assert out["format_version"] == FORMAT_VERSION == "2"
    assert (out["applyable"], out["refused"], out["has_changes"]) == (False, True, True)
    assert out["summary"] == summarize(plan).as_dict()
    assert out["digests"] == {"desired": plan.digests.desired, "actual": plan.digests.actual, "ops": plan.digests.ops,
                              "secrets": plan.digests.secrets}
    assert [d["code"] for d in out["diagnostics"]] == ["E303", "E301"]
    assert out["diagnostics"][0] == plan.diagnostics[0].as_dict()


def test_no_changes_plan() -> None:
    out = rendered(plans.no_changes())
    assert out["has_changes"] is False and out["applyable"] is True
    assert out["experiments"] == [] and out["operations"] == [] and out["cache_keys"] == []
    assert out["summary"]["operations"] == 0


def test_hot_swap_insert_version_carries_upstream_diff_and_key_change() -> None:
    out = rendered(plans.hot_swap_on_active())
    [e] = out["experiments"]
    assert (e["key"], e["action"], e["status_path"]) == ("foo-rc-bakeoff", "update", "active")
    assert e["shares_after"] == [{"label": "rc2", "weight": 1, "percent": 50.0, "buckets": 2**31},
                                {"label": "rc1", "weight": 1, "percent": 50.0, "buckets": 2**31}]
    ops = [o for o in e["operations"] if o["type"] == "insert_version"]
    assert len(ops) == 1
    op = ops[0]
    assert op["action"] == "update" and op["label"] == "rc2" and op["key_change"] == "unchanged"
    assert op["upstream_diff"] == [{"path": "internal_id", "before": "foo-rc2", "after": "foo-rc3"}]
    assert op["upstream_before"]["internal_id"] == "foo-rc2" and op["upstream_after"]["internal_id"] == "foo-rc3"
    assert op["api_key_ref"] == "env:FOO_RC2_KEY"
    assert e["routing_impact"] == [{"code": "traffic_moves", "values": {"label": "rc2", "version": "upstream_changed"}}]
    assert e["cache_keys"] == ["ai-gateway.model-experiments:by-public-id:partner/preview-foo"]


def test_flat_operations_follow_execution_order_with_experiment_keys() -> None:
    plan = plans.transitions()
    out = rendered(plan)
    flat = out["operations"]
    assert [(o["experiment_key"], o["type"]) for o in flat] == [
        (op.experiment_key, _snake(type(op).__name__)) for op in plan.ops
    ]
    # completions and pauses before activations, archive after both (spec §5.5); ops sharing
    # one statement (one edge) are next to each other
    kinds = [(o["type"], o.get("trigger")) for o in flat if o["type"] in ("transition", "set_archived")]
    assert kinds == [("transition", "complete"), ("transition", "pause"), ("transition", "activate"), ("set_archived", None)]
    per_experiment = [o for e in out["experiments"] for o in e["operations"]]
    assert sorted(map(json.dumps, per_experiment)) == sorted(map(json.dumps, flat))
    assert out["summary"]["transition"] == 3


def test_transition_and_weight_fields() -> None:
    out = rendered(plans.transitions())
    e = next(e for e in out["experiments"] if e["key"] == "foo-rc-bakeoff")
    assert (e["status_before"], e["status_after"], e["status_path"]) == ("draft", "active", "draft -> active")
    assert {"type": "change_weight", "label": "rc1", "before": 1, "after": 3}.items() <= e["operations"][0].items()
    assert e["shares_after"][1] == {"label": "rc1", "weight": 3, "percent": 75.0, "buckets": 3 * 2**30}
    t = next(o for o in e["operations"] if o["type"] == "transition")
    assert (t["trigger"], t["from_status"], t["to_status"], t["action"]) == ("activate", "draft", "active", "transition")
    baz = next(e for e in out["experiments"] if e["key"] == "baz")
    assert (baz["archived_before"], baz["archived_after"]) == (False, True)


def test_drift_items() -> None:
    out = rendered(plans.drift())
    assert out["drift"] == [
        {"experiment_key": "foo-rc-bakeoff", "path": "name", "last_applied": "Foo RC1 vs RC2",
         "actual": "Renamed in the UI", "protective": False, "reverted": True},
        {"experiment_key": "qux", "path": "status", "last_applied": "active", "actual": "paused",
         "protective": True, "reverted": False},
    ]
    qux = next(e for e in out["experiments"] if e["key"] == "qux")
    assert qux["operations"] == [] and qux["action"] is None


def test_delete_and_release() -> None:
    out = rendered(plans.delete_and_release())
    by_key = {e["key"]: e for e in out["experiments"]}
    assert [o["type"] for o in by_key["scratch"]["operations"]] == ["delete_experiment"]
    assert by_key["scratch"]["status_after"] is None and by_key["scratch"]["action"] == "delete"
    assert by_key["foo-rc-bakeoff"]["action"] == "manage"
    assert out["summary"] == {"create": 0, "update": 0, "transition": 0, "delete": 1, "manage": 1,
                                   "operations": 2, "errors": 0, "warnings": 0}


def test_no_secrets_plan_is_not_applyable_and_key_is_unknown() -> None:
    out = rendered(plans.no_secrets())
    assert (out["applyable"], out["refused"], out["secrets_compared"]) == (False, False, False)
    [op] = [o for o in out["operations"] if o["type"] == "insert_version"]
    assert op["key_change"] == "unknown"


def test_non_ascii_is_kept_and_output_is_parseable() -> None:
    d = dataclasses.replace(plans.foo(), name="Fóó — 試験")
    text = render_json(run(desired(d), actual()))
    assert "Fóó — 試験" in text
    VALIDATOR.validate(json.loads(text))


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()
