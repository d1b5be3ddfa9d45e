"""Check: every proposed op, in execution order, through the rules table.

:func:`check_edits` passes one experiment's ops through the edit matrix
(:data:`expsync.rules.EDITABLE`), each against the status named by
:data:`expsync.rules.CHECKED_AGAINST` (the current status for what runs before the
transition, the final status for archiving, which runs last); refused ops are dropped and
each refusal is a diagnostic. :func:`check_activations` then runs the guards of every
activation against the *final* routing picture: completions in the same plan free the public
id first; unmanaged rows count as they are.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime

from expsync import rules
from expsync.diagnostics import Diagnostic
from expsync.model import ActualState, DesiredExperiment, Status
from expsync.plan.diff import ExperimentDiff
from expsync.plan.ops import (
    AddVariant,
    ChangeWeight,
    DeleteExperiment,
    InsertVersion,
    Op,
    RelabelVariant,
    RemoveVariant,
    SetArchived,
    Transition,
    UpdateFields,
)
from expsync.plan.order import order
from expsync.plan.redact import UNMANAGED
from expsync.rules import Change

#: a variant's identity is its key: a removal refused next to an addition is probably a rename
_RENAME_HINT = "a variant's identity is its key (default: its label); to rename it set `key:` to the old key"


def _variant_path(d: DesiredExperiment | None, variant_key: str) -> str:
    index = next((i for i, v in enumerate(d.variants) if v.key == variant_key), 0) if d else 0
    return f"variants[{index}]"


def _change_of(op: Op, d: DesiredExperiment | None) -> tuple[Change, str, str] | None:
    """The edit-matrix row an op is checked against, with the words and YAML path of a refusal."""
    match op:
        case RemoveVariant():
            return Change.VARIANT_SET, f"removing variant {op.label!r}", "variants"
        case AddVariant():
            return Change.VARIANT_SET, f"adding variant {op.label!r}", _variant_path(d, op.variant_key)
        case RelabelVariant():
            path = _variant_path(d, op.variant_key)
            return Change.VARIANT_LABEL, f"relabel {op.before!r} -> {op.after!r}", f"{path}.label"
        case ChangeWeight():
            path = _variant_path(d, op.variant_key)
            before = "(not shown)" if op.before is None else op.before
            return Change.VARIANT_SET, f"weight change {before} -> {op.after}", f"{path}.weight"
        case InsertVersion():
            what = "new version" if op.base_version_id is not None else "first version"
            return Change.NEW_VERSION, f"{what} of {op.label!r}", f"{_variant_path(d, op.variant_key)}.upstream"
        case SetArchived():
            change = Change.ARCHIVE if op.after else Change.UNARCHIVE
            return change, change.value, "archived"
        case DeleteExperiment():
            return Change.DELETE, "delete", ""
        case _:
            return None


def check_edits(r: ExperimentDiff, status_before: Status | None) -> None:
    """Drop the ops of ``r`` the edit matrix refuses (in place), adding one diagnostic each."""
    ops = order(r.ops)
    final = next((op.to_status for op in reversed(ops) if isinstance(op, Transition)), status_before)
    renaming = any(isinstance(o, RemoveVariant) for o in ops) and any(isinstance(o, AddVariant) for o in ops)
    refused_variants: set[uuid.UUID] = set()
    kept: list[Op] = []
    for op in ops:
        if status_before is None:  # a new row: created as draft, every edit allowed
            kept.append(op)
            continue
        if isinstance(op, UpdateFields):
            kept += [x for x in (_check_fields(r, op, status_before),) if x is not None]
            continue
        found = _change_of(op, r.pair.desired)
        if found is None:
            kept.append(op)
            continue
        change, words, path = found
        if isinstance(op, InsertVersion) and op.variant_id in refused_variants:
            continue  # the first version of a variant whose addition was refused
        status = final if rules.CHECKED_AGAINST[change] is rules.CheckedAgainst.FINAL else status_before
        if isinstance(op, InsertVersion) and status is not None and rules.may(change, status) and _superseded(r, op):
            continue
        if status is None or rules.may(change, status):
            kept.append(op)
            continue
        hint = "create a new experiment (new key)" if change in rules.NEEDS_NEW_EXPERIMENT else None
        if isinstance(op, RemoveVariant) and renaming:
            hint = _RENAME_HINT
        r.refuse(rules.REFUSAL_CODE[change],
                 f"{words}: not allowed while {status} (allowed in: {rules.allowed_in(change)})", path, hint)
        if isinstance(op, AddVariant):
            refused_variants.add(op.variant_id)
        elif isinstance(op, SetArchived):
            r.archived_after = op.before
    r.ops = list(kept)


def _superseded(r: ExperimentDiff, op: InsertVersion) -> bool:
    """Refuse (E313) a new version a pending future-dated version would supersede."""
    a = r.pair.actual
    av = next((v for v in a.variants if v.id == op.variant_id), None) if a is not None else None
    pending_at = av.pending.effective_at if av is not None and av.pending is not None else None
    if not rules.superseded_by_pending(pending_at):
        return False
    at = "" if r.hidden or pending_at is None else f" at {pending_at.isoformat()}"
    r.refuse("E313", f"new version of {op.label!r}: the variant has a future-dated version effective{at}, which stays "
             "its latest version; a version inserted now would route only until then, and every later plan would "
             "insert it again", f"{_variant_path(r.pair.desired, op.variant_key)}.upstream")
    return True


def _check_fields(r: ExperimentDiff, op: UpdateFields, status: Status) -> UpdateFields | None:
    """Each field change against its row of the edit matrix; the op keeps the allowed ones."""
    allowed = []
    for c in op.changes:
        change = rules.FIELD_CHANGE[c.path]
        if rules.may(change, status):
            allowed.append(c)
            continue
        hint = "create a new experiment (new key)" if change in rules.NEEDS_NEW_EXPERIMENT else None
        r.refuse(rules.REFUSAL_CODE[change],
                 f"{c.path} change: not allowed while {status} (allowed in: {rules.allowed_in(change)})", c.path, hint)
    return replace(op, changes=tuple(allowed)) if allowed else None


def _final_routing(results: Sequence[ExperimentDiff], actual: ActualState,
                   hide_unmanaged: bool) -> dict[uuid.UUID, tuple[Status | None, str, str]]:
    """Who holds which public id once every op has run: id -> (status, public id, label)."""
    final: dict[uuid.UUID, tuple[Status | None, str, str]] = {
        eid: (a.status, a.public_model_id,
              f"{UNMANAGED} ({eid})" if hide_unmanaged else f"{a.name!r} ({eid}, not managed by expsync)")
        for eid, a in actual.experiments.items()
    }
    for m in actual.managed.values():
        if m.experiment_id in final:
            st, pid, _ = final[m.experiment_id]
            final[m.experiment_id] = (st, pid, repr(m.key))
    for r in results:
        if r.pair.desired is not None or r.pair.actual is not None:
            final[r.experiment_id] = (r.status_after, r.public_model_id, repr(r.pair.key))
    return final


def check_activations(results: Iterable[ExperimentDiff], actual: ActualState, now: datetime, *,
                      hide_unmanaged: bool = False) -> None:
    """Run the guards of every activation edge; failures are added to its diagnostics.
    ``hide_unmanaged``: name an experiment expsync does not manage by its id only."""
    results = list(results)
    if all(r.activation is None for r in results):
        return  # no activation in this plan: the routing picture is not needed
    final: Mapping[uuid.UUID, tuple[Status | None, str, str]] = _final_routing(results, actual, hide_unmanaged)
    for r in results:
        if r.activation is None:
            continue
        holders = tuple(sorted(lbl for eid, (st, pid, lbl) in final.items()
                               if eid != r.experiment_id and st in rules.ROUTING_STATUSES and pid == r.public_model_id))
        g = replace(r.activation, other_holders=holders, now=now)
        for failure in rules.activation_failures(g):
            r.diagnostics.append(Diagnostic.make(failure.code, failure.message, r.activation_source, path="status",
                                                 experiment=r.pair.key))


def check_not_emptied(results: Iterable[ExperimentDiff], actual: ActualState, *, allow_empty: bool) -> Diagnostic | None:
    """Refuse (E504) a plan that removes every experiment expsync manages, unless allowed: an
    empty, missing or wrong experiments folder must not prune everything."""
    removed = sum(1 for r in results if r.pair.desired is None)
    managed = len(actual.managed)
    if allow_empty or not rules.removes_every_managed(managed, managed - removed):
        return None
    return Diagnostic.make(
        "E504", f"this plan removes every experiment expsync manages ({managed}): no YAML file names any of them",
        None, hint="check the experiments folder and the paths given; if removing all of them is intended, "
        "pass --allow-empty")
