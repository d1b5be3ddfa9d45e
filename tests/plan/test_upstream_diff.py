"""upstream_diff walks objects itself and gives the same field changes DeepDiff gives for the
whole objects (the reference below is the earlier implementation, with its ``==`` shortcut
replaced by :func:`expsync.plan.equality.json_equal`: ``1 -> true`` is a change), without running
DeepDiff unless two lists differ."""

from __future__ import annotations

import copy
import random
import sys
from typing import Any

import pytest

from expsync.plan.equality import json_equal
from expsync.plan.diff import upstream_diff
from expsync.plan.ops import FieldChange


def reference(before: dict[str, Any], after: dict[str, Any]) -> tuple[FieldChange, ...]:
    from deepdiff import DeepDiff

    if json_equal(before, after):
        return ()
    changes = []
    for kind, items in DeepDiff(before, after, verbose_level=2, ignore_order=False).items():
        for path, val in items.items():
            p = path.removeprefix("root").replace("']['", ".").replace("['", "").replace("']", "").lstrip(".")
            if kind in ("values_changed", "type_changes"):
                if not json_equal(val.get("old_value"), val.get("new_value")):  # 1 -> 1.0: the same number
                    changes.append(FieldChange(p, val.get("old_value"), val.get("new_value")))
            elif kind in ("dictionary_item_added", "iterable_item_added"):
                changes.append(FieldChange(p, None, val))
            elif kind in ("dictionary_item_removed", "iterable_item_removed"):
                changes.append(FieldChange(p, val, None))
    return tuple(sorted(changes, key=lambda c: c.path))


BASE: dict[str, Any] = {
    "internal_id": "model-1-rc2", "base_url": "https://api.partner.example/v1",
    "extra_body": {"temperature": 0.2, "reasoning": {"effort": "low"}, "stop": ["\n", "END"], "n": 1},
    "remove_from_body": ["stream_options", "top_k"], "add_cache_breakpoints": True,
    "opencode_settings": {"ai_sdk_provider": "openai-compatible"},
}


def _mutations() -> list[dict[str, Any]]:
    out = []
    for change in [
        lambda d: d.update(internal_id="model-1-rc9"),
        lambda d: d["extra_body"].update(temperature=0.3),
        lambda d: d["extra_body"].update(temperature=1),  # float -> int: a type change
        lambda d: d["extra_body"].update(n=1.0),  # the same number for the gateway: never a change
        lambda d: d["extra_body"].update(n=True),
        lambda d: d["extra_body"]["reasoning"].update(effort="high"),
        lambda d: d["extra_body"].pop("reasoning"),
        lambda d: d["extra_body"].update(new={"a": [1, 2]}),
        lambda d: d["extra_body"].update(reasoning="none"),  # object -> string
        lambda d: d["extra_body"]["stop"].append("STOP"),
        lambda d: d["extra_body"]["stop"].pop(0),
        lambda d: d["extra_body"].update(stop=["\n", "END", {"x": 1}]),
        lambda d: d.update(remove_from_body=["top_k", "stream_options"]),
        lambda d: d.update(remove_from_body=[]),
        lambda d: d.pop("opencode_settings"),
        lambda d: d.update(add_cache_breakpoints=None),
        lambda d: d.update(add_cache_breakpoints=1),  # True -> 1: equal in Python, a change for the gateway
        lambda d: d["extra_body"].update(stop=["\n", "END"], n=1),  # no change at all
    ]:
        d = copy.deepcopy(BASE)
        change(d)
        out.append(d)
    return out


@pytest.mark.parametrize("after", _mutations())
def test_same_changes_as_deepdiff(after: dict[str, Any]) -> None:
    assert upstream_diff(BASE, after) == reference(BASE, after)


def test_random_combinations_match_deepdiff() -> None:
    rng = random.Random(7)
    muts = _mutations()
    for _ in range(200):
        a, b = rng.choice(muts), rng.choice(muts)
        merged = copy.deepcopy(a) | {k: v for k, v in b.items() if rng.random() < 0.5}
        assert upstream_diff(a, merged) == reference(a, merged), (a, merged)


def test_a_changed_field_does_not_run_deepdiff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "deepdiff", None)  # importing it would raise
    after = copy.deepcopy(BASE)
    after["internal_id"] = "model-1-rc9"
    after["extra_body"]["reasoning"]["effort"] = "high"
    assert upstream_diff(BASE, after) == (
        FieldChange("extra_body.reasoning.effort", "low", "high"), FieldChange("internal_id", "model-1-rc2", "model-1-rc9"))


@pytest.mark.parametrize(("before", "after"), [
    ({"n": None, "t": 1}, {"t": 1}),  # a null removed: the gateway stops sending "n": null
    ({"t": 1}, {"n": None, "t": 1}),  # a null added
    ({"n": 5}, {"n": None}),  # a value set to null: sent as null, not left out
    ({"stop": [None, "x"]}, {"stop": ["x"]}),
])
def test_a_null_in_extra_body_is_not_shown_as_absent(before: dict[str, Any], after: dict[str, Any]) -> None:
    # FieldChange's None means "absent"; the gateway merges extra_body into the request body,
    # so null and absent differ: the change is shown on the enclosing object, which says which
    up = {"internal_id": "m", "base_url": "https://api.partner.example/v1"}
    changes = upstream_diff(up | {"extra_body": before}, up | {"extra_body": after})
    if "stop" in before:
        assert changes == (FieldChange("extra_body.stop", before["stop"], after["stop"]),)
    else:
        assert changes == (FieldChange("extra_body", before, after),)


def test_a_removed_non_null_field_is_still_a_removal() -> None:
    up = {"internal_id": "m", "base_url": "https://x.example/v1", "extra_body": {"n": None, "t": 1}}
    assert upstream_diff(up, up | {"extra_body": {"n": None}}) == (FieldChange("extra_body.t", 1, None),)


def test_one_and_one_point_zero_are_not_a_change_beside_a_real_one() -> None:
    # the gateway reads jsonb with JSON.parse: 1.0 is 1; only internal_id changes what it sends
    before = {"internal_id": "a", "base_url": "https://x.example/v1", "extra_body": {"t": 1, "stop": [1, "x"]}}
    after = {"internal_id": "b", "base_url": "https://x.example/v1", "extra_body": {"t": 1.0, "stop": [1.0, "y"]}}
    assert upstream_diff(before, after) == (FieldChange("extra_body.stop[1]", "x", "y"), FieldChange("internal_id", "a", "b"))
