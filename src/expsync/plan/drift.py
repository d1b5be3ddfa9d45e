"""Drift: what changed in the database outside git, relative to what expsync last applied.

:data:`EXPERIMENT_FIELDS` and :data:`VARIANT_FIELDS` are the one field spec: the ownership
record (:func:`last_applied_of`), the drift views and the renderers' drift rows use them. A
variant's drift path is ``variants.<key>.<field>``, variants matched by id.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from expsync import rules
from expsync.diagnostics import Diagnostic
from expsync.model import (
    ActualExperiment,
    ActualVariant,
    DesiredExperiment,
    DesiredVariant,
    JsonObject,
    JsonValue,
    ManagedRecord,
    Status,
)
from expsync.plan.types import DriftItem


@dataclass(frozen=True, slots=True)
class ExperimentField:
    name: str
    desired: Callable[[DesiredExperiment], JsonValue]
    actual: Callable[[ActualExperiment], JsonValue]
    #: left out of the ownership record while None (records written before the field existed
    #: stay equal, and read back as None)
    omit_none: bool = False


@dataclass(frozen=True, slots=True)
class VariantField:
    name: str
    desired: Callable[[DesiredVariant], JsonValue]
    actual: Callable[[ActualVariant], JsonValue]


def _latest_upstream(v: ActualVariant) -> JsonValue:
    latest = v.pending or v.current
    return latest.upstream if latest else None


#: experiment fields recorded as applied and watched for drift (``status``/``archived`` may be
#: protective: :func:`expsync.rules.is_protective`)
EXPERIMENT_FIELDS: tuple[ExperimentField, ...] = (
    ExperimentField("public_model_id", lambda d: d.public_model_id, lambda a: a.public_model_id),
    ExperimentField("name", lambda d: d.name, lambda a: a.name),
    ExperimentField("description", lambda d: d.description, lambda a: a.description),
    ExperimentField("status", lambda d: d.status.value, lambda a: a.status.value),
    ExperimentField("archived", lambda d: d.archived, lambda a: a.is_archived),
    ExperimentField("metadata", lambda d: d.metadata, lambda a: a.metadata, omit_none=True),
)

#: per-variant fields recorded as applied and watched for drift (upstream: the latest version)
VARIANT_FIELDS: tuple[VariantField, ...] = (
    VariantField("label", lambda v: v.label, lambda v: v.label),
    VariantField("weight", lambda v: v.weight, lambda v: v.weight),
    VariantField("upstream", lambda v: v.upstream, _latest_upstream),
)


def last_applied_of(d: DesiredExperiment) -> JsonObject:
    """What expsync records as applied for ``d``: references only, never secret values."""
    out: JsonObject = {"id": str(d.resolved_id)}
    out.update({f.name: f.desired(d) for f in EXPERIMENT_FIELDS if not (f.omit_none and f.desired(d) is None)})
    out["variants"] = [
        {"key": v.key, "id": str(d.variant_id(v)), **{f.name: f.desired(v) for f in VARIANT_FIELDS},
         "api_key": str(v.api_key)}
        for v in d.variants
    ]
    return out


@dataclass(frozen=True, slots=True)
class Views:
    """Flat ``path -> value`` views of the last applied record, the database and git, plus
    path -> YAML source path (``variants[1].weight``)."""

    last: dict[str, JsonValue]
    now: dict[str, JsonValue]
    want: dict[str, JsonValue]
    where: dict[str, str]


def views(last: JsonObject, a: ActualExperiment, d: DesiredExperiment) -> Views:
    v = Views({f.name: last.get(f.name) for f in EXPERIMENT_FIELDS}, {f.name: f.actual(a) for f in EXPERIMENT_FIELDS},
              {f.name: f.desired(d) for f in EXPERIMENT_FIELDS}, {})
    actual_by_id = {str(av.id): av for av in a.variants}
    desired_by_id = {str(d.variant_id(dv)): (i, dv) for i, dv in enumerate(d.variants)}
    raw_variants = last.get("variants")
    for lv in raw_variants if isinstance(raw_variants, list) else []:
        if not isinstance(lv, dict):
            continue
        vid, prefix = str(lv.get("id")), f"variants.{lv.get('key')}"
        av, dv = actual_by_id.get(vid), desired_by_id.get(vid)
        for fld in VARIANT_FIELDS:
            path = f"{prefix}.{fld.name}"
            v.last[path] = lv.get(fld.name)
            if av is not None:
                v.now[path] = fld.actual(av)
            if dv is not None:
                v.want[path] = fld.desired(dv[1])
                v.where[path] = f"variants[{dv[0]}].{fld.name}"
    return v


@dataclass(frozen=True, slots=True)
class Drift:
    items: tuple[DriftItem, ...]
    diagnostics: tuple[Diagnostic, ...]
    #: what git asks for but the plan must not do (protective drift not acknowledged):
    #: the wanted ``Status`` and/or ``"archived"``
    blocked: frozenset[Status | str]


NO_DRIFT = Drift((), (), frozenset())


def drift(key: str, d: DesiredExperiment, a: ActualExperiment, m: ManagedRecord | None) -> Drift:
    """Drift of experiment fields and, by variant id, each variant's fields. Refuse protective
    drift git has not acknowledged (E501); warn (W501) where git did not change the field, so
    the plan reverts it."""
    if m is None:
        return NO_DRIFT
    v = views(m.last_applied, a, d)
    items: list[DriftItem] = []
    diags: list[Diagnostic] = []
    blocked: set[Status | str] = set()
    for path in sorted(set(v.last) | set(v.now)):
        last_value, actual_value, want = v.last.get(path), v.now.get(path), v.want.get(path)
        if last_value == actual_value:
            continue
        unacknowledged = want == last_value
        refused = rules.is_protective(path, last_value, actual_value) and unacknowledged
        items.append(DriftItem(key, path, last_value, actual_value, rules.is_protective(path, last_value, actual_value),
                               reverted=want != actual_value and not refused))
        if refused:
            blocked.add(d.status if path == "status" else "archived")
            diags.append(Diagnostic.make(
                "E501", f"{path} was changed to {actual_value!r} outside git (last applied: {last_value!r}); "
                "expsync will not undo a protective change", d.source(path), path=path,
                hint=f"set {path}: {str(actual_value).lower()} in the YAML to acknowledge it", experiment=key))
        elif want != actual_value and unacknowledged:
            shown = "absent" if actual_value is None else repr(actual_value)
            back = "what git says" if isinstance(want, dict) else repr(want)
            where = v.where.get(path, path)
            diags.append(Diagnostic.make("W501", f"{path} was changed to {shown} outside git; the plan reverts it to {back}",
                                         d.source(where), path=where, experiment=key))
    return Drift(tuple(items), tuple(diags), frozenset(blocked))

