"""The rules table: the state machine and edit matrix mirror spec §1.1 and §1.2 exactly."""

from __future__ import annotations

import itertools

import pytest

from expsync.model import Status
from expsync import rules as machine
from expsync.rules import Change, Trigger

D, A, P, C = Status.DRAFT, Status.ACTIVE, Status.PAUSED, Status.COMPLETED

EDGES = {(D, A), (A, P), (P, A), (A, C), (P, C)}


@pytest.mark.parametrize(("src", "dst"), list(itertools.product(Status, Status)))
def test_every_edge_and_non_edge(src: Status, dst: Status) -> None:
    trig = machine.trigger_for(src, dst)
    if (src, dst) in EDGES:
        assert trig is not None and machine.next_status(src, trig) is dst
    else:
        assert trig is None


def test_triggers_named_as_in_spec() -> None:
    assert machine.trigger_for(D, A) is Trigger.ACTIVATE
    assert machine.trigger_for(P, A) is Trigger.ACTIVATE
    assert machine.trigger_for(A, P) is Trigger.PAUSE
    assert machine.trigger_for(A, C) is machine.trigger_for(P, C) is Trigger.COMPLETE


def test_completed_is_terminal_with_guidance() -> None:
    assert machine.legal_triggers(C) == []
    assert "create a new experiment" in machine.describe_alternatives(C)
    assert "activate -> active" in machine.describe_alternatives(D)


SPEC_TABLE = {  # spec §1.2: change -> (draft, active, paused, completed)
    Change.NAME: (1, 1, 1, 1),
    Change.PUBLIC_MODEL_ID: (1, 0, 0, 0),
    Change.VARIANT_SET: (1, 0, 0, 0),
    Change.VARIANT_LABEL: (1, 1, 1, 0),
    Change.NEW_VERSION: (1, 1, 1, 0),
    Change.ARCHIVE: (1, 0, 1, 1),
    Change.UNARCHIVE: (1, 0, 1, 1),  # "-" for active: an active row is never archived
    Change.DELETE: (1, 0, 0, 0),
    Change.METADATA: (1, 1, 1, 0),  # gateway-profiles §4: 2026-06 metadata not on completed
}


@pytest.mark.parametrize(("change", "status"), list(itertools.product(Change, Status)))
def test_edit_table_cell(change: Change, status: Status) -> None:
    allowed = SPEC_TABLE[change][list(Status).index(status)]
    assert machine.may(change, status) is bool(allowed)
    assert change in machine.REFUSAL_CODE


# -- the rules table is the one source of each rule --------------------------------------------
import importlib  # noqa: E402
import re  # noqa: E402
from fractions import Fraction  # noqa: E402
from pathlib import Path  # noqa: E402

from expsync import rules  # noqa: E402
from expsync.diagnostics import CODES  # noqa: E402

SRC = Path(rules.__file__).parent


def _resolve(name: str) -> object:
    if name.split(".")[0] in ("desired", "plan"):
        module, _, attr = name.rpartition(".")
        return getattr(importlib.import_module(f"expsync.{module}"), attr)
    return eval(name, vars(rules))  # noqa: S307 - names from the table above, not input


#: E5xx codes raised by apply (exit 5) rather than produced by a planning rule: code -> module
APPLY_TIME_CODES = {"E507": "render/saved.py", "E508": "apply/run.py", "E509": "apply/lock.py"}


def test_apply_time_codes_are_raised_where_named() -> None:
    src = Path(__file__).resolve().parents[1] / "src" / "expsync"
    for code, module in APPLY_TIME_CODES.items():
        assert code in CODES and f"[{code}]" in (src / module).read_text(encoding="utf-8"), code


def test_every_rule_code_maps_to_an_existing_rule() -> None:
    rule_codes = {c for c in CODES if re.fullmatch(r"E[235]\d\d", c)} - set(APPLY_TIME_CODES)
    assert set(rules.PRODUCED_BY) == rule_codes
    for code, names in rules.PRODUCED_BY.items():
        assert names, code
        for name in names:
            assert _resolve(name) is not None, (code, name)


def test_refusal_and_guard_codes_agree_with_the_map() -> None:
    for change, code in rules.REFUSAL_CODE.items():
        assert f"EDITABLE[Change.{change.name}]" in rules.PRODUCED_BY[code]
    for guard, code in rules.GUARD_CODE.items():
        assert f"Guard.{guard.name}" in rules.PRODUCED_BY[code]


@pytest.mark.parametrize("phrase", [
    # each rule stated once: the table row, never a hand-written status test elsewhere
    r"Status\.ACTIVE\b.*archiv|archiv.*Status\.ACTIVE\b",
    r"status <> 'active'",
    r"len\(\w+\.variants\) < \d",
    r"Status\.COMPLETED and \w+\.is_archived",
    r"frozenset\(\{Status\.ACTIVE, Status\.PAUSED\}\)",
    r"2 ?\*\* ?32\b|4294967296",  # the bucket space: rules.BUCKET_SPACE
])
def test_no_rule_is_restated_outside_the_rules_module(phrase: str) -> None:
    hits = [str(p.relative_to(SRC)) for p in SRC.rglob("*.py") if p.name != "rules.py" or p.parent != SRC
            if re.search(phrase, p.read_text())]
    assert hits == []


def test_edits_checked_against_the_final_status_run_after_every_transition() -> None:
    from expsync.plan.ops import Phase

    # archive is checked against the final status because it runs last; unarchive before
    assert rules.CHECKED_AGAINST[Change.ARCHIVE] is rules.CheckedAgainst.FINAL
    assert Phase.ARCHIVE > Phase.ACTIVATE > Phase.RELEASE > Phase.EDIT > Phase.UNARCHIVE
    assert {c for c, at in rules.CHECKED_AGAINST.items() if at is rules.CheckedAgainst.FINAL} == {Change.ARCHIVE}


def test_activation_guards_are_data_on_both_activate_edges() -> None:
    activate = [e for e in rules.EDGES if e.trigger is Trigger.ACTIVATE]
    assert {e.src for e in activate} == {D, P}
    assert all(e.guards == activate[0].guards for e in activate)
    assert set(activate[0].guards) == set(rules.Guard)
    assert all(not e.guards for e in rules.EDGES if e.trigger is not Trigger.ACTIVATE)


def test_release_rule_and_protective_moves() -> None:
    assert [s for s in Status if rules.may_release(s, True)] == [C]
    assert not any(rules.may_release(s, False) for s in Status)
    assert rules.PROTECTIVE == {(A, P), (A, C), (P, C)}
    assert rules.is_protective("archived", False, True) and not rules.is_protective("archived", True, False)
    assert rules.is_protective("status", "active", "paused") and not rules.is_protective("status", "paused", "active")


# -- the gateway's picker and its exact shares (gateway-profiles §5) ---------------------------
EXP = "00000000-0000-4000-8000-000000000001"


@pytest.mark.parametrize(("subject", "value", "s", "expected"), [
    ("user", "user-1", 2, 1),
    ("machine", "m-1", 4, 3),
    ("ip", "1.2.3.4", 10, 9),
    ("user", "ünï", 7, 5),
])
def test_bucket_vectors(subject: str, value: str, s: int, expected: int) -> None:
    assert rules.bucket(EXP, subject, value, [1] * s) == expected


def test_bucket_walks_cumulative_weights() -> None:
    # bucket value 9 of S=10 lands on the last variant whose range [C(i-1), C(i)) holds it
    assert rules.bucket(EXP, "ip", "1.2.3.4", [5, 4, 1]) == 2
    assert rules.bucket(EXP, "ip", "1.2.3.4", [9, 1]) == 1
    assert rules.bucket(EXP, "ip", "1.2.3.4", [10]) == 0


@pytest.mark.parametrize("weights", [[1, 1, 1], [3, 5], [7, 2, 9, 1], [1000, 24], [600, 500]])
def test_exact_shares_count_the_bucket_space(weights: list[int]) -> None:
    space = 2**10
    counts = [0] * len(weights)
    cumulative = list(itertools.accumulate(weights))
    for x in range(space):
        b = x % sum(weights)
        counts[next(i for i, c in enumerate(cumulative) if b < c)] += 1
    assert rules.exact_shares(weights, space=space) == tuple(Fraction(c, space) for c in counts)


def test_exact_shares_above_two_to_the_32_starve_the_last_variant() -> None:
    shares = [round(float(x) * 100, 2) for x in rules.exact_shares([2_000_000_000] * 3)]
    assert shares == [46.57, 46.57, 6.87]
    assert rules.weight_sum_problem([2_000_000_000] * 3) and not rules.weight_sum_problem([2**31, 2**31])


def test_rules_module_imports_only_the_model() -> None:
    import subprocess
    import sys

    code = ("import sys, expsync.rules; print(sorted(m for m in sys.modules if m.startswith('expsync')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    # expsync.model brings expsync.diagnostics (SourceRange) with it; expsync.records (and the
    # precompiled methods of each module's dataclasses) is how they declare their classes
    assert eval(out) == ["expsync", "expsync.diagnostics", "expsync.model", "expsync.records",  # noqa: S307
                         "expsync.records_code", "expsync.records_code.diagnostics", "expsync.records_code.model",
                         "expsync.records_code.rules", "expsync.rules"]
