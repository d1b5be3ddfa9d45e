"""Drift: what changed in the database outside git, relative to what expsync last applied.

:data:`EXPERIMENT_FIELDS` and :data:`VARIANT_FIELDS` are the one field spec: the ownership
record (:func:`last_applied_of`), the drift views and the renderers' drift rows use them. A
variant's drift path is ``variants.<key>.<field>``, variants matched by id.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import field
from operator import attrgetter
from typing import Final

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
from expsync.plan.equality import json_equal
from expsync.plan.types import DriftItem
from expsync.records import dataclass


@dataclass(frozen=True, slots=True)
class ExperimentField:
    name: str
    #: where the value is: an attribute path on the desired experiment and on its row
    desired_path: str
    actual_path: str
    #: left out of the ownership record while None (records written before the field existed
    #: stay equal, and read back as None)
    omit_none: bool = False
    desired: Callable[[DesiredExperiment], JsonValue] = field(init=False, repr=False, compare=False)
    actual: Callable[[ActualExperiment], JsonValue] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "desired", attrgetter(self.desired_path))
        object.__setattr__(self, "actual", attrgetter(self.actual_path))


@dataclass(frozen=True, slots=True)
class VariantField:
    name: str
    #: where the value is on a desired variant (an attribute path)
    desired_path: str
    actual: Callable[[ActualVariant], JsonValue]
    desired: Callable[[DesiredVariant], JsonValue] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "desired", attrgetter(self.desired_path))


def _latest_upstream(v: ActualVariant) -> JsonValue:
    latest = v.pending or v.current
    return latest.upstream if latest else None


#: experiment fields recorded as applied and watched for drift (``status``/``archived`` may be
#: protective: :func:`expsync.rules.is_protective`)
EXPERIMENT_FIELDS: tuple[ExperimentField, ...] = (
    ExperimentField("public_model_id", "public_model_id", "public_model_id"),
    ExperimentField("name", "name", "name"),
    ExperimentField("description", "description", "description"),
    ExperimentField("status", "status.value", "status.value"),
    ExperimentField("archived", "archived", "is_archived"),
    ExperimentField("metadata", "metadata", "metadata", omit_none=True),
)

#: per-variant fields recorded as applied and watched for drift (upstream: the latest version)
VARIANT_FIELDS: tuple[VariantField, ...] = (
    VariantField("label", "label", attrgetter("label")),
    VariantField("weight", "weight", attrgetter("weight")),
    VariantField("upstream", "upstream", _latest_upstream),
)

#: every experiment field of a desired experiment, and of a row, as one tuple; the same for
#: a desired variant (read in one call each: these run for every experiment of a plan)
_DESIRED_ROW: Final = attrgetter(*(f.desired_path for f in EXPERIMENT_FIELDS))
_ACTUAL_ROW: Final = attrgetter(*(f.actual_path for f in EXPERIMENT_FIELDS))
_DESIRED_VARIANT_ROW: Final = attrgetter(*(f.desired_path for f in VARIANT_FIELDS))
_VARIANT_NAMES: Final = tuple(f.name for f in VARIANT_FIELDS)


def desired_fields(d: DesiredExperiment) -> tuple[object, dict[uuid.UUID, tuple[JsonValue, ...]]]:
    """Every drift field git wants for ``d``, variants by id: comparable with
    :func:`~expsync.plan.equality.json_equal` to :func:`actual_fields` of a row (equal: no field of the
    row differs from git)."""
    return _DESIRED_ROW(d), {d.variant_id(v): _DESIRED_VARIANT_ROW(v) for v in d.variants}


def actual_fields(a: ActualExperiment) -> tuple[object, dict[uuid.UUID, tuple[JsonValue, ...]]]:
    """Every drift field of a row as it is, variants by id (see :func:`desired_fields`)."""
    return _ACTUAL_ROW(a), {v.id: tuple(f.actual(v) for f in VARIANT_FIELDS) for v in a.variants}


def last_applied_of(d: DesiredExperiment) -> JsonObject:
    """What expsync records as applied for ``d``: references only, never secret values."""
    out: JsonObject = {"id": str(d.resolved_id)}
    for f, value in zip(EXPERIMENT_FIELDS, _DESIRED_ROW(d)):
        if value is not None or not f.omit_none:
            out[f.name] = value
    out["variants"] = [{"key": v.key, "id": str(d.variant_id(v)), **dict(zip(_VARIANT_NAMES, _DESIRED_VARIANT_ROW(v))),
                        "api_key": str(v.api_key)} for v in d.variants]
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
        if json_equal(last_value, actual_value):
            continue
        unacknowledged, reverts = json_equal(want, last_value), not json_equal(want, actual_value)
        refused = rules.is_protective(path, last_value, actual_value) and unacknowledged
        items.append(DriftItem(key, path, last_value, actual_value, rules.is_protective(path, last_value, actual_value),
                               reverted=reverts and not refused))
        if refused:
            blocked.add(d.status if path == "status" else "archived")
            diags.append(Diagnostic.make(
                "E501", f"{path} was changed to {actual_value!r} outside git (last applied: {last_value!r}); "
                "expsync will not undo a protective change", d.source(path), path=path,
                hint=f"set {path}: {str(actual_value).lower()} in the YAML to acknowledge it", experiment=key))
        elif reverts and unacknowledged:
            shown = "absent" if actual_value is None else repr(actual_value)
            back = "what git says" if isinstance(want, dict) else repr(want)
            where = v.where.get(path, path)
            diags.append(Diagnostic.make("W501", f"{path} was changed to {shown} outside git; the plan reverts it to {back}",
                                         d.source(where), path=where, experiment=key))
    return Drift(tuple(items), tuple(diags), frozenset(blocked))

