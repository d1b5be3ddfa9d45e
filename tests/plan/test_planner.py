"""Planner behaviour on hand-built snapshots: every cell of spec §1.2 exercised through a real
diff, the §1.1 edges, ordering (§5.5), ownership and drift. No database."""

from __future__ import annotations

import dataclasses
import itertools
import uuid
from datetime import timedelta

import pytest

from expsync.model import ActualVersion, KeyChange, Status
from expsync.plan.ops import (
    Explained,
    Reason,
    AddVariant,
    ChangeWeight,
    CreateExperiment,
    DeleteExperiment,
    InsertVersion,
    RecordManaged,
    RelabelVariant,
    ReleaseExperiment,
    RemoveVariant,
    SetArchived,
    Transition,
    UpdateFields,
)
from tests.plan.builders import NOW, UP, actual, actual_of, codes, desired, dexp, dvar, op_names, run

D, A, P, C = Status.DRAFT, Status.ACTIVE, Status.PAUSED, Status.COMPLETED


def applied(d, status=None, archived=None):
    """An experiment expsync applied earlier (managed, DB equal to its last applied YAML)."""
    base = dataclasses.replace(d, status=status or d.status, archived=d.archived if archived is None else archived)
    return actual(actual_of(base), managed=(base,))


def gateway_ops(p):
    return [o for o in p.ops if not isinstance(o, RecordManaged)]


# -- no changes ------------------------------------------------------------------------------
@pytest.mark.parametrize("status", list(Status))
def test_applied_state_plans_no_changes(status):
    d = dexp(status=status, archived=status is C)
    p = run(desired(d), applied(d))
    assert p.ops == () and not p.has_changes and not p.refused


def test_plan_is_deterministic():
    d = dexp(status=A)
    a = applied(dexp(status=D))
    assert run(desired(d), a) == run(desired(d), a)


# -- §1.2, one test per row, every status ---------------------------------------------------
EDITS = {
    # row: (edit the desired experiment, the op it produces, refusal code)
    "name": (lambda d: dataclasses.replace(d, name="Other", description="new"), UpdateFields, None),
    "public_model_id": (lambda d: dataclasses.replace(d, public_model_id="partner/y"), UpdateFields, "E302"),
    "add_variant": (lambda d: dataclasses.replace(d, variants=d.variants + (dvar("c"),)), AddVariant, "E303"),
    "remove_variant": (lambda d: dataclasses.replace(d, variants=d.variants + (dvar("c"),)), RemoveVariant, "E303"),
    "weight": (lambda d: dataclasses.replace(d, variants=(dvar("a", 3), dvar("b"))), ChangeWeight, "E303"),
    "label": (lambda d: dataclasses.replace(d, variants=(dvar("A!", key="a"), dvar("b"))), RelabelVariant, "E304"),
    "hot_swap": (lambda d: dataclasses.replace(d, variants=(dvar("a", upstream={**UP, "internal_id": "m2"}), dvar("b"))),
                 InsertVersion, "E305"),
}
ALLOWED = {"name": {D, A, P, C}, "public_model_id": {D}, "add_variant": {D}, "remove_variant": {D}, "weight": {D},
           "label": {D, A, P}, "hot_swap": {D, A, P}}


@pytest.mark.parametrize(("row", "status"), list(itertools.product(EDITS, Status)))
def test_edit_rule(row, status):
    edit, op_type, code = EDITS[row]
    base = dexp(status=status, archived=status is C)
    if row == "remove_variant":  # the database has an extra variant c that the YAML drops
        with_c = edit(base)
        a = actual(actual_of(with_c), managed=(with_c,))
        d = base
    else:
        a, d = applied(base), edit(base)
    p = run(desired(d), a)
    if status in ALLOWED[row]:
        assert not p.refused, p.diagnostics
        assert any(isinstance(o, op_type) for o in p.ops), op_names(p)
    else:
        assert codes(p) == [code], p.diagnostics
        assert not any(isinstance(o, op_type) for o in p.ops)
        diag = next(x for x in p.diagnostics if x.is_error)
        assert str(status) in diag.message and diag.source is not None
        if row in ("weight", "add_variant", "public_model_id"):
            assert "create a new experiment" in diag.hint


def test_weight_change_on_paused_says_create_a_new_experiment():
    base = dexp(status=P)
    p = run(desired(dataclasses.replace(base, variants=(dvar("a", 2), dvar("b")))), applied(base))
    [diag] = [x for x in p.diagnostics if x.is_error]
    assert diag.code == "E303" and "create a new experiment" in diag.hint
    assert (diag.source.line, diag.source.col) == (8, 13) and diag.path == "variants[0].weight"


def test_relabel_on_active_is_allowed_and_keeps_the_slot():
    base = dexp(status=A)
    p = run(desired(dataclasses.replace(base, variants=(dvar("rc1 (renamed)", key="a"), dvar("b")))), applied(base))
    assert op_names(p) == ["RelabelVariant", "RecordManaged"] and not p.refused
    assert p.ops[0].variant_id == base.variant_id(base.variants[0])


def test_changing_a_variant_key_is_remove_plus_add_with_hint():
    base = dexp(status=A)
    p = run(desired(dataclasses.replace(base, variants=(dvar("a", key="a2"), dvar("b")))), applied(base))
    assert set(codes(p)) == {"E303"}
    assert any("set `key:`" in d.hint for d in p.diagnostics)


@pytest.mark.parametrize(("status", "ok"), [(D, True), (A, False), (P, True), (C, True)])
def test_archive(status, ok):
    base = dexp(status=status)
    p = run(desired(dataclasses.replace(base, archived=True)), applied(base))
    if ok:
        assert any(isinstance(o, SetArchived) and o.after for o in p.ops) and not p.refused
    else:
        assert codes(p) == ["E306"]


@pytest.mark.parametrize("status", [D, P, C])
def test_unarchive(status):
    base = dexp(status=status, archived=True)
    p = run(desired(dataclasses.replace(base, archived=False)), applied(base))
    assert any(isinstance(o, SetArchived) and not o.after for o in p.ops) and not p.refused


@pytest.mark.parametrize(("status", "archived", "expect"), [
    (D, False, ["DeleteExperiment"]),
    (C, True, ["ReleaseExperiment"]),
    (A, False, "E502"), (P, False, "E502"), (C, False, "E502"), (P, True, "E502"),
])
def test_removing_managed_yaml(status, archived, expect):
    base = dexp(status=status, archived=archived)
    p = run(desired(), applied(base), allow_empty=True)  # the only managed one: E504 otherwise
    if isinstance(expect, str):
        assert codes(p) == [expect] and p.ops == ()
    else:
        assert op_names(p) == expect


def test_unmanaged_experiments_are_never_touched():
    other = dexp("other", status=A)
    p = run(desired(), actual(actual_of(other)))
    assert p.ops == () and not p.refused


# -- §1.1 through the planner ------------------------------------------------------------------
@pytest.mark.parametrize(("src", "dst"), [(s, t) for s in Status for t in Status if s is not t])
def test_transition(src, dst):
    base = dexp(status=src, archived=False)
    p = run(desired(dataclasses.replace(base, status=dst)), applied(base))
    legal = {(D, A), (A, P), (P, A), (A, C), (P, C)}
    if (src, dst) in legal:
        [t] = [o for o in p.ops if isinstance(o, Transition)]
        assert (t.from_status, t.to_status) == (src, dst) and not p.refused
    else:
        assert codes(p) == ["E301"]
        diag = p.diagnostics[0]
        assert str(src) in diag.message and str(dst) in diag.message
        assert diag.hint  # the legal alternatives
        assert not any(isinstance(o, Transition) for o in p.ops)


def test_completed_to_active_is_refused_with_hint():
    base = dexp(status=C)
    p = run(desired(dataclasses.replace(base, status=A)), applied(base))
    [diag] = p.diagnostics
    assert diag.code == "E301" and "terminal" in diag.hint and "create a new experiment" in diag.hint
    assert (diag.source.file, diag.source.line) == ("experiments/exp.yaml", 4)


# -- creation -----------------------------------------------------------------------------------
def test_create_as_draft():
    p = run(desired(dexp()), actual())
    assert op_names(p) == ["CreateExperiment", "AddVariant", "AddVariant", "InsertVersion", "InsertVersion", "RecordManaged"]
    assert all(o.key_change is KeyChange.NEW for o in p.ops if isinstance(o, InsertVersion))


def test_create_as_active_activates_after_the_rows_exist():
    p = run(desired(dexp(status=A)), actual())
    names = op_names(p)
    assert names[0] == "CreateExperiment" and names.index("Transition") > names.index("InsertVersion")
    assert p.experiments[0].status_path == "(new) -> draft -> active"
    assert Explained(Reason.STARTS_ROUTING, (("public_model_id", "partner/x"),)) in p.experiments[0].routing_impact


@pytest.mark.parametrize("status", [P, C])
def test_create_as_paused_or_completed_is_refused(status):
    p = run(desired(dexp(status=status, archived=status is C)), actual())
    assert codes(p) == ["E311"] and p.ops == ()


def test_deterministic_ids():
    p1, p2 = run(desired(dexp()), actual()), run(desired(dexp()), actual())
    assert p1.ops == p2.ops and p1.digests == p2.digests
    create = p1.ops[0]
    assert isinstance(create, CreateExperiment) and create.experiment_id == dexp().resolved_id


# -- guards -----------------------------------------------------------------------------------
def test_activation_with_one_variant_is_allowed():
    base = dexp(variants=(dvar("a"),))
    p = run(desired(dataclasses.replace(base, status=A)), applied(base))
    assert codes(p) == [] and "Transition" in op_names(p)
    assert [(s.label, s.percent) for s in p.experiments[0].shares_after] == [("a", 100.0)]


def test_activation_needs_a_variant():
    base = dexp(variants=())
    p = run(desired(dataclasses.replace(base, status=A)), applied(base))
    assert codes(p) == ["E308"]


def test_activation_refuses_a_weight_sum_above_two_to_the_32():
    base = dexp(variants=(dvar("a", 2_000_000_000), dvar("b", 2_000_000_000), dvar("c", 2_000_000_000)))
    p = run(desired(dataclasses.replace(base, status=A)), applied(base))
    assert codes(p) == ["E312"]


def test_shares_are_the_gateways_exact_shares():
    # 3 x 2e9: the uint32 bucket never reaches the last variant's upper range (46.57/46.57/6.87 %)
    base = dexp(variants=(dvar("a", 2_000_000_000), dvar("b", 2_000_000_000), dvar("c", 2_000_000_000)))
    p = run(desired(base), actual())
    by_label = {s.label: round(s.percent, 2) for s in p.experiments[0].shares_after}
    assert sorted(by_label.values()) == [6.87, 46.57, 46.57]


def test_activation_needs_an_effective_version():
    base = dexp()
    a = actual_of(base)
    v0 = a.variants[0]
    future = ActualVersion(id=v0.current.id, variant_id=v0.id, upstream=dict(UP), encrypted_api_key={},
                           effective_at=NOW + timedelta(days=1))
    a = dataclasses.replace(a, variants=(dataclasses.replace(v0, current=None, pending=future),) + a.variants[1:])
    p = run(desired(dataclasses.replace(base, status=A)), actual(a, managed=(base,)))
    assert "E309" in codes(p)
    assert any(d.code == "W502" for d in p.diagnostics)


def test_activation_refused_while_a_variant_has_a_pending_version_even_with_an_effective_one():
    # the admin API's guard reads each variant's latest version with no time filter
    # (gateway-profiles §4): an older version already effective does not let it through
    base = dexp()
    a = actual_of(base)
    v0 = a.variants[0]
    future = dataclasses.replace(v0.current, id=uuid.uuid5(v0.id, "v2"), effective_at=NOW + timedelta(days=1))
    a = dataclasses.replace(a, variants=(dataclasses.replace(v0, pending=future),) + a.variants[1:])
    p = run(desired(dataclasses.replace(base, status=A)), actual(a, managed=(base,)))
    assert codes(p) == ["E309"] and p.refused
    assert any(d.code == "E309" and repr(v0.label) not in d.message and v0.label in d.message for d in p.diagnostics)


def _with_pending(a, upstream):
    v0 = a.variants[0]
    future = dataclasses.replace(v0.current, id=uuid.uuid5(v0.id, "v2"), upstream=dict(upstream),
                                 effective_at=NOW + timedelta(days=1))
    return dataclasses.replace(a, variants=(dataclasses.replace(v0, pending=future),) + a.variants[1:])


NEXT = {**UP, "internal_id": "m-next"}


@pytest.mark.parametrize("edit, key_change", [
    ({**UP, "internal_id": "m-hotfix"}, KeyChange.UNCHANGED),  # a hot swap the pending version would undo
    (NEXT, KeyChange.ROTATED),  # the pending upstream with a rotated key: the pending version keeps the old key
], ids=["hot_swap", "rotation"])
def test_new_version_under_a_pending_version_is_refused(edit, key_change):
    base = dexp(status=A)
    a = _with_pending(actual_of(base), NEXT)
    want = dataclasses.replace(base, variants=(dataclasses.replace(base.variants[0], upstream=edit),) + base.variants[1:])
    kc = {("exp", "a"): key_change, ("exp", "b"): KeyChange.UNCHANGED}
    p = run(desired(want), actual(a, managed=(base,)), kc)
    assert codes(p) == ["E313"] and p.refused
    assert not any(isinstance(o, InsertVersion) for o in p.ops)


def test_yaml_saying_what_the_pending_version_holds_plans_no_version():
    base = dexp(status=A)
    a = _with_pending(actual_of(base), NEXT)
    want = dataclasses.replace(base, variants=(dataclasses.replace(base.variants[0], upstream=NEXT),) + base.variants[1:])
    p = run(desired(want), actual(a, managed=(base,)))
    assert codes(p) == [] and not any(isinstance(o, InsertVersion) for o in p.ops)
    assert [d.code for d in p.diagnostics] == ["W502"]


def test_activation_while_unmanaged_experiment_holds_the_public_id():
    other = dataclasses.replace(actual_of(dexp("legacy", status=A)), name="Legacy UI experiment")
    p = run(desired(dexp("new", status=A)), actual(other))
    assert codes(p) == ["E310"]
    msg = p.diagnostics[0].message
    assert "Legacy UI experiment" in msg and "not managed by expsync" in msg and str(other.id) in msg


def test_complete_a_and_activate_b_on_one_public_id_is_ordered():
    a_exp, b_exp = dexp("zz-old", status=A), dexp("aa-new", status=D)
    a = actual(actual_of(a_exp), actual_of(b_exp), managed=(a_exp, b_exp))
    p = run(desired(dataclasses.replace(a_exp, status=C), dataclasses.replace(b_exp, status=A)), a)
    assert not p.refused, p.diagnostics
    ts = [(o.experiment_key, o.to_status) for o in p.ops if isinstance(o, Transition)]
    assert ts == [("zz-old", C), ("aa-new", A)]  # completion first although its key sorts last


def test_pausing_does_not_free_the_public_id():
    a_exp, b_exp = dexp("a", status=A), dexp("b", status=D)
    a = actual(actual_of(a_exp), actual_of(b_exp), managed=(a_exp, b_exp))
    p = run(desired(dataclasses.replace(a_exp, status=P), dataclasses.replace(b_exp, status=A)), a)
    assert codes(p) == ["E310"]


def test_unarchive_and_activate_in_one_plan_is_ordered():
    base = dexp(status=P, archived=True)
    p = run(desired(dataclasses.replace(base, status=A, archived=False)), applied(base))
    assert not p.refused
    kinds = [type(o).__name__ for o in gateway_ops(p)]
    assert kinds == ["SetArchived", "Transition"]


def test_complete_then_archive_is_ordered():
    base = dexp(status=A)
    p = run(desired(dataclasses.replace(base, status=C, archived=True)), applied(base))
    assert not p.refused
    assert [type(o).__name__ for o in gateway_ops(p)] == ["Transition", "SetArchived"]


def test_draft_edits_then_activation():
    base = dexp(status=D)
    d = dataclasses.replace(base, status=A, public_model_id="partner/z", variants=(dvar("a", 2), dvar("b"), dvar("c")))
    p = run(desired(d), applied(base))
    assert not p.refused, p.diagnostics
    names = [type(o).__name__ for o in gateway_ops(p)]
    assert names[-1] == "Transition" and "UpdateFields" in names and "AddVariant" in names and "ChangeWeight" in names
    e = p.experiments[0]
    assert [s.weight for s in e.shares_after] and sum(s.percent for s in e.shares_after) == pytest.approx(100)
    assert {k.rsplit(":", 1)[-1] for k in e.cache_keys if "by-public-id" in k} == {"partner/x", "partner/z"}
    assert any(k.endswith("experimented-public-ids") for k in e.cache_keys)  # partner/z starts routing


# -- api keys -----------------------------------------------------------------------------------
def test_key_rotation_inserts_a_version_without_upstream_change():
    base = dexp(status=A)
    kc = {("exp", "a"): KeyChange.ROTATED, ("exp", "b"): KeyChange.UNCHANGED}
    p = run(desired(base), applied(base), key_changes=kc)
    [v] = [o for o in p.ops if isinstance(o, InsertVersion)]
    assert v.label == "a" and v.key_change is KeyChange.ROTATED and v.upstream_diff == ()


def test_hot_swap_keeps_the_key_and_diffs_fields():
    base = dexp(status=A)
    d = dataclasses.replace(base, variants=(dvar("a", upstream={**UP, "internal_id": "m2", "extra_body": {"t": 1}}), dvar("b")))
    p = run(desired(d), applied(base))
    [v] = [o for o in p.ops if isinstance(o, InsertVersion)]
    assert v.key_change is KeyChange.UNCHANGED and v.base_version_id is not None
    assert [(c.path, c.before, c.after) for c in v.upstream_diff] == [("extra_body", None, {"t": 1}), ("internal_id", "m", "m2")]


def test_no_secrets_marks_plan_unapplyable():
    base = dexp(status=A)
    p = run(desired(base), applied(base), key_changes={}, compare_secrets=False)
    assert p.ops == () and not p.applyable and any(d.code == "W503" for d in p.diagnostics)


# -- drift and ownership --------------------------------------------------------------------------
def test_protective_pause_outside_git_is_refused_until_acknowledged():
    base = dexp(status=A)
    a = actual(actual_of(base, status=P), managed=(base,))
    p = run(desired(base), a)
    assert codes(p) == ["E501"] and not any(isinstance(o, Transition) for o in p.ops)
    assert p.drift and p.drift[0].protective and not p.drift[0].reverted
    ack = run(desired(dataclasses.replace(base, status=P)), a)
    assert not ack.refused and not any(isinstance(o, Transition) for o in ack.ops)


def test_archived_outside_git_is_protective():
    base = dexp(status=P)
    p = run(desired(base), actual(actual_of(base, archived=True), managed=(base,)))
    assert codes(p) == ["E501"]


def test_non_protective_drift_is_reverted_with_warning():
    base = dexp(status=A)
    p = run(desired(base), actual(actual_of(base, name="Edited in UI"), managed=(base,)))
    assert not p.refused
    assert [(d.path, d.actual, d.reverted) for d in p.drift] == [("name", "Edited in UI", True)]
    assert any(d.code == "W501" for d in p.diagnostics)
    assert isinstance(p.ops[0], UpdateFields)


def test_git_change_is_not_drift():
    base = dexp(status=A)
    p = run(desired(dataclasses.replace(base, name="New name")), applied(base))
    assert p.drift == ()


def test_adopting_an_existing_row_by_id_pin():
    ui = actual_of(dexp("ui-made", status=A))
    d = dexp("adopted", status=A, id=ui.id)
    d = dataclasses.replace(d, variants=tuple(dataclasses.replace(v, id=av.id) for v, av in
                                              zip(d.variants, sorted(ui.variants, key=lambda v: v.label))))
    p = run(desired(d), actual(ui))
    assert op_names(p) == ["RecordManaged"] and p.ops[0].adopted


def test_record_holds_no_secret_values():
    p = run(desired(dexp()), actual())
    rec = next(o for o in p.ops if isinstance(o, RecordManaged))
    assert rec.last_applied["variants"][0]["api_key"] == "env:K"


def test_every_op_type_has_an_order_rank():
    from expsync.plan.ops import OP_TABLE, OP_TYPES

    assert set(OP_TYPES) == set(OP_TABLE)


def test_digests_change_with_inputs():
    d = dexp()
    p1 = run(desired(d), actual())
    p2 = run(desired(dataclasses.replace(d, name="x")), actual())
    assert p1.digests.desired != p2.digests.desired and p1.digests.ops != p2.digests.ops
    assert p1.digests.actual == p2.digests.actual


def test_planner_imports_no_io_libraries():
    import subprocess
    import sys

    code = ("import sys, expsync.plan, expsync.plan.planner;"
            "bad=[m for m in ('sqlalchemy','redis','click','yaml','psycopg','expsync.render','expsync.state','expsync.apply','boto3','hvac') if m in sys.modules];"
            "print(bad); sys.exit(1 if bad else 0)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_removing_an_id_pin_does_not_duplicate_the_experiment():
    pinned = dexp("pinned", status=A, id=__import__("uuid").UUID("11111111-2222-3333-4444-555555555555"))
    a = actual(actual_of(pinned), managed=(pinned,))
    p = run(desired(dataclasses.replace(pinned, id=None)), a)
    assert codes(p) == ["E503"] and p.ops == ()
    assert "11111111-2222-3333-4444-555555555555" in p.diagnostics[0].hint


def test_completed_experiment_ignores_key_rotation():
    from expsync.rules import keys_matter as _km
    keys_matter = lambda d: _km(d.status)  # noqa: E731

    base = dexp(status=C, archived=True)
    p = run(desired(base), applied(base), key_changes={("exp", "a"): KeyChange.ROTATED})
    assert p.ops == () and not p.refused
    assert not keys_matter(base) and all(keys_matter(dexp(status=s)) for s in (D, A, P))


def test_variant_changes_outside_git_are_drift():
    base = dexp(status=A)
    a = actual_of(base)
    v0 = a.variants[0]
    hotfix = dataclasses.replace(v0.current, id=__import__("uuid").uuid4(), upstream={**UP, "internal_id": "m-hotfix"})
    a = dataclasses.replace(a, variants=(dataclasses.replace(v0, label="renamed-in-ui", current=hotfix),) + a.variants[1:])
    p = run(desired(base), actual(a, managed=(base,)))
    key = next(v.key for v in base.variants if base.variant_id(v) == v0.id)
    paths = {d.path: d for d in p.drift}
    assert set(paths) == {f"variants.{key}.label", f"variants.{key}.upstream"}
    assert all(d.reverted and not d.protective for d in p.drift)
    warnings = [d for d in p.diagnostics if d.code == "W501"]
    assert len(warnings) == 2 and all(w.source is not None for w in warnings)
    assert {type(o).__name__ for o in p.ops} >= {"RelabelVariant", "InsertVersion"}
