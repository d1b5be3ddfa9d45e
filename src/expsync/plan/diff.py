"""Diff: one pair (desired vs actual) -> the ops that would make the database match git.

The ops are *proposed*: :mod:`expsync.plan.check` then passes each through the edit matrix in
execution order and drops the refused ones. The diff only consults the rules to choose which
op expresses a change (the transition edge, create-as, delete or release).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import field
from datetime import datetime
from typing import Any, Final

from expsync import rules
from expsync.diagnostics import Diagnostic, SourceRange
from expsync.model import (
    ActualExperiment,
    ActualVersion,
    DesiredExperiment,
    DesiredVariant,
    JsonObject,
    KeyChange,
    ManagedRecord,
    Status,
)
from expsync.plan import drift as drift_mod
from expsync.plan.equality import json_equal
from expsync.plan.drift import last_applied_of
from expsync.plan.ops import (
    AddVariant,
    ChangeWeight,
    CreateExperiment,
    DeleteExperiment,
    FieldChange,
    InsertVersion,
    Op,
    Reason,
    RecordManaged,
    RelabelVariant,
    ReleaseExperiment,
    RemoveVariant,
    SetArchived,
    Transition,
    UpdateFields,
)
from expsync.plan.pair import Pair
from expsync.plan.redact import hide_op, mask_op
from expsync.plan.types import DriftItem
from expsync.records import dataclass

KeyChanges = Mapping[tuple[str, str], KeyChange]


@dataclass(frozen=True, slots=True)
class Context:
    """What every diff sees besides its pair."""

    now: datetime
    key_changes: KeyChanges
    #: ownership records by experiment id, and the keys still in git
    managed_by_id: Mapping[uuid.UUID, ManagedRecord]
    desired_keys: frozenset[str]
    #: experiments in the database, by id
    existing: frozenset[uuid.UUID]
    #: hide the values of experiments expsync does not manage (``--no-secrets``)
    redact_unmanaged: bool = False


@dataclass
class ExperimentDiff:
    """The proposed ops of one pair, with what the checks and the explanation need."""

    pair: Pair
    experiment_id: uuid.UUID
    public_model_id: str
    ops: list[Op] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    drift: tuple[DriftItem, ...] = ()
    notes: list[Reason] = field(default_factory=list)
    #: status / archived flag the row has once every op ran (None: no row)
    status_after: Status | None = None
    archived_after: bool | None = None
    #: the activation guards' input (other holders filled in by the routing check)
    activation: rules.GuardInput | None = None
    activation_source: SourceRange | None = None
    #: an experiment expsync does not manage whose database values are not shown
    hidden: bool = False

    def refuse(self, code: str, message: str, path: str = "", hint: str | None = None) -> None:
        d = self.pair.desired
        self.diagnostics.append(Diagnostic.make(code, message, d.source(path) if d else None, path=path, hint=hint,
                                                experiment=self.pair.key))


def upstream_diff(before: JsonObject | None, after: JsonObject) -> tuple[FieldChange, ...]:
    """Field changes between two upstream objects (``extra_body.temperature``); ``()`` when equal.

    Objects are walked here (a hot swap changes one field of an otherwise equal upstream);
    only two lists that differ go to DeepDiff, whose paths are kept as they were
    (``remove_from_body[1]``)."""
    if before is None or json_equal(before, after):
        return ()  # equal objects: nothing to walk (most versions of a large plan are unchanged)
    changes: list[FieldChange] = []
    _walk(before, after, "", changes)
    return tuple(sorted(changes, key=lambda c: c.path))


def _walk(before: Any, after: Any, path: str, out: list[FieldChange]) -> None:
    if path and _null_meets_absent(before, after):
        # a field change's None means "absent", but the gateway sends a null in ``extra_body``
        # (a shallow merge): show the whole object rather than a removal or addition it is not
        out.append(FieldChange(path.lstrip("."), before, after))
        return
    if isinstance(before, dict) and isinstance(after, dict):
        for k, v in before.items():
            if k not in after:
                out.append(FieldChange(f"{path}.{k}".lstrip("."), v, None))
        for k, v in after.items():
            if k not in before:
                out.append(FieldChange(f"{path}.{k}".lstrip("."), None, v))
            else:
                _walk(before[k], v, f"{path}.{k}", out)
        return
    if json_equal(before, after):
        return  # the same for the gateway: 1 and 1.0 alike (JSON.parse), never true and 1
    if isinstance(before, list) and isinstance(after, list):
        out.extend(_list_diff(before, after, path.lstrip(".")))
        return
    # a value or type change (DeepDiff's values_changed / type_changes)
    out.append(FieldChange(path.lstrip("."), before, after))


def _null_meets_absent(before: Any, after: Any) -> bool:
    """Whether one side has a key (or list item) with a null where the other has none or a
    different one: a change :class:`FieldChange` cannot tell from an addition or removal."""
    if isinstance(before, dict) and isinstance(after, dict):
        return any((before.get(k, _ABSENT) is None) != (after.get(k, _ABSENT) is None) for k in before.keys() | after.keys())
    if isinstance(before, list) and isinstance(after, list):
        return (_has_null(before) or _has_null(after)) and not json_equal(before, after)
    return False


def _has_null(value: Any) -> bool:
    if isinstance(value, dict):
        return any(map(_has_null, value.values()))
    if isinstance(value, list):
        return any(map(_has_null, value))
    return value is None


_ABSENT: Final = object()


def _list_diff(before: list[Any], after: list[Any], prefix: str) -> list[FieldChange]:
    # imported here: `validate` and `schema` must not pay for deepdiff, and most plans never
    # reach it (pure computation; used per list, never on the whole state)
    from deepdiff import DeepDiff

    dd = DeepDiff(before, after, verbose_level=2, ignore_order=False)
    changes: list[FieldChange] = []
    for kind, items in dd.items():
        for path, val in items.items():
            p = path.removeprefix("root").replace("']['", ".").replace("['", "").replace("']", "")
            p = (prefix + p).lstrip(".")
            if kind in ("values_changed", "type_changes"):
                if not json_equal(val.get("old_value"), val.get("new_value")):  # DeepDiff: 1 -> 1.0 is a type change
                    changes.append(FieldChange(p, val.get("old_value"), val.get("new_value")))
            elif kind in ("dictionary_item_added", "iterable_item_added"):
                changes.append(FieldChange(p, None, val))
            elif kind in ("dictionary_item_removed", "iterable_item_removed"):
                changes.append(FieldChange(p, val, None))
    return changes


def diff(p: Pair, ctx: Context) -> ExperimentDiff:
    """The proposed ops of one pair: create, update, or removed from git."""
    if p.desired is not None and p.actual is None:
        return _create(p, p.desired, ctx)
    if p.desired is not None and p.actual is not None:
        return _update(p, p.desired, p.actual, ctx)
    return _removed(p)


def _version(key: str, eid: uuid.UUID, v: DesiredVariant, vid: uuid.UUID, base: ActualVersion | None,
             key_change: KeyChange = KeyChange.NEW) -> InsertVersion:
    return InsertVersion(
        experiment_key=key, experiment_id=eid, variant_key=v.key, variant_id=vid, label=v.label,
        base_version_id=base.id if base else None,
        upstream_before=base.upstream if base else None,
        upstream_after=v.upstream,
        upstream_diff=upstream_diff(base.upstream if base else None, v.upstream),
        key_change=key_change, api_key_ref=v.api_key,
    )


def _create(p: Pair, d: DesiredExperiment, ctx: Context) -> ExperimentDiff:
    r = ExperimentDiff(p, d.resolved_id, d.public_model_id, status_after=d.status, archived_after=d.archived)
    if p.managed is not None and p.managed.experiment_id in ctx.existing:
        # the key already manages a row that still exists under another id (an id: pin was
        # removed or changed): creating would duplicate it and orphan the original
        r.refuse("E503", f"key {p.key!r} manages experiment {p.managed.experiment_id}, but the YAML now "
                 f"points at {d.resolved_id}", "id" if d.id else "key",
                 hint=f"restore `id: {p.managed.experiment_id}` in the YAML")
        r.status_after = None
        r.experiment_id = p.managed.experiment_id
        return r
    if p.managed is not None:
        r.drift = (DriftItem(p.key, "(row)", "exists", "deleted outside git", False, True),)
        r.diagnostics.append(Diagnostic.make(
            "W501", "experiment was deleted in the database outside git; the plan re-creates it",
            d.source("key"), path="key", experiment=p.key))
    if d.status not in rules.CREATABLE:
        r.refuse("E311", f"cannot create a new experiment as {d.status}", "status",
                 hint="create it as draft or active; it can be paused or completed by a later change")
        r.status_after = None
        return r
    eid = d.resolved_id
    r.ops.append(CreateExperiment(experiment_key=p.key, experiment_id=eid, public_model_id=d.public_model_id,
                                  name=d.name, description=d.description, archived=d.archived, metadata=d.metadata))
    for v in d.variants:
        vid = d.variant_id(v)
        r.ops.append(AddVariant(experiment_key=p.key, experiment_id=eid, variant_key=v.key, variant_id=vid,
                                label=v.label, weight=v.weight))
        r.ops.append(_version(p.key, eid, v, vid, None))
    if d.status is not rules.CREATED_AS:
        _transition(r, rules.CREATED_AS, d.status, d, {v.label: ctx.now for v in d.variants}, ctx.now)
    r.ops.append(RecordManaged(experiment_key=p.key, experiment_id=eid, last_applied=last_applied_of(d)))
    return r


def _owner_conflict(r: ExperimentDiff, p: Pair, a: ActualExperiment, ctx: Context) -> bool:
    owner = ctx.managed_by_id.get(a.id)
    if p.managed is not None and p.managed.experiment_id != a.id:
        r.refuse("E503", f"key {p.key!r} manages experiment {p.managed.experiment_id}, but the YAML now points at {a.id}",
                 "id", hint="restore the id: pin, or remove the old experiment's YAML first")
        return True
    if owner is not None and owner.key != p.key and owner.key in ctx.desired_keys:
        r.refuse("E503", f"experiment {a.id} is managed by key {owner.key!r}", "id")
        return True
    return False


def _update(p: Pair, d: DesiredExperiment, a: ActualExperiment, ctx: Context) -> ExperimentDiff:
    key, eid = p.key, a.id
    r = ExperimentDiff(p, eid, d.public_model_id, status_after=a.status, archived_after=a.is_archived,
                       hidden=ctx.redact_unmanaged and p.managed is None and a.id not in ctx.managed_by_id)
    if _owner_conflict(r, p, a, ctx):
        return r
    record = last_applied_of(d)
    if _in_sync(p, d, a, ctx, record):
        return r  # nothing to do (most experiments of a large plan): no drift or field walk
    found = drift_mod.drift(key, d, a, p.managed or ctx.managed_by_id.get(a.id))
    r.drift, r.diagnostics = found.items, list(found.diagnostics)
    changes = [FieldChange(f, getattr(a, f), getattr(d, f)) for f in rules.FIELD_CHANGE
               if not json_equal(getattr(a, f), getattr(d, f))]
    if changes:
        r.ops.append(UpdateFields(experiment_key=key, experiment_id=eid, changes=tuple(changes)))
    effective = _variants(r, d, a, ctx)
    if d.status is not a.status and d.status not in found.blocked:
        _transition(r, a.status, d.status, d, effective, ctx.now)
    if d.archived != a.is_archived and "archived" not in found.blocked:
        r.ops.append(SetArchived(experiment_key=key, experiment_id=eid, before=a.is_archived, after=d.archived))
        r.archived_after = d.archived
    if p.managed is None or not json_equal(p.managed.last_applied, record):
        r.ops.append(RecordManaged(experiment_key=key, experiment_id=eid, last_applied=record, adopted=p.managed is None))
        if p.managed is None:
            r.notes.append(Reason.ADOPTED)
    if r.hidden:
        r.ops = [hide_op(op) for op in r.ops]
    else:
        r.ops = [mask_op(op) for op in r.ops]
    return r


def _in_sync(p: Pair, d: DesiredExperiment, a: ActualExperiment, ctx: Context, record: JsonObject) -> bool:
    """True when the full diff of a managed experiment would find nothing: its ownership record
    is ``record`` (what git wants), the row holds every drift field as git wants it (so none
    drifted from the record either: same variant ids, labels, weights, latest upstreams), no
    variant lacks a version or has a pending one, and no key is rotated. Compared with
    :func:`~expsync.plan.equality.json_equal` exactly as the full diff compares; anything else takes the full diff."""
    m = p.managed
    if m is None or d.status is not a.status or not json_equal(drift_mod.desired_fields(d), drift_mod.actual_fields(a)):
        return False
    if len(d.variants) != len(a.variants) or any(v.pending is not None or v.current is None for v in a.variants):
        return False
    if not json_equal(m.last_applied, record):
        return False
    return not any(_key_change(ctx, p.key, v.key, d.status) is KeyChange.ROTATED for v in d.variants)


def _variants(r: ExperimentDiff, d: DesiredExperiment, a: ActualExperiment, ctx: Context) -> dict[str, datetime | None]:
    """Variant add/remove/label/weight/version ops. Returns label -> effective_at of the
    version that will be current at activation time (for the guards)."""
    key, eid = r.pair.key, a.id
    actual_by_id = {v.id: v for v in a.variants}
    desired_ids = {d.variant_id(v) for v in d.variants}
    effective: dict[str, datetime | None] = {}
    for gone in sorted((v for v in a.variants if v.id not in desired_ids), key=lambda v: v.label):
        r.ops.append(RemoveVariant(experiment_key=key, experiment_id=eid, variant_id=gone.id, label=gone.label,
                                   weight=gone.weight))
    for i, v in enumerate(d.variants):
        vid = d.variant_id(v)
        av = actual_by_id.get(vid)
        if av is None:
            r.ops.append(AddVariant(experiment_key=key, experiment_id=eid, variant_key=v.key, variant_id=vid,
                                    label=v.label, weight=v.weight))
            r.ops.append(_version(key, eid, v, vid, None))
            effective[v.label] = ctx.now
            continue
        if av.label != v.label:
            r.ops.append(RelabelVariant(experiment_key=key, experiment_id=eid, variant_key=v.key, variant_id=vid,
                                        before=av.label, after=v.label))
        if av.weight != v.weight:
            r.ops.append(ChangeWeight(experiment_key=key, experiment_id=eid, variant_key=v.key, variant_id=vid,
                                      label=v.label, before=av.weight, after=v.weight))
        latest = av.pending or av.current
        # the guard reads the latest version, a pending one included (rules.GuardInput)
        effective[v.label] = latest.effective_at if latest else None
        # a completed experiment's keys are not even resolved (rules.keys_matter)
        kc = _key_change(ctx, key, v.key, d.status)
        if av.pending is not None:
            at = "" if r.hidden else f" effective at {av.pending.effective_at.isoformat()}"
            r.diagnostics.append(Diagnostic.make(
                "W502", f"variant {v.label!r} has a version{at} "
                "(future-dated); it supersedes older versions when it takes effect",
                d.source(f"variants[{i}].upstream"), path=f"variants[{i}].upstream", experiment=key))
        if latest is None or not json_equal(latest.upstream, v.upstream) or kc is KeyChange.ROTATED:
            r.ops.append(_version(key, eid, v, vid, latest, KeyChange.NEW if latest is None else kc))
            if av.pending is None:  # a version inserted now never becomes newer than a pending one
                effective[v.label] = ctx.now
    return effective


def _key_change(ctx: Context, key: str, variant_key: str, status: Status) -> KeyChange:
    if not rules.keys_matter(status):
        return KeyChange.UNCHANGED
    return ctx.key_changes.get((key, variant_key), KeyChange.UNKNOWN)


def _transition(r: ExperimentDiff, current: Status, target: Status, d: DesiredExperiment,
                effective: Mapping[str, datetime | None], now: datetime) -> None:
    edge = rules.edge_for(current, target)
    if edge is None:
        r.refuse("E301", f"no transition from {current} to {target}", "status", hint=rules.describe_alternatives(current))
        return
    r.ops.append(Transition(experiment_key=r.pair.key, experiment_id=r.experiment_id, trigger=edge.trigger,
                            from_status=current, to_status=target))
    r.status_after = target
    if edge.guards:
        r.activation = rules.GuardInput(tuple(v.weight for v in d.variants), effective, (), d.public_model_id, now)
        r.activation_source = d.source("status")


def _removed(p: Pair) -> ExperimentDiff:
    m = p.managed
    assert m is not None  # pair() only yields desired-less pairs for managed keys
    a = p.actual
    r = ExperimentDiff(p, m.experiment_id, a.public_model_id if a else str(m.last_applied.get("public_model_id", "")))
    if a is None:
        r.ops.append(ReleaseExperiment(experiment_key=p.key, experiment_id=m.experiment_id,
                                       reason=Reason.RELEASED_ROW_DELETED))
        return r
    r.status_after, r.archived_after = a.status, a.is_archived
    if rules.may(rules.Change.DELETE, a.status):
        r.ops.append(DeleteExperiment(experiment_key=p.key, experiment_id=a.id, public_model_id=a.public_model_id,
                                      status=a.status))
        r.status_after = None
    elif rules.may_release(a.status, a.is_archived):
        r.ops.append(ReleaseExperiment(experiment_key=p.key, experiment_id=a.id, reason=Reason.RELEASED_COMPLETED_ARCHIVED))
    else:
        r.diagnostics.append(Diagnostic.make(
            "E502", f"managed experiment {p.key!r} ({a.status}{', archived' if a.is_archived else ''}) was removed "
            "from git; only drafts are deleted and completed+archived experiments released",
            None, experiment=p.key, hint="restore its YAML and complete + archive it first; remove the file in a later change"))
    return r
