"""Untrusted plans (``--no-secrets``) show no value of an experiment expsync does not manage, and
a plan that removes every managed experiment is refused (E504) unless allowed."""

from __future__ import annotations

import dataclasses

from expsync.model import Status
from expsync.plan.ops import ChangeWeight, InsertVersion, RelabelVariant, RemoveVariant, UpdateFields
from tests.plan.builders import actual, actual_of, codes, desired, dexp, dvar, op_names, run

D, A, P, C = Status.DRAFT, Status.ACTIVE, Status.PAUSED, Status.COMPLETED

#: what the admin UI holds for an experiment expsync does not manage
SECRET_UP = {"internal_id": "partner-secret-model-7", "base_url": "https://private.partner.example/v1"}
HIDDEN = ("Partner secret launch", "embargoed until june", "secret-label", "partner-secret-model-7",
          "private.partner.example")


def unmanaged(status: Status = D, pid: str = "partner/x") -> tuple:  # type: ignore[type-arg]
    """An experiment created in the admin UI (no ownership record) and a PR pinning its id."""
    theirs = dexp("theirs", status=status, pid=pid, name="Partner secret launch", description="embargoed until june",
                  variants=(dvar("secret-label", 7, upstream=SECRET_UP), dvar("b", 3, upstream=SECRET_UP)))
    pinned = dexp("pr", status=status, pid=pid, id=theirs.resolved_id, name="PR name",
                  variants=(dvar("mine", 1), dvar("b", 5)))
    return theirs, pinned


def _untrusted(d, a, **opts):  # type: ignore[no-untyped-def]
    return run(d, a, key_changes={}, compare_secrets=False, **opts)


def test_pinning_an_unmanaged_id_shows_none_of_its_values() -> None:
    theirs, pinned = unmanaged()
    shown = _untrusted(desired(pinned), actual(actual_of(theirs)))  # without hiding: the values are there
    assert all(x in repr(shown) for x in HIDDEN[:4])
    p = _untrusted(desired(pinned), actual(actual_of(theirs)), redact_unmanaged=True)
    assert not [x for x in HIDDEN if x in repr(p)]
    (e,) = p.experiments
    assert e.values_hidden and e.shares_before == () and e.public_model_id_before is None
    assert p.values_hidden
    by_type = {type(o): o for o in p.ops}
    assert [c.before for c in by_type[UpdateFields].changes] == [None, None]  # type: ignore[attr-defined]
    removed = by_type[RemoveVariant]
    assert isinstance(removed, RemoveVariant) and removed.label == str(removed.variant_id) and removed.weight is None
    assert isinstance(by_type[ChangeWeight], ChangeWeight) and by_type[ChangeWeight].before is None  # type: ignore[attr-defined]
    versions = [o for o in p.ops if isinstance(o, InsertVersion)]
    assert versions and all(v.upstream_diff == () for v in versions if v.base_version_id is not None)
    assert all(v.upstream_before is None for v in versions)


def test_cache_keys_do_not_name_the_public_id_an_unmanaged_experiment_has() -> None:
    theirs, pinned = unmanaged(pid="partner/secret-codename")
    moved = dataclasses.replace(pinned, public_model_id="partner/pr")
    shown = _untrusted(desired(moved), actual(actual_of(theirs)))
    assert "partner/secret-codename" in " ".join(shown.cache_keys)
    p = _untrusted(desired(moved), actual(actual_of(theirs)), redact_unmanaged=True)
    assert "partner/secret-codename" not in repr(p)
    assert p.cache_keys[-1].endswith("by-public-id:partner/pr") and p.experiments[0].cache_keys == p.cache_keys[-1:]


def test_metadata_of_an_unmanaged_experiment_is_not_shown() -> None:
    theirs, pinned = unmanaged()
    db = actual(dataclasses.replace(actual_of(theirs), metadata={"owner": "secret-team-42"}))
    assert "secret-team-42" in repr(_untrusted(desired(pinned), db))
    assert "secret-team-42" not in repr(_untrusted(desired(pinned), db, redact_unmanaged=True))


def test_managed_experiments_keep_their_values_when_hiding() -> None:
    old = dexp(status=D, name="Old name")
    new = dexp(status=D, name="New name", variants=(dvar("a", 4), dvar("b")))
    p = _untrusted(desired(new), actual(actual_of(old), managed=(old,)), redact_unmanaged=True)
    assert "Old name" in repr(p) and not p.experiments[0].values_hidden
    assert [o.before for o in p.ops if isinstance(o, ChangeWeight)] == [1]


def test_refusals_of_an_unmanaged_experiment_name_no_value() -> None:
    theirs, pinned = unmanaged(A)
    relabelled = dataclasses.replace(pinned, variants=(dvar("renamed", 9, key="secret-label"), dvar("b", 5)))
    p = _untrusted(desired(relabelled), actual(actual_of(theirs)), redact_unmanaged=True)
    assert "E303" in codes(p)
    text = " ".join(d.message + d.hint for d in p.diagnostics)
    assert not [x for x in HIDDEN if x in text]
    assert "weight change (not shown) -> 9" in text
    assert [o for o in p.ops if isinstance(o, RelabelVariant)][0].before != "secret-label"


def test_e310_names_an_unmanaged_router_by_id_only() -> None:
    theirs, _ = unmanaged(A)
    mine = dexp("mine", status=A)
    shown = _untrusted(desired(mine), actual(actual_of(theirs)))
    assert "Partner secret launch" in " ".join(d.message for d in shown.diagnostics)
    p = _untrusted(desired(mine), actual(actual_of(theirs)), redact_unmanaged=True)
    (e310,) = [d for d in p.diagnostics if d.code == "E310"]
    assert "Partner secret launch" not in e310.message
    assert f"an experiment not managed by expsync ({theirs.resolved_id})" in e310.message


def test_security_items_of_an_unmanaged_experiment_show_no_old_origin() -> None:
    theirs, pinned = unmanaged()
    p = _untrusted(desired(pinned), actual(actual_of(theirs)), redact_unmanaged=True)
    assert p.security and all(x.origin_before is None and x.values_hidden for x in p.security)
    assert "private.partner.example" not in repr(p.security)


# -- E504: a plan that removes every managed experiment -----------------------------------------


def test_removing_every_managed_experiment_is_refused() -> None:
    a, b = dexp("a", pid="partner/a"), dexp("b", pid="partner/b")
    db = actual(actual_of(a), actual_of(b), managed=(a, b))
    p = run(desired(), db)
    assert codes(p) == ["E504"] and p.refused
    (d,) = p.diagnostics
    assert "--allow-empty" in d.hint and "(2)" in d.message
    # new experiments do not make up for removing every managed one (a wrong folder)
    assert codes(run(desired(dexp("c", pid="partner/c")), db)) == ["E504"]


def test_allow_empty_removes_them() -> None:
    a, b = dexp("a", pid="partner/a"), dexp("b", pid="partner/b")
    p = run(desired(), actual(actual_of(a), actual_of(b), managed=(a, b)), allow_empty=True)
    assert not p.refused and op_names(p) == ["DeleteExperiment", "DeleteExperiment"]


def test_keeping_one_or_managing_none_is_not_refused() -> None:
    a, b = dexp("a", pid="partner/a"), dexp("b", pid="partner/b")
    p = run(desired(a), actual(actual_of(a), actual_of(b), managed=(a, b)))
    assert codes(p) == [] and op_names(p) == ["DeleteExperiment"]
    assert codes(run(desired(), actual())) == []
    # a key renamed with its id pinned is kept, not removed
    renamed = dataclasses.replace(dexp("a2", pid="partner/a"), id=a.resolved_id)
    assert "E504" not in codes(run(desired(renamed), actual(actual_of(a), managed=(a,))))

