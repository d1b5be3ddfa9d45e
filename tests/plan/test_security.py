"""Security-relevant changes: which variants send their key somewhere new, computed by the planner."""

from __future__ import annotations

import pytest

from expsync.model import KeyChange, Status
from expsync.plan.security import Security, origin_of
from tests.plan.builders import UP, actual, actual_of, desired, dexp, dvar, run

D, A, P, C = Status.DRAFT, Status.ACTIVE, Status.PAUSED, Status.COMPLETED
EVIL = {"internal_id": "m", "base_url": "https://attacker.example/v1"}


def applied(d):  # type: ignore[no-untyped-def]
    return actual(actual_of(d), managed=(d,))


def items(p):  # type: ignore[no-untyped-def]
    return [(x.code, x.experiment_key, x.label, x.api_key_ref_before, x.api_key_ref, x.origin_before, x.origin)
            for x in p.security]


@pytest.mark.parametrize(("url", "origin"), [
    ("https://api.example/v1", "https://api.example"),
    ("  HTTPS://API.Example:443/v2?x=1 ", "https://api.example"),
    ("http://api.example:80/", "http://api.example"),
    ("https://api.example:8443/v1", "https://api.example:8443"),
    ("http://[::1]:8080/v1", "http://[::1]:8080"),
    ("https://bücher.example/", "https://xn--bcher-kva.example"),
    ("https://0x7f.1/", "https://127.0.0.1"),  # the gateway's WHATWG parser normalises IPv4 forms
    ("not a url", None),
    (None, None),
])
def test_origin_is_scheme_host_and_non_default_port(url: object, origin: str | None) -> None:
    assert origin_of(url) == origin  # type: ignore[arg-type]


def test_key_reference_change_is_listed_with_old_and_new_reference() -> None:
    old = dexp(status=A)
    new = dexp(status=A, variants=(dvar("a", ref="env:GITHUB_TOKEN"), dvar("b")))
    p = run(desired(new), applied(old), key_changes={("exp", "a"): KeyChange.ROTATED, ("exp", "b"): KeyChange.UNCHANGED})
    assert items(p) == [(Security.KEY_REF_CHANGED, "exp", "a", "env:K", "env:GITHUB_TOKEN", None, "https://api.example")]
    assert not p.security[0].is_warning


def test_reference_change_is_listed_even_when_the_value_is_equal_and_no_version_is_written() -> None:
    old = dexp(status=A)
    new = dexp(status=A, variants=(dvar("a", ref="env:OTHER"), dvar("b")))
    p = run(desired(new), applied(old))
    assert not [o for o in p.ops if type(o).__name__ == "InsertVersion"]
    assert [x.code for x in p.security] == [Security.KEY_REF_CHANGED]


def test_origin_change_of_a_key_carrying_variant_is_listed() -> None:
    old = dexp(status=A)
    new = dexp(status=A, variants=(dvar("a", upstream=EVIL), dvar("b")))
    p = run(desired(new), applied(old))
    assert items(p) == [(Security.ORIGIN_CHANGED, "exp", "a", None, "env:K", "https://api.example",
                         "https://attacker.example")]


def test_reference_and_origin_changing_together_is_a_warning() -> None:
    old = dexp(status=A)
    new = dexp(status=A, variants=(dvar("a", upstream=EVIL, ref="env:EXPSYNC_DATABASE_URL"), dvar("b")))
    p = run(desired(new), applied(old), key_changes={("exp", "a"): KeyChange.ROTATED, ("exp", "b"): KeyChange.UNCHANGED})
    assert items(p) == [(Security.KEY_SENT_TO_NEW_ORIGIN, "exp", "a", "env:K", "env:EXPSYNC_DATABASE_URL",
                         "https://api.example", "https://attacker.example")]
    assert p.security[0].is_warning
    assert p.security[0].source is not None and p.security[0].source.file == "experiments/exp.yaml"


def test_same_origin_spelled_differently_is_not_a_change() -> None:
    old = dexp(status=A)
    same = {"internal_id": "m", "base_url": " HTTPS://API.EXAMPLE:443/v2 "}
    p = run(desired(dexp(status=A, variants=(dvar("a", upstream=same), dvar("b")))), applied(old))
    assert p.ops and p.security == ()


def test_new_variant_to_a_new_origin_is_listed_and_to_a_used_origin_is_not() -> None:
    old = dexp(status=D)
    new = dexp(status=D, variants=(dvar("a"), dvar("b"), dvar("c", upstream=EVIL), dvar("d")))
    p = run(desired(new), applied(old))
    assert items(p) == [(Security.NEW_ORIGIN, "exp", "c", None, "env:K", None, "https://attacker.example")]


def test_every_variant_of_a_new_experiment_is_listed() -> None:
    p = run(desired(dexp(status=A)), actual())
    assert [(x.code, x.label, x.origin) for x in p.security] == [
        (Security.NEW_ORIGIN, "a", "https://api.example"), (Security.NEW_ORIGIN, "b", "https://api.example")]


def test_no_change_and_completed_experiments_list_nothing() -> None:
    d = dexp(status=A)
    assert run(desired(d), applied(d)).security == ()
    done = dexp(status=C)
    moved = dexp(status=C, variants=(dvar("a", ref="env:OTHER"), dvar("b")))
    assert run(desired(moved), applied(done)).security == ()


def test_a_refused_variant_addition_lists_nothing() -> None:
    old = dexp(status=A)
    new = dexp(status=A, variants=(dvar("a"), dvar("b"), dvar("c", upstream=EVIL)))
    p = run(desired(new), applied(old))
    assert p.refused and p.security == ()


def test_items_are_sorted_by_experiment_then_variant_order() -> None:
    x, y = dexp("y-exp", status=A, pid="partner/y"), dexp("x-exp", status=A, pid="partner/x")
    moved = lambda e: dexp(e.key, status=A, pid=e.public_model_id,  # noqa: E731
                           variants=(dvar("b", upstream=EVIL), dvar("a", upstream=EVIL)))
    p = run(desired(moved(x), moved(y)), actual(actual_of(x), actual_of(y), managed=(x, y)))
    assert [(i.experiment_key, i.label) for i in p.security] == [("x-exp", "b"), ("x-exp", "a"), ("y-exp", "b"),
                                                                 ("y-exp", "a")]


def test_upstream_default_is_the_builders_origin() -> None:
    assert origin_of(UP["base_url"]) == "https://api.example"


def test_unchanged_experiments_parse_no_url(monkeypatch: pytest.MonkeyPatch) -> None:
    from expsync.plan import security

    calls: list[object] = []
    real = security.origin_of
    monkeypatch.setattr(security, "origin_of", lambda u: calls.append(u) or real(u))
    exps = [dexp(f"e{i}", status=A, pid=f"partner/e{i}") for i in range(50)]
    p = run(desired(*exps), actual(*(actual_of(e) for e in exps), managed=tuple(exps)))
    assert p.ops == () and calls == []
    changed = dexp("e0", status=A, pid="partner/e0", variants=(dvar("a", upstream=EVIL), dvar("b")))
    run(desired(changed, *exps[1:]), actual(*(actual_of(e) for e in exps), managed=tuple(exps)))
    assert len(calls) == 4  # one experiment: its two old and two new origins


def test_adopting_a_variant_with_a_key_from_another_reference_is_listed() -> None:
    # pinning the id of an experiment the admin UI created and pointing api_key at another
    # partner's reference rotates the stored key: the key from env:OTHER goes to this origin
    # although expsync never applied a reference for it
    ui = dexp(status=A)
    pinned = dexp(status=A, variants=(dvar("a", ref="env:OTHER"), dvar("b")))
    p = run(desired(pinned), actual(actual_of(ui)),
            key_changes={("exp", "a"): KeyChange.ROTATED, ("exp", "b"): KeyChange.UNCHANGED})
    assert items(p) == [(Security.KEY_REF_CHANGED, "exp", "a", None, "env:OTHER", None, "https://api.example")]


def test_adopting_with_the_stored_key_lists_nothing() -> None:
    ui = dexp(status=A)
    assert run(desired(ui), actual(actual_of(ui))).security == ()


def test_a_new_version_written_before_completing_is_listed() -> None:
    # edits run before the transition: the version is written although the experiment ends completed
    old = dexp(status=A)
    new = dexp(status=C, variants=(dvar("a", upstream=EVIL), dvar("b")))
    p = run(desired(new), applied(old))
    assert "InsertVersion" in [type(o).__name__ for o in p.ops] and not p.refused
    assert items(p) == [(Security.ORIGIN_CHANGED, "exp", "a", None, "env:K", "https://api.example",
                         "https://attacker.example")]


def test_changes_to_existing_variants_come_before_new_variants_whatever_the_keys() -> None:
    # a flood of new variants (new experiments route nothing yet) sorted before an origin
    # change of an active experiment pushed it out of the comment's security table and past
    # the 50 annotations
    live = dexp("zzz", status=A, pid="partner/z")
    moved = dexp("zzz", status=A, pid="partner/z", variants=(dvar("a", upstream=EVIL), dvar("b")))
    flood = [dexp(f"aaa-{i}", status=D, pid=f"partner/a{i}",
                  variants=tuple(dvar(f"v{j}", upstream={"internal_id": "m", "base_url": f"https://h{j}.example/"})
                                 for j in range(3)))
             for i in range(3)]
    p = run(desired(moved, *flood), actual(actual_of(live), managed=(live,)))
    assert [(x.code, x.experiment_key) for x in p.security][:1] == [(Security.ORIGIN_CHANGED, "zzz")]
    assert [x.code for x in p.security[1:]] == [Security.NEW_ORIGIN] * 9


def test_a_new_routing_experiment_comes_before_new_drafts() -> None:
    # a new experiment may start active: its keys go out on apply, the drafts' do not
    live = dexp("zzz", status=A, pid="partner/z", variants=(dvar("a", upstream=EVIL),))
    drafts = [dexp(f"aaa-{i}", status=D, pid=f"partner/a{i}") for i in range(3)]
    p = run(desired(live, *drafts), actual())
    assert [(x.experiment_key, x.label) for x in p.security][:1] == [("zzz", "a")]
