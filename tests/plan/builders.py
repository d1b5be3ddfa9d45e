"""Hand-built snapshots for planner tests (no database)."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import datetime, timedelta, timezone

from expsync.diagnostics import SourceRange
from expsync.model import (
    ActualExperiment,
    ActualState,
    ActualVariant,
    ActualVersion,
    DesiredExperiment,
    DesiredState,
    DesiredVariant,
    KeyChange,
    ManagedRecord,
    SecretRef,
    Status,
)
from expsync.plan import Plan, PlanOptions, last_applied_of, plan

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)
UP = {"internal_id": "m", "base_url": "https://api.example/v1"}


def dvar(label: str, weight: int = 1, *, key: str | None = None, upstream: dict | None = None, ref: str = "env:K") -> DesiredVariant:
    return DesiredVariant(key=key or label, label=label, weight=weight, upstream=dict(upstream or UP),
                          api_key=SecretRef("env", ref.removeprefix("env:")))


def dexp(key: str = "exp", *, status: Status = Status.DRAFT, archived: bool = False, pid: str = "partner/x",
         variants: tuple[DesiredVariant, ...] | None = None, name: str = "N", description: str | None = None,
         id: uuid.UUID | None = None) -> DesiredExperiment:
    f = f"experiments/{key}.yaml"
    sources = {"": SourceRange(f, 1, 1), "key": SourceRange(f, 1, 6), "status": SourceRange(f, 4, 9),
               "archived": SourceRange(f, 5, 11), "public_model_id": SourceRange(f, 2, 18), "variants": SourceRange(f, 7, 3)}
    for i in range(4):
        sources[f"variants[{i}]"] = SourceRange(f, 7 + 6 * i, 5)
        sources[f"variants[{i}].weight"] = SourceRange(f, 8 + 6 * i, 13)
        sources[f"variants[{i}].label"] = SourceRange(f, 7 + 6 * i, 12)
        sources[f"variants[{i}].upstream"] = SourceRange(f, 9 + 6 * i, 5)
    return DesiredExperiment(key=key, public_model_id=pid, name=name, description=description, status=status,
                             archived=archived, variants=variants if variants is not None else (dvar("a"), dvar("b")),
                             id=id, sources=sources)


def actual_of(d: DesiredExperiment, *, status: Status | None = None, archived: bool | None = None,
              **changes: object) -> ActualExperiment:
    """The row set expsync would have written for ``d`` (then overridden by ``changes``)."""
    variants = []
    for v in d.variants:
        vid = d.variant_id(v)
        ver = ActualVersion(id=uuid.uuid5(vid, "v1"), variant_id=vid, upstream=dict(v.upstream),
                            encrypted_api_key={"iv": "x", "data": "y", "authTag": "z"},
                            effective_at=NOW - timedelta(hours=1))
        variants.append(ActualVariant(id=vid, experiment_id=d.resolved_id, label=v.label, weight=v.weight, current=ver))
    a = ActualExperiment(id=d.resolved_id, public_model_id=d.public_model_id, name=d.name, description=d.description,
                         status=status or d.status, is_archived=d.archived if archived is None else archived,
                         variants=tuple(sorted(variants, key=lambda v: v.id)))
    return dataclasses.replace(a, **changes)  # type: ignore[arg-type]


def desired(*exps: DesiredExperiment) -> DesiredState:
    return DesiredState({e.key: e for e in exps})


def actual(*exps: ActualExperiment, managed: tuple[DesiredExperiment, ...] = ()) -> ActualState:
    return ActualState(
        experiments={a.id: a for a in exps},
        managed={d.key: ManagedRecord(d.key, d.resolved_id, last_applied_of(d)) for d in managed},
    )


def run(d: DesiredState, a: ActualState, key_changes: dict | None = None, **opts: object) -> Plan:
    kc = key_changes
    if kc is None:  # by default every existing key compares equal
        kc = {(e.key, v.key): KeyChange.UNCHANGED for e in d.experiments.values() for v in e.variants}
    return plan(d, a, now=NOW, key_changes=kc, options=PlanOptions(**opts))  # type: ignore[arg-type]


def codes(p: Plan) -> list[str]:
    return [d.code for d in p.diagnostics if d.is_error]


def op_names(p: Plan) -> list[str]:
    return [type(o).__name__ for o in p.ops]
