"""Each planner concern on its own: pair, diff, drift, check, explain, order (no database)."""

from __future__ import annotations

import dataclasses

import pytest

from expsync.model import ActualState, KeyChange, Status
from expsync.plan.check import check_activations, check_edits
from expsync.plan.diff import Context, diff, upstream_diff
from expsync.plan.drift import EXPERIMENT_FIELDS, VARIANT_FIELDS, drift, last_applied_of
from expsync.plan.explain import cache_keys_for, explain
from expsync.plan.ops import (
    AddVariant,
    ChangeWeight,
    Explained,
    InsertVersion,
    Reason,
    SetArchived,
    Transition,
    UpdateFields,
)
from expsync.plan.order import order
from expsync.plan.pair import pair
from expsync.rules import Trigger
from tests.plan.builders import NOW, UP, actual, actual_of, desired, dexp, dvar

D, A, P, C = Status.DRAFT, Status.ACTIVE, Status.PAUSED, Status.COMPLETED


def ctx(a: ActualState, keys: frozenset[str] = frozenset()) -> Context:
    return Context(now=NOW, key_changes={}, managed_by_id={m.experiment_id: m for m in a.managed.values()},
                   desired_keys=keys, existing=frozenset(a.experiments))


# -- pair -----------------------------------------------------------------------------------
def test_pair_makes_missing_sides_explicit() -> None:
    new, kept, gone = dexp("new", pid="p/new"), dexp("kept", pid="p/kept"), dexp("gone", pid="p/gone")
    pairs = pair(desired(new, kept), actual(actual_of(kept), actual_of(gone), managed=(kept, gone)))
    by_key = {p.key: p for p in pairs}
    assert [p.key for p in pairs] == ["gone", "kept", "new"]
    assert by_key["new"].actual is None and by_key["new"].managed is None
    assert by_key["gone"].desired is None and by_key["gone"].actual is not None
    assert by_key["kept"].desired is kept and by_key["kept"].managed is not None


def test_pair_keeps_a_renamed_key_that_pins_the_same_id() -> None:
    old = dexp("old")
    renamed = dataclasses.replace(dexp("renamed"), id=old.resolved_id)
    pairs = pair(desired(renamed), actual(actual_of(old), managed=(old,)))
    assert [p.key for p in pairs] == ["renamed"]


# -- diff -----------------------------------------------------------------------------------
def test_diff_proposes_ops_without_judging_them() -> None:
    # a weight change on an active experiment is proposed here; check refuses it
    d = dexp(status=A, variants=(dvar("a", 2), dvar("b")))
    a = actual(actual_of(dexp(status=A)), managed=(dexp(status=A),))
    r = diff(pair(desired(d), a)[0], ctx(a, frozenset({"exp"})))
    assert [type(o) for o in r.ops if not o.__class__.__name__ == "RecordManaged"] == [ChangeWeight]
    assert r.diagnostics == []


def test_diff_carries_the_typed_secret_reference() -> None:
    d = dexp()
    r = diff(pair(desired(d), actual())[0], ctx(actual()))
    version = next(o for o in r.ops if isinstance(o, InsertVersion))
    assert version.api_key_ref == d.variants[0].api_key and version.key_change is KeyChange.NEW


def test_upstream_diff_of_equal_objects_is_empty_without_deepdiff(monkeypatch: pytest.MonkeyPatch) -> None:
    import deepdiff  # imported by upstream_diff when it needs it (validate never loads it)

    def boom(*_: object, **__: object) -> None:
        raise AssertionError("DeepDiff ran on equal objects")

    monkeypatch.setattr(deepdiff, "DeepDiff", boom)
    assert upstream_diff(dict(UP), dict(UP)) == ()
    # the patch is live: DeepDiff still compares two lists that differ (objects are walked
    # without it, tests/plan/test_upstream_diff.py)
    with pytest.raises(AssertionError):
        upstream_diff({**UP, "remove_from_body": ["a"]}, {**UP, "remove_from_body": ["b"]})


# -- drift ----------------------------------------------------------------------------------
def test_one_field_spec_for_the_record_and_the_drift() -> None:
    d = dexp()
    record = last_applied_of(d)
    # omit_none fields (metadata) are recorded only when set
    assert [f.name for f in EXPERIMENT_FIELDS if not (f.omit_none and f.desired(d) is None)] == [
        k for k in record if k not in ("id", "variants")]
    assert [f.name for f in VARIANT_FIELDS] == [k for k in record["variants"][0] if k not in ("key", "id", "api_key")]


def test_drift_blocks_an_unacknowledged_protective_change() -> None:
    d = dexp(status=A)
    found = drift(d.key, d, actual_of(d, status=P), actual(managed=(d,)).managed[d.key])
    assert found.blocked == {A} and [x.code for x in found.diagnostics] == ["E501"]
    assert found.items[0].protective and not found.items[0].reverted


def test_drift_reverts_a_weight_changed_outside_git() -> None:
    d = dexp(status=D)
    a = actual_of(d)
    a = dataclasses.replace(a, variants=tuple(dataclasses.replace(v, weight=7) if v.label == "a" else v for v in a.variants))
    found = drift(d.key, d, a, actual(managed=(d,)).managed[d.key])
    assert [(x.path, x.actual, x.reverted) for x in found.items] == [("variants.a.weight", 7, True)]
    assert [x.code for x in found.diagnostics] == ["W501"] and not found.blocked


# -- check ----------------------------------------------------------------------------------
def test_check_drops_a_refused_op_and_keeps_the_rest() -> None:
    base = dexp(status=A)
    d = dataclasses.replace(base, name="renamed", public_model_id="p/other")
    a = actual(actual_of(base), managed=(base,))
    r = diff(pair(desired(d), a)[0], ctx(a, frozenset({"exp"})))
    check_edits(r, A)
    update = next(o for o in r.ops if isinstance(o, UpdateFields))
    assert [c.path for c in update.changes] == ["name"]
    assert [x.code for x in r.diagnostics] == ["E302"]


def test_check_archive_against_the_final_status_and_unarchive_against_the_current() -> None:
    base = dexp(status=A)
    done = dataclasses.replace(base, status=C, archived=True)
    a = actual(actual_of(base), managed=(base,))
    r = diff(pair(desired(done), a)[0], ctx(a, frozenset({"exp"})))
    check_edits(r, A)
    assert any(isinstance(o, SetArchived) for o in r.ops) and r.diagnostics == []


def test_check_drops_the_first_version_of_a_refused_variant() -> None:
    base = dexp(status=A)
    more = dataclasses.replace(base, variants=(*base.variants, dvar("c")))
    a = actual(actual_of(base), managed=(base,))
    r = diff(pair(desired(more), a)[0], ctx(a, frozenset({"exp"})))
    check_edits(r, A)
    assert not any(isinstance(o, (AddVariant, InsertVersion)) for o in r.ops)
    assert [x.code for x in r.diagnostics] == ["E303"]


def test_check_activations_sees_completions_in_the_same_plan() -> None:
    old, new = dexp("old", status=A, pid="p/x"), dexp("new", status=D, pid="p/x")
    a = actual(actual_of(old), actual_of(new), managed=(old, new))
    wanted = desired(dataclasses.replace(old, status=C), dataclasses.replace(new, status=A))
    results = [diff(p, ctx(a, frozenset(wanted.experiments))) for p in pair(wanted, a)]
    check_activations(results, a, NOW)
    assert all(r.diagnostics == [] for r in results)
    still = desired(old, dataclasses.replace(new, status=A))
    results = [diff(p, ctx(a, frozenset(still.experiments))) for p in pair(still, a)]
    check_activations(results, a, NOW)
    assert [x.code for r in results for x in r.diagnostics] == ["E310"]


# -- explain and cache keys -----------------------------------------------------------------
def test_explain_gives_reasons_with_values_not_sentences() -> None:
    d = dexp(status=A, pid="p/x")
    r = diff(pair(desired(d), actual())[0], ctx(actual()))
    e = explain(r, actual(), "")
    assert e.routing_impact == (Explained(Reason.STARTS_ROUTING, (("public_model_id", "p/x"),)),
                                Explained(Reason.MEMBERSHIP_CACHE))


def test_cache_keys_come_from_the_ops_and_the_rows_they_touch() -> None:
    base = dexp(status=D, pid="p/old")
    a = actual(actual_of(base), managed=(base,))
    moved = dataclasses.replace(base, public_model_id="p/new")
    r = diff(pair(desired(moved), a)[0], ctx(a, frozenset({"exp"})))
    assert cache_keys_for(r.ops, a, "pre:") == (
        "pre:ai-gateway.model-experiments:experimented-public-ids",
        "pre:ai-gateway.model-experiments:by-public-id:p/new",
        "pre:ai-gateway.model-experiments:by-public-id:p/old",
    )
    bookkeeping_only = [o for o in r.ops if o.__class__.__name__ == "RecordManaged"]
    assert cache_keys_for(bookkeeping_only, a, "") == ()


# -- order ----------------------------------------------------------------------------------
def test_order_puts_ops_sharing_a_statement_next_to_each_other() -> None:
    ops = [Transition(experiment_key=k, experiment_id=dexp(k).resolved_id, trigger=Trigger(t), from_status=s,
                      to_status=e)
           for k, (t, s, e) in {"d": ("activate", D, A), "a": ("complete", A, C), "b": ("pause", A, P),
                                "c": ("complete", P, C)}.items()]
    ordered = order(ops)
    assert [o.experiment_key for o in ordered] == ["a", "c", "b", "d"]
