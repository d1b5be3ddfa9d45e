"""The planner's shortcuts for the common case (nothing to do) find exactly what the full path
finds, and do skip the work: counted calls, never timings."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from expsync.model import ActualExperiment, ActualState, DesiredExperiment, KeyChange, Status
from expsync.plan import Plan, check, diff, digest, planner
from expsync.plan import drift as drift_mod
from expsync.plan.types import Digests
from expsync.render.text import render_text

from .builders import NOW, UP, actual, actual_of, dexp, desired, dvar, run

A, P = Status.ACTIVE, Status.PAUSED


def _count(monkeypatch: pytest.MonkeyPatch, module: object, name: str) -> list[None]:
    """Patch ``module.name`` with a wrapper that counts its calls (one item per call)."""
    calls: list[None] = []
    real: Callable[..., Any] = getattr(module, name)

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(None)
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, counted)
    return calls


def _base() -> DesiredExperiment:
    return dexp(status=A, variants=(dvar("a", 2, upstream={**UP, "extra_body": {"t": 1}}), dvar("b")))


def _variant(a: ActualExperiment, which: str, **changes: Any) -> ActualExperiment:
    return dataclasses.replace(a, variants=tuple(dataclasses.replace(v, **changes) if v.label == which else v
                                                 for v in a.variants))


def _version(a: ActualExperiment, label: str, **changes: Any) -> ActualExperiment:
    v = next(v for v in a.variants if v.label == label)
    assert v.current is not None
    return _variant(a, label, current=dataclasses.replace(v.current, **changes))


def _in_sync() -> tuple[DesiredExperiment, ActualState]:
    d = _base()
    return d, actual(actual_of(d), managed=(d,))


def _with_row(change: Callable[[ActualExperiment], ActualExperiment]) -> tuple[DesiredExperiment, ActualState]:
    d = _base()
    return d, actual(change(actual_of(d)), managed=(d,))


def _with_desired(**changes: Any) -> tuple[DesiredExperiment, ActualState]:
    d = _base()
    return dataclasses.replace(d, **changes), actual(actual_of(d), managed=(d,))


def _pending(a: ActualExperiment) -> ActualExperiment:
    v = next(v for v in a.variants if v.label == "a")
    assert v.current is not None
    return _variant(a, "a", pending=dataclasses.replace(v.current, effective_at=NOW + timedelta(days=1)))


def _extra_variant(a: ActualExperiment) -> ActualExperiment:
    other = actual_of(dexp(variants=(dvar("c"),)))
    return dataclasses.replace(a, variants=(*a.variants, *other.variants))


#: one experiment expsync manages, in sync or changed in one way (row, git or record)
SCENARIOS: dict[str, Callable[[], tuple[DesiredExperiment, ActualState]]] = {
    "in sync": _in_sync,
    "name drifted": lambda: _with_row(lambda a: dataclasses.replace(a, name="other")),
    "description drifted": lambda: _with_row(lambda a: dataclasses.replace(a, description="")),
    "paused outside git": lambda: _with_row(lambda a: dataclasses.replace(a, status=P)),
    "archived outside git": lambda: _with_row(lambda a: dataclasses.replace(a, is_archived=True)),
    "metadata drifted": lambda: _with_row(lambda a: dataclasses.replace(a, metadata={})),
    "weight drifted": lambda: _with_row(lambda a: _variant(a, "a", weight=5)),
    "label drifted": lambda: _with_row(lambda a: _variant(a, "a", label="z")),
    "upstream drifted": lambda: _with_row(lambda a: _version(a, "a", upstream=dict(UP))),
    "upstream 1.0 for 1": lambda: _with_row(lambda a: _version(a, "a", upstream={**UP, "extra_body": {"t": 1.0}})),
    "upstream true for 1": lambda: _with_row(lambda a: _version(a, "a", upstream={**UP, "extra_body": {"t": True}})),
    "pending version": lambda: _with_row(_pending),
    "no version": lambda: _with_row(lambda a: _variant(a, "a", current=None)),
    "extra variant in the database": lambda: _with_row(_extra_variant),
    "variant missing in the database": lambda: _with_row(lambda a: dataclasses.replace(a, variants=a.variants[:1])),
    "renamed in git": lambda: _with_desired(name="renamed"),
    "paused in git": lambda: _with_desired(status=P),
    "weight changed in git": lambda: _with_desired(variants=(dvar("a", 3, upstream={**UP, "extra_body": {"t": 1}}),
                                                             dvar("b"))),
    "key reference changed in git": lambda: _with_desired(variants=(
        dvar("a", 2, upstream={**UP, "extra_body": {"t": 1}}, ref="env:OTHER"), dvar("b"))),
    "record from an older apply": lambda: (_base(), actual(actual_of(_base()), managed=(dexp(status=A),))),
    "not managed (adopted)": lambda: (_base(), actual(actual_of(_base()))),
}


def _plan(d: DesiredExperiment, a: ActualState, kc: KeyChange = KeyChange.UNCHANGED, **opts: Any) -> Plan:
    return run(desired(d), a, {(d.key, v.key): kc for v in d.variants}, **opts)


def _full_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(diff, "_in_sync", lambda *_: False)


@pytest.mark.parametrize("kc", [KeyChange.UNCHANGED, KeyChange.ROTATED, KeyChange.UNKNOWN])
@pytest.mark.parametrize("hide", [False, True])
@pytest.mark.parametrize("name", list(SCENARIOS))
def test_the_in_sync_shortcut_finds_what_the_full_diff_finds(monkeypatch: pytest.MonkeyPatch, name: str,
                                                             hide: bool, kc: KeyChange) -> None:
    d, a = SCENARIOS[name]()
    fast = _plan(d, a, kc, redact_unmanaged=hide)
    with monkeypatch.context() as m:
        _full_path(m)
        full = _plan(d, a, kc, redact_unmanaged=hide)
    assert fast == full
    assert render_text(fast) == render_text(full)
    if name == "in sync" and kc is not KeyChange.ROTATED:
        assert not fast.has_changes and not fast.drift and not fast.diagnostics


def test_an_experiment_in_sync_is_not_walked_field_by_field(monkeypatch: pytest.MonkeyPatch) -> None:
    drifts = _count(monkeypatch, drift_mod, "drift")
    views = _count(monkeypatch, drift_mod, "views")
    variants = _count(monkeypatch, diff, "_variants")
    routing = _count(monkeypatch, check, "_final_routing")
    edits = _count(monkeypatch, planner, "check_edits")
    exps = [dataclasses.replace(_base(), key=f"e{i}", public_model_id=f"p/{i}") for i in range(5)]
    p = run(desired(*exps), actual(*(actual_of(e) for e in exps), managed=tuple(exps)))
    assert not p.has_changes
    assert (len(drifts), len(views), len(variants), len(routing), len(edits)) == (0, 0, 0, 0, 0)


def test_a_changed_experiment_still_takes_the_full_diff(monkeypatch: pytest.MonkeyPatch) -> None:
    drifts = _count(monkeypatch, drift_mod, "drift")
    variants = _count(monkeypatch, diff, "_variants")
    routing = _count(monkeypatch, check, "_final_routing")
    d, a = _with_desired(status=A)  # in sync ...
    changed = _plan(dataclasses.replace(d, name="renamed"), a)  # ... but for its name
    assert [type(o).__name__ for o in changed.ops] == ["UpdateFields", "RecordManaged"]
    assert (len(drifts), len(variants), len(routing)) == (1, 1, 0)
    draft = dataclasses.replace(d, status=Status.DRAFT)  # an activation: the routing picture is drawn
    _plan(d, actual(actual_of(draft), managed=(draft,)))
    assert len(routing) == 1


# -- digests: computed when read, once per plan -----------------------------------------------
def _state(n: int) -> tuple[Any, ActualState]:
    exps = [dataclasses.replace(_base(), key=f"e{i}", public_model_id=f"p/{i}") for i in range(n)]
    return desired(*exps), actual(*(actual_of(e) for e in exps), managed=tuple(exps[:-1]))


def test_a_text_plan_encodes_nothing_for_its_digests(monkeypatch: pytest.MonkeyPatch) -> None:
    encoded = _count(monkeypatch, digest, "_encode")
    d, a = _state(4)
    p = run(d, a)
    assert p.has_changes  # the unmanaged one is adopted
    render_text(p)
    assert len(encoded) == 0


def test_each_digest_encodes_each_object_once(monkeypatch: pytest.MonkeyPatch) -> None:
    encoded = _count(monkeypatch, digest, "_encode")
    d, a = _state(4)
    p = run(d, a)
    first = (p.digests.desired, p.digests.actual, p.digests.ops)
    # desired experiments, then actual experiments and ownership records, then the ops
    assert len(encoded) == 4 + (4 + 3) + len(p.ops)
    assert (p.digests.desired, p.digests.actual, p.digests.ops) == first
    assert dataclasses.replace(p.digests, secrets="x").desired == first[0]
    assert len(encoded) == 4 + (4 + 3) + len(p.ops)  # nothing encoded again


def test_deferred_digests_equal_the_same_digests_given_as_strings() -> None:
    d, a = _state(2)
    p = run(d, a)
    given = Digests(*(digest.digest_items([]) for _ in range(3)))
    assert Digests(lambda: given.desired, lambda: given.actual, lambda: given.ops) == given
    assert hash(Digests(lambda: "d", "a", "o")) == hash(Digests("d", "a", "o"))
    assert Digests("d", "a", "o") != Digests("d", "a", "o", "s")
    again = run(d, a)
    assert p.digests == again.digests and repr(p.digests) == repr(again.digests)
    with pytest.raises(TypeError):
        Digests("d")  # desired, actual and ops have no default


def test_binding_the_secrets_digest_computes_no_other_digest(monkeypatch: pytest.MonkeyPatch) -> None:
    encoded = _count(monkeypatch, digest, "_encode")
    d, a = _state(2)
    p = run(d, a)
    bound = p.digests.with_secrets("hmac-sha256:x")
    assert len(encoded) == 0
    assert bound == dataclasses.replace(p.digests, secrets="hmac-sha256:x") and bound.secrets == "hmac-sha256:x"
    assert p.digests.secrets == ""
