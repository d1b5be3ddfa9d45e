"""The planner: ``plan(desired, actual, now=..., key_changes=..., options=...) -> Plan``.

Pure: no database, no Redis, no environment, no clock, no printing. Same inputs, same Plan,
same digests. Steps:

1. :func:`pair` desired experiments with database rows and ownership records (by id).
2. per pair, :func:`_diff` computes ops and checks each against :mod:`expsync.plan.machine`
   in execution order (edits against the current status, the transition against the table,
   archive against the final status), plus drift against the last applied record;
3. a second pass checks the public-id guard of every activation against the *final* routing
   picture (completions in the same plan free the id first; unmanaged rows count as they are);
4. ops are ordered by :mod:`expsync.plan.order` and digests computed.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime


from expsync.diagnostics import Diagnostic, SourceRange, sort_diagnostics
from expsync.model import (
    ROUTING_STATUSES,
    ActualExperiment,
    ActualState,
    ActualVariant,
    ActualVersion,
    DesiredExperiment,
    DesiredState,
    DesiredVariant,
    JsonObject,
    JsonValue,
    KeyChange,
    ManagedRecord,
    Status,
    membership_key,
    per_id_key,
)
from expsync.plan import machine
from expsync.plan.digest import digest_items
from expsync.plan.machine import Change, GuardInput, Trigger
from expsync.plan.ops import (
    AddVariant,
    ChangeWeight,
    CreateExperiment,
    DeleteExperiment,
    FieldChange,
    InsertVersion,
    Op,
    RecordManaged,
    RelabelVariant,
    ReleaseExperiment,
    RemoveVariant,
    SetArchived,
    Transition,
    UpdateFields,
    touches_gateway,
)
from expsync.plan.order import order
from expsync.plan.types import Digests, DriftItem, ExperimentPlan, Plan, Share

KeyChanges = Mapping[tuple[str, str], KeyChange]


@dataclass(frozen=True, slots=True)
class PlanOptions:
    redis_prefix: str = ""
    #: False for ``--no-secrets``: api keys are reported ``unknown`` and the plan is not applyable
    compare_secrets: bool = True


@dataclass(frozen=True, slots=True)
class Pair:
    """``desired is None``: removed from git. ``actual is None``: not in the database."""

    key: str
    desired: DesiredExperiment | None
    actual: ActualExperiment | None
    managed: ManagedRecord | None


def pair(desired: DesiredState, actual: ActualState) -> tuple[Pair, ...]:
    claimed = {d.resolved_id for d in desired.experiments.values()}
    out = [
        Pair(key, d, actual.experiments.get(d.resolved_id), actual.managed.get(key))
        for key, d in desired.experiments.items()
    ]
    for key, m in actual.managed.items():
        if key in desired.experiments or m.experiment_id in claimed:
            continue  # still in git (possibly under a new key that pins the same id)
        out.append(Pair(key, None, actual.experiments.get(m.experiment_id), m))
    return tuple(sorted(out, key=lambda p: p.key))


def keys_matter(d: DesiredExperiment) -> bool:
    """Whether ``d``'s api keys are resolved and compared at all. Not for an experiment that
    is (or is being) completed: it can never take a new version, so a rotated or deleted
    partner key must not block every later plan. Derived from the edit table."""
    return machine.may(Change.NEW_VERSION, d.status)


def last_applied_of(d: DesiredExperiment) -> JsonObject:
    """What expsync records as applied for ``d``: references only, never secret values."""
    return {
        "id": str(d.resolved_id),
        "public_model_id": d.public_model_id,
        "name": d.name,
        "description": d.description,
        "status": d.status.value,
        "archived": d.archived,
        "variants": [
            {
                "key": v.key,
                "id": str(d.variant_id(v)),
                "label": v.label,
                "weight": v.weight,
                "upstream": v.upstream,
                "api_key": str(v.api_key),
            }
            for v in d.variants
        ],
    }


_DRIFT_FIELDS = ("public_model_id", "name", "description", "status", "archived")


def _drift_views(
    last: JsonObject, a: ActualExperiment, d: DesiredExperiment
) -> tuple[dict[str, JsonValue], dict[str, JsonValue], dict[str, JsonValue], dict[str, str]]:
    """Flat ``path -> value`` views of the last applied record, the database and git, with
    variants matched by id (``variants.<key>.label`` ...), plus path -> YAML source path."""
    last_view: dict[str, JsonValue] = {f: last.get(f) for f in _DRIFT_FIELDS}
    now_view: dict[str, JsonValue] = {"public_model_id": a.public_model_id, "name": a.name,
                                      "description": a.description, "status": a.status.value,
                                      "archived": a.is_archived}
    want: dict[str, JsonValue] = {"public_model_id": d.public_model_id, "name": d.name,
                                  "description": d.description, "status": d.status.value, "archived": d.archived}
    where: dict[str, str] = {}
    actual_by_id = {str(v.id): v for v in a.variants}
    desired_by_id = {str(d.variant_id(v)): (i, v) for i, v in enumerate(d.variants)}
    raw_variants = last.get("variants")
    for lv in raw_variants if isinstance(raw_variants, list) else []:
        if not isinstance(lv, dict):
            continue
        vid, vkey = str(lv.get("id")), str(lv.get("key"))
        prefix = f"variants.{vkey}"
        av = actual_by_id.get(vid)
        latest = (av.pending or av.current) if av else None
        dv = desired_by_id.get(vid)
        for fld in ("label", "weight", "upstream"):
            path = f"{prefix}.{fld}"
            last_view[path] = lv.get(fld)
            if av is not None:
                now_view[path] = av.label if fld == "label" else av.weight if fld == "weight" else (
                    latest.upstream if latest else None)
            if dv is not None:
                i, v = dv
                want[path] = v.label if fld == "label" else v.weight if fld == "weight" else v.upstream
                where[path] = f"variants[{i}].{fld}"
    return last_view, now_view, want, where


#: status moves that make routing safer (the pause and complete edges of the state machine);
#: done outside git they are never silently undone
PROTECTIVE: frozenset[tuple[str, str]] = frozenset(
    (src.value, dst.value) for (src, trig), dst in machine.TRANSITIONS.items() if trig in (Trigger.PAUSE, Trigger.COMPLETE)
)


def upstream_diff(before: JsonObject | None, after: JsonObject) -> tuple[FieldChange, ...]:
    if before is None:
        return ()
    # imported here: `validate` and `schema` reach plan.ops through render/ and must not pay for
    # deepdiff (pure computation; used per object, never on the whole state)
    from deepdiff import DeepDiff

    dd = DeepDiff(before, after, verbose_level=2, ignore_order=False)
    changes: list[FieldChange] = []
    for kind, items in dd.items():
        for path, val in items.items():
            p = path.removeprefix("root").replace("']['", ".").replace("['", "").replace("']", "")
            p = p.lstrip(".")
            if kind in ("values_changed", "type_changes"):
                changes.append(FieldChange(p, val.get("old_value"), val.get("new_value")))
            elif kind in ("dictionary_item_added", "iterable_item_added"):
                changes.append(FieldChange(p, None, val))
            elif kind in ("dictionary_item_removed", "iterable_item_removed"):
                changes.append(FieldChange(p, val, None))
    return tuple(sorted(changes, key=lambda c: c.path))


def _shares(items: list[tuple[uuid.UUID, str, int]]) -> tuple[Share, ...]:
    items = sorted(items)  # the gateway walks variants in id order
    total = sum(w for _, _, w in items)
    return tuple(Share(label, w, total) for _, label, w in items)


_IMPACT: dict[tuple[Status | None, Status | None], str] = {
    (None, Status.ACTIVE): "{pid} starts routing to this experiment",
    (Status.DRAFT, Status.ACTIVE): "{pid} starts routing to this experiment",
    (Status.ACTIVE, Status.PAUSED): "requests to {pid} will be refused while paused (no fall-through)",
    (Status.PAUSED, Status.ACTIVE): "{pid} resumes routing to this experiment",
    (Status.ACTIVE, Status.COMPLETED): "{pid} stops routing to this experiment; normal routing resumes",
    (Status.PAUSED, Status.COMPLETED): "requests to {pid} are no longer refused; normal routing resumes",
    (Status.PAUSED, Status.PAUSED): "requests to {pid} stay refused while paused",
}


@dataclass
class _Result:
    """Working state of one pair while it is diffed."""

    p: Pair
    experiment_id: uuid.UUID
    public_model_id: str
    ops: list[Op] = field(default_factory=list)
    diags: list[Diagnostic] = field(default_factory=list)
    drift: list[DriftItem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    status_after: Status | None = None
    archived_after: bool | None = None
    activation: GuardInput | None = None
    activation_source: SourceRange | None = None

    def refuse(self, code: str, message: str, path: str = "", hint: str | None = None) -> None:
        d = self.p.desired
        self.diags.append(
            Diagnostic.make(code, message, d.source(path) if d else None, path=path, hint=hint, experiment=self.p.key)
        )


class _Planner:
    def __init__(self, actual: ActualState, now: datetime, key_changes: KeyChanges, options: PlanOptions) -> None:
        self.actual = actual
        self.now = now
        self.key_changes = key_changes
        self.options = options
        self.managed_by_id = {m.experiment_id: m for m in actual.managed.values()}

    # -- one pair -------------------------------------------------------------------------
    def diff(self, p: Pair) -> _Result:
        if p.desired is not None and p.actual is None:
            return self._create(p, p.desired)
        if p.desired is not None and p.actual is not None:
            return self._update(p, p.desired, p.actual)
        return self._removed(p)

    def _create(self, p: Pair, d: DesiredExperiment) -> _Result:
        r = _Result(p, d.resolved_id, d.public_model_id, status_after=d.status, archived_after=d.archived)
        if p.managed is not None and p.managed.experiment_id in self.actual.experiments:
            # the key already manages a row that still exists under another id (an id: pin
            # was removed or changed): creating would duplicate it and orphan the original
            r.refuse("E503", f"key {p.key!r} manages experiment {p.managed.experiment_id}, but the YAML now "
                     f"points at {d.resolved_id}", "id" if d.id else "key",
                     hint=f"restore `id: {p.managed.experiment_id}` in the YAML")
            r.status_after = self.actual.experiments[p.managed.experiment_id].status
            r.experiment_id = p.managed.experiment_id
            return r
        if p.managed is not None:
            r.drift.append(DriftItem(p.key, "(row)", "exists", "deleted outside git", False, True))
            r.diags.append(
                Diagnostic.make("W501", "experiment was deleted in the database outside git; the plan re-creates it",
                                d.source("key"), path="key", experiment=p.key)
            )
        if d.status not in machine.CREATABLE:
            r.refuse("E311", f"cannot create a new experiment as {d.status}", "status",
                     hint="create it as draft or active; it can be paused or completed by a later change")
            r.status_after = None
            return r
        eid = d.resolved_id
        r.ops.append(CreateExperiment(experiment_key=p.key, experiment_id=eid, public_model_id=d.public_model_id,
                                      name=d.name, description=d.description, archived=d.archived))
        for v in d.variants:
            vid = d.variant_id(v)
            r.ops.append(AddVariant(experiment_key=p.key, experiment_id=eid, variant_key=v.key, variant_id=vid,
                                    label=v.label, weight=v.weight))
            r.ops.append(self._version(p.key, eid, v, vid, None))
        if d.status is Status.ACTIVE:
            self._transition(r, Status.DRAFT, d.status, d, {v.label: self.now for v in d.variants})
        r.ops.append(RecordManaged(experiment_key=p.key, experiment_id=eid, last_applied=last_applied_of(d)))
        return r

    def _version(self, key: str, eid: uuid.UUID, v: DesiredVariant, vid: uuid.UUID,
                 base: ActualVersion | None, key_change: KeyChange = KeyChange.NEW) -> InsertVersion:
        return InsertVersion(
            experiment_key=key, experiment_id=eid, variant_key=v.key, variant_id=vid, label=v.label,
            base_version_id=base.id if base else None,
            upstream_before=base.upstream if base else None,
            upstream_after=v.upstream,
            upstream_diff=upstream_diff(base.upstream if base else None, v.upstream),
            key_change=key_change, api_key_ref=str(v.api_key),
        )

    def _check(self, r: _Result, change: Change, status: Status, message: str, path: str) -> bool:
        if machine.may(change, status):
            return True
        hint = "create a new experiment (new key)" if change in (Change.VARIANT_SET, Change.PUBLIC_MODEL_ID) else None
        r.refuse(machine.REFUSAL_CODE[change],
                 f"{message}: not allowed while {status} (allowed in: {machine.allowed_in(change)})", path, hint)
        return False

    def _update(self, p: Pair, d: DesiredExperiment, a: ActualExperiment) -> _Result:
        key, eid = p.key, a.id
        r = _Result(p, eid, d.public_model_id, status_after=a.status, archived_after=a.is_archived)
        owner = self.managed_by_id.get(a.id)
        if p.managed is not None and p.managed.experiment_id != a.id:
            r.refuse("E503", f"key {key!r} manages experiment {p.managed.experiment_id}, but the YAML now points at {a.id}",
                     "id", hint="restore the id: pin, or remove the old experiment's YAML first")
            return r
        if owner is not None and owner.key != key and owner.key in self.desired_keys:
            r.refuse("E503", f"experiment {a.id} is managed by key {owner.key!r}", "id")
            return r
        acknowledged = self._drift(r, d, a, p.managed or owner)
        status = a.status
        # 1. field edits (run before the transition: checked against the current status)
        changes = []
        for fname in ("name", "description"):
            before, after = getattr(a, fname), getattr(d, fname)
            if before != after:
                changes.append(FieldChange(fname, before, after))
        if a.public_model_id != d.public_model_id:
            if self._check(r, Change.PUBLIC_MODEL_ID, status, "public_model_id change", "public_model_id"):
                changes.append(FieldChange("public_model_id", a.public_model_id, d.public_model_id))
        if changes:
            r.ops.append(UpdateFields(experiment_key=key, experiment_id=eid, changes=tuple(changes)))
        # 2. variants
        effective = self._variants(r, d, a, status)
        # 3. status
        if d.status is not a.status and d.status not in acknowledged:
            self._transition(r, a.status, d.status, d, effective)
        # 4. archive flag (unarchive runs first, archive last: checked accordingly)
        if d.archived != a.is_archived and "archived" not in acknowledged:
            if d.archived:
                final = r.status_after or a.status
                if self._check(r, Change.ARCHIVE, final, "archive", "archived"):
                    r.ops.append(SetArchived(experiment_key=key, experiment_id=eid, before=False, after=True))
                    r.archived_after = True
            elif self._check(r, Change.UNARCHIVE, status, "unarchive", "archived"):
                r.ops.append(SetArchived(experiment_key=key, experiment_id=eid, before=True, after=False))
                r.archived_after = False
        record = last_applied_of(d)
        if p.managed is None or p.managed.last_applied != record:
            r.ops.append(RecordManaged(experiment_key=key, experiment_id=eid, last_applied=record,
                                       adopted=p.managed is None))
            if p.managed is None:
                r.notes.append("expsync starts managing this existing experiment (adopted by id)")
        return r

    def _variants(self, r: _Result, d: DesiredExperiment, a: ActualExperiment, status: Status) -> dict[str, datetime | None]:
        """Variant add/remove/label/weight/version ops. Returns label -> effective_at of the
        version that will be current at activation time (for the guards)."""
        key, eid = r.p.key, a.id
        actual_by_id = {v.id: v for v in a.variants}
        desired_ids = {d.variant_id(v): v for v in d.variants}
        effective: dict[str, datetime | None] = {}
        removed = [v for vid, v in actual_by_id.items() if vid not in desired_ids]
        added = [(vid, v) for vid, v in desired_ids.items() if vid not in actual_by_id]
        hint = None
        if removed and added:
            hint = "a variant's identity is its key (default: its label); to rename it set `key:` to the old key"
        for av in sorted(removed, key=lambda v: v.label):
            if self._check(r, Change.VARIANT_SET, status, f"removing variant {av.label!r}", "variants"):
                r.ops.append(RemoveVariant(experiment_key=key, experiment_id=eid, variant_id=av.id, label=av.label,
                                           weight=av.weight))
            elif hint:
                r.diags[-1] = Diagnostic.make(r.diags[-1].code, r.diags[-1].message, r.diags[-1].source,
                                              path=r.diags[-1].path, hint=hint, experiment=key)
        for i, v in enumerate(d.variants):
            vid = d.variant_id(v)
            path = f"variants[{i}]"
            found = actual_by_id.get(vid)
            if found is None:
                if self._check(r, Change.VARIANT_SET, status, f"adding variant {v.label!r}", path):
                    r.ops.append(AddVariant(experiment_key=key, experiment_id=eid, variant_key=v.key, variant_id=vid,
                                            label=v.label, weight=v.weight))
                    r.ops.append(self._version(key, eid, v, vid, None))
                effective[v.label] = self.now
                continue
            av = found
            if av.label != v.label and self._check(r, Change.VARIANT_LABEL, status, f"relabel {av.label!r} -> {v.label!r}",
                                                   f"{path}.label"):
                r.ops.append(RelabelVariant(experiment_key=key, experiment_id=eid, variant_key=v.key, variant_id=vid,
                                            before=av.label, after=v.label))
            if av.weight != v.weight and self._check(r, Change.VARIANT_SET, status,
                                                     f"weight change {av.weight} -> {v.weight}", f"{path}.weight"):
                r.ops.append(ChangeWeight(experiment_key=key, experiment_id=eid, variant_key=v.key, variant_id=vid,
                                          label=v.label, before=av.weight, after=v.weight))
            effective[v.label] = av.current.effective_at if av.current else None
            latest = av.pending or av.current
            if latest is None:
                if self._check(r, Change.NEW_VERSION, status, f"first version of {v.label!r}", f"{path}.upstream"):
                    r.ops.append(self._version(key, eid, v, vid, None))
                    effective[v.label] = self.now
                continue
            kc = self.key_changes.get((key, v.key), KeyChange.UNKNOWN)
            if not keys_matter(d):
                kc = KeyChange.UNCHANGED  # its secret is not even resolved (see keys_matter)
            if av.pending is not None:
                r.diags.append(Diagnostic.make(
                    "W502", f"variant {v.label!r} has a version effective at {av.pending.effective_at.isoformat()} "
                    "(future-dated); it supersedes older versions when it takes effect",
                    d.source(f"{path}.upstream"), path=f"{path}.upstream", experiment=key))
            if latest.upstream != v.upstream or kc is KeyChange.ROTATED:
                if self._check(r, Change.NEW_VERSION, status, f"new version of {v.label!r}", f"{path}.upstream"):
                    r.ops.append(self._version(key, eid, v, vid, latest, kc if kc is not KeyChange.UNKNOWN else KeyChange.UNKNOWN))
                    effective[v.label] = self.now
        return effective

    def _transition(self, r: _Result, current: Status, target: Status, d: DesiredExperiment,
                    effective: Mapping[str, datetime | None]) -> None:
        trigger = machine.trigger_for(current, target)
        if trigger is None:
            r.refuse("E301", f"no transition from {current} to {target}", "status",
                     hint=machine.describe_alternatives(current))
            return
        r.ops.append(Transition(experiment_key=r.p.key, experiment_id=r.experiment_id, trigger=trigger,
                                from_status=current, to_status=target))
        r.status_after = target
        if trigger is Trigger.ACTIVATE:
            r.activation = GuardInput(
                variant_weights=tuple(v.weight for v in d.variants),
                current_effective=effective,
                other_holders=(),
                public_model_id=d.public_model_id,
                now=self.now,
            )
            r.activation_source = d.source("status")

    def _drift(self, r: _Result, d: DesiredExperiment, a: ActualExperiment, m: ManagedRecord | None) -> set[object]:
        """Record drift (database vs what expsync last applied) for experiment fields and, by
        variant id, each variant's label, weight and upstream. Refuse protective drift that git
        has not acknowledged; warn (W501) where git did not change the field, so the plan
        reverts it. Returns the fields (``Status`` value or ``"archived"``) not to plan."""
        blocked: set[object] = set()
        if m is None:
            return blocked
        last, now_view, want, where = _drift_views(m.last_applied, a, d)
        for path in sorted(set(last) | set(now_view)):
            last_value, actual_value = last.get(path), now_view.get(path)
            if last_value == actual_value:
                continue
            protective = (path == "status" and (last_value, actual_value) in PROTECTIVE) or (
                path == "archived" and actual_value is True)
            unacknowledged = want.get(path) == last_value
            refused = protective and unacknowledged
            r.drift.append(DriftItem(r.p.key, path, last_value, actual_value, protective,
                                     reverted=want.get(path) != actual_value and not refused))
            if refused:
                blocked.add(d.status if path == "status" else "archived")
                r.refuse("E501", f"{path} was changed to {actual_value!r} outside git (last applied: {last_value!r}); "
                         "expsync will not undo a protective change", path,
                         hint=f"set {path}: {str(actual_value).lower()} in the YAML to acknowledge it")
            elif want.get(path) != actual_value and unacknowledged:
                shown = "absent" if actual_value is None else repr(actual_value)
                back = "what git says" if isinstance(want.get(path), dict) else repr(want.get(path))
                r.diags.append(Diagnostic.make("W501", f"{path} was changed to {shown} outside git; the plan reverts "
                                               f"it to {back}", d.source(where.get(path, path)),
                                               path=where.get(path, path), experiment=r.p.key))
        return blocked

    def _removed(self, p: Pair) -> _Result:
        m = p.managed
        assert m is not None  # pair() only yields desired-less pairs for managed keys
        a = p.actual
        r = _Result(p, m.experiment_id, a.public_model_id if a else str(m.last_applied.get("public_model_id", "")))
        if a is None:
            r.ops.append(ReleaseExperiment(experiment_key=p.key, experiment_id=m.experiment_id,
                                           reason="deleted in the database and removed from git"))
            return r
        r.status_after, r.archived_after = a.status, a.is_archived
        if machine.may(Change.DELETE, a.status):
            r.ops.append(DeleteExperiment(experiment_key=p.key, experiment_id=a.id, public_model_id=a.public_model_id,
                                          status=a.status))
            r.status_after = None
        elif a.status is Status.COMPLETED and a.is_archived:
            r.ops.append(ReleaseExperiment(experiment_key=p.key, experiment_id=a.id,
                                           reason="completed and archived; removed from git"))
        else:
            r.diags.append(Diagnostic.make(
                "E502", f"managed experiment {p.key!r} ({a.status}{', archived' if a.is_archived else ''}) was removed "
                "from git; only drafts are deleted and completed+archived experiments released",
                None, experiment=p.key,
                hint="restore its YAML and complete + archive it first; remove the file in a later change"))
        return r

    desired_keys: frozenset[str] = frozenset()


def _explain(r: _Result, options: PlanOptions) -> ExperimentPlan:
    p, d, a = r.p, r.p.desired, r.p.actual
    before = tuple(_shares([(v.id, v.label, v.weight) for v in a.variants])) if a else ()
    after: tuple[Share, ...] = ()
    if any(x.is_error for x in r.diags) or (d is None and r.status_after is not None):
        after = before  # refused, or released: the rows stay as they are
    elif d is not None and r.status_after is not None:
        after = _shares([(d.variant_id(v), v.label, v.weight) for v in d.variants])
    status_before = a.status if a else None
    impact = []
    tmpl = _IMPACT.get((status_before, r.status_after)) if status_before != r.status_after or status_before is Status.PAUSED else None
    pid = r.public_model_id
    if r.ops and tmpl and any(touches_gateway(op) for op in r.ops):
        impact.append(tmpl.format(pid=pid))
    if r.status_after is Status.ACTIVE:
        for op in r.ops:
            if isinstance(op, InsertVersion) and op.base_version_id is not None:
                what = "new upstream version" if op.upstream_diff else "same upstream with a rotated key" \
                    if op.key_change is KeyChange.ROTATED else "new version"
                impact.append(f"variant {op.label!r}: its traffic moves to the {what} immediately")
    pids = {pid}
    if a is not None:
        pids.add(a.public_model_id)
    cache: tuple[str, ...] = ()
    if any(touches_gateway(o) for o in r.ops):
        cache = tuple(per_id_key(x, options.redis_prefix) for x in sorted(pids))
        before_routing = a is not None and a.status in ROUTING_STATUSES
        after_routing = r.status_after in ROUTING_STATUSES
        if before_routing != after_routing or (after_routing and a is not None and a.public_model_id != pid):
            # the set of routing public ids changes: the membership key is what the gateway
            # caches in-process for about a minute (spec §1.3)
            cache = (membership_key(options.redis_prefix), *cache)
            impact.append("the gateway's membership cache picks this up within about 60 s of the Redis refresh")
    return ExperimentPlan(
        key=p.key, experiment_id=r.experiment_id, public_model_id=pid,
        public_model_id_before=a.public_model_id if a else None,
        status_before=status_before, status_after=r.status_after,
        archived_before=a.is_archived if a else None, archived_after=r.archived_after,
        shares_before=before, shares_after=after, routing_impact=tuple(impact), cache_keys=cache,
        ops=order(r.ops), notes=tuple(r.notes),
    )


def plan(
    desired: DesiredState,
    actual: ActualState,
    *,
    now: datetime,
    key_changes: KeyChanges,
    options: PlanOptions = PlanOptions(),
) -> Plan:
    planner = _Planner(actual, now, key_changes, options)
    planner.desired_keys = frozenset(desired.experiments)
    results = [planner.diff(p) for p in pair(desired, actual)]

    # final routing picture: who holds which public id once every op has run
    final: dict[uuid.UUID, tuple[Status | None, str, str]] = {
        eid: (a.status, a.public_model_id, f"{a.name!r} ({eid}, not managed by expsync)")
        for eid, a in actual.experiments.items()
    }
    for m in actual.managed.values():
        if m.experiment_id in final:
            st, pid, _ = final[m.experiment_id]
            final[m.experiment_id] = (st, pid, repr(m.key))
    for r in results:
        if r.p.desired is not None or r.p.actual is not None:
            label = repr(r.p.key)
            final[r.experiment_id] = (r.status_after, r.public_model_id, label)
    for r in results:
        if r.activation is None:
            continue
        holders = tuple(sorted(lbl for eid, (st, pid, lbl) in final.items()
                               if eid != r.experiment_id and st in ROUTING_STATUSES and pid == r.public_model_id))
        g = GuardInput(r.activation.variant_weights, r.activation.current_effective, holders,
                       r.activation.public_model_id, now)
        for failure in machine.activation_guards(g):
            r.diags.append(Diagnostic.make(failure.code, failure.message, r.activation_source, path="status",
                                           experiment=r.p.key))

    diags = [d for r in results for d in r.diags]
    if not options.compare_secrets:
        diags.append(Diagnostic.make("W503", "api keys were not compared (--no-secrets): key changes show as unknown "
                                     "and this plan cannot be applied", None))
    ops = order(op for r in results for op in r.ops)
    explained = tuple(_explain(r, options) for r in results if r.ops or r.diags or r.drift)
    per_id = sorted({k for e in explained for k in e.cache_keys})
    cache_keys = (membership_key(options.redis_prefix), *per_id) if any(touches_gateway(o) for o in ops) else ()
    digests = Digests(
        desired=digest_items(desired.experiments[k] for k in sorted(desired.experiments)),
        # the outbox is excluded: draining it between plan and apply is not a change of state
        actual=digest_items(itertools.chain(
            (actual.experiments[i] for i in sorted(actual.experiments)),
            (actual.managed[k] for k in sorted(actual.managed)),
        )),
        ops=digest_items(ops),
    )
    return Plan(
        ops=ops,
        experiments=explained,
        drift=tuple(item for r in results for item in r.drift),
        diagnostics=tuple(sort_diagnostics(diags)),
        digests=digests,
        cache_keys=cache_keys,
        secrets_compared=options.compare_secrets,
    )
