"""``model.json_equal``: JSON values equal as the gateway (JavaScript) sees them. A boolean is
not a number (Python's ``True == 1 == 1.0`` is not), ``1`` and ``1.0`` are one number, objects
by key, arrays in order; and the planner uses it wherever it compares such values."""

from __future__ import annotations

import copy
import dataclasses
import math
import random
import uuid
from typing import Any

import pytest
from hypothesis import given, settings, strategies as st

from expsync import model
from expsync.model import json_equal
from tests.plan.builders import UP, actual, actual_of, codes, dexp, desired, dvar, op_names, run


def reference(a: Any, b: Any) -> bool:
    """The definition, written plainly (slow)."""
    if isinstance(a, bool) or isinstance(b, bool) or a is None or b is None:
        return type(a) is type(b) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(reference(v, b[k]) for k, v in a.items())
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)) and type(a) is type(b):
        return len(a) == len(b) and all(reference(v, w) for v, w in zip(a, b))
    return type(a) is type(b) and a == b


@pytest.mark.parametrize(("a", "b", "equal"), [
    (True, 1, False), (True, 1.0, False), (False, 0, False), (False, None, False), (0, None, False),
    (1, 1.0, True), (0, -0.0, True), (2**70, 2**70, True), (2**70, float(2**70), True), (True, True, True),
    ({"stream": True}, {"stream": 1}, False), ({"a": [1, {"b": False}]}, {"a": [1, {"b": 0}]}, False),
    ({"a": 1, "b": "x"}, {"b": "x", "a": 1}, True), ([1, 2], [2, 1], False), ({"a": None}, {}, False),
    ({"t": 1.5e16}, {"t": 15000000000000000}, True),  # jsonb reads 1.5e+16 back as an integer
    ((("n", True), {uuid.UUID(int=1): ("a", 1)}), (("n", 1), {uuid.UUID(int=1): ("a", 1)}), False),  # drift fields
    ((("n", True), {uuid.UUID(int=1): ("a", 1.0)}), (("n", True), {uuid.UUID(int=1): ("a", 1)}), True),
])
def test_examples(a: Any, b: Any, equal: bool) -> None:
    assert json_equal(a, b) is equal and json_equal(b, a) is equal


_leaves = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.sampled_from([0.0, 1.0, -1.0, 2.5]), st.text(max_size=3))
_json = st.recursive(_leaves, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                       st.dictionaries(st.text(max_size=2), inner, max_size=3)),
                     max_leaves=12)


def _twin(v: Any, rng: random.Random) -> Any:
    """``v`` with keys reordered and some numbers and booleans swapped for a value ``==`` calls equal."""
    if isinstance(v, dict):
        items = [(k, _twin(x, rng)) for k, x in v.items()]
        rng.shuffle(items)
        return dict(items)
    if isinstance(v, list):
        return [_twin(x, rng) for x in v]
    if isinstance(v, (bool, int, float)) and v in (0, 1) and rng.random() < 0.3:
        return rng.choice([bool(v), int(v), float(v)])
    if isinstance(v, (int, float)) and not isinstance(v, bool) and rng.random() < 0.3:
        return float(v) if isinstance(v, int) else (int(v) if v.is_integer() else v)
    return v


@settings(max_examples=400, deadline=None)
@given(_json, st.randoms(use_true_random=False))
def test_agrees_with_the_plain_definition(v: Any, rng: random.Random) -> None:
    twin = _twin(v, rng)
    assert v == twin  # Python's == always says equal here
    assert json_equal(v, twin) is reference(v, twin) is json_equal(twin, v)
    assert json_equal(v, copy.deepcopy(v))


@settings(max_examples=200, deadline=None)
@given(_json, _json)
def test_unrelated_values(a: Any, b: Any) -> None:
    assert json_equal(a, b) is reference(a, b)


def _walks(monkeypatch: pytest.MonkeyPatch) -> list[None]:
    """One item per call of the type walk (recursive calls included)."""
    calls: list[None] = []
    real = model._same_kinds

    def counted(a: object, b: object) -> bool:
        calls.append(None)
        return real(a, b)

    monkeypatch.setattr(model, "_same_kinds", counted)
    return calls


def test_equal_documents_are_not_walked(monkeypatch: pytest.MonkeyPatch) -> None:
    walks = _walks(monkeypatch)
    doc = {"internal_id": "m", "extra_body": {"stream": True, "t": 0.2, "stop": ["a", "b"]}, "n": 10**30}
    reordered = {"n": 10**30, "extra_body": {"t": 0.2, "stop": ["a", "b"], "stream": True}, "internal_id": "m"}
    assert json_equal({"a": 1, **UP}, {**UP, "a": 1})  # key order does not matter (jsonb reorders)
    assert len(walks) == 0  # the canonical texts are equal: no walk
    assert json_equal(doc, reordered)  # an integer beyond 64 bits: orjson refuses, the walk decides
    assert not json_equal({"x": True}, {"x": 1}) and json_equal({"x": 1}, {"x": 1.0})
    assert len(walks) > 0
    assert not json_equal({"x": math.nan}, {"x": None})  # never equal texts for unequal values


# -- the planner compares with it ---------------------------------------------------------------

def _upstream(t: object) -> dict[str, Any]:
    return {**UP, "extra_body": {"stream": t}}


def test_true_changed_to_1_in_the_database_is_drift_the_plan_reverts() -> None:
    d = dexp(variants=(dvar("a", upstream=_upstream(True)), dvar("b")))
    a = actual_of(d)
    v = next(x for x in a.variants if x.label == "a")
    assert v.current is not None
    changed = dataclasses.replace(v, current=dataclasses.replace(v.current, upstream=_upstream(1)))
    a = dataclasses.replace(a, variants=tuple(changed if x is v else x for x in a.variants))
    p = run(desired(d), actual(a, managed=(d,)))
    assert op_names(p) == ["InsertVersion"]
    assert [(i.path, i.reverted) for i in p.drift] == [("variants.a.upstream", True)]
    assert [x.code for x in p.diagnostics] == ["W501"]


def test_a_git_edit_from_1_to_true_is_a_new_version() -> None:
    before = dexp(variants=(dvar("a", upstream=_upstream(1)), dvar("b")))
    after = dexp(variants=(dvar("a", upstream=_upstream(True)), dvar("b")))
    p = run(desired(after), actual(actual_of(before), managed=(before,)))
    assert op_names(p) == ["InsertVersion", "RecordManaged"] and not p.drift and not codes(p)
    version = p.ops[0]
    assert [(c.path, c.before, c.after) for c in version.upstream_diff] == [("extra_body.stream", 1, True)]  # type: ignore[union-attr]


def test_1_and_1_0_are_one_number_to_the_planner() -> None:
    before = dexp(variants=(dvar("a", upstream=_upstream(1)), dvar("b")))
    after = dexp(variants=(dvar("a", upstream=_upstream(1.0)), dvar("b")))
    assert not run(desired(after), actual(actual_of(before), managed=(after,))).has_changes


@pytest.mark.parametrize(("was", "now"), [(True, 1), (1, True), (0, False)])
def test_metadata_true_and_1_differ(was: object, now: object) -> None:
    d = dataclasses.replace(dexp(), metadata={"flag": now})
    row = actual_of(dataclasses.replace(d, metadata={"flag": was}))
    p = run(desired(d), actual(dataclasses.replace(row, metadata={"flag": was}), managed=(d,)))
    assert op_names(p) == ["UpdateFields"]  # git's value written back (drift from the record)
    assert [i.path for i in p.drift] == ["metadata"]
