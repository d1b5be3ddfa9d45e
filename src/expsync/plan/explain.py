"""Explain: per experiment, what the checked ops mean for traffic, as structured reasons.

Reasons are codes with values (:class:`~expsync.plan.ops.Explained`); the renderers word
them. Also here: :func:`cache_keys_for`, the one function that derives the Redis keys to
refresh from the ops, used by the plan display and by apply's outbox.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Final

from expsync import rules
from expsync.model import ActualState, KeyChange, Status, membership_key, per_id_key
from expsync.plan.diff import ExperimentDiff
from expsync.plan.ops import CreateExperiment, Explained, InsertVersion, Op, Reason, UpdateFields, touches_gateway
from expsync.plan.order import order
from expsync.plan.types import ExperimentPlan, Share, shares

#: (status before, status after) -> what that means for the public id
_IMPACT: Final[Mapping[tuple[Status | None, Status | None], Reason]] = {
    (None, Status.ACTIVE): Reason.STARTS_ROUTING,
    (Status.DRAFT, Status.ACTIVE): Reason.STARTS_ROUTING,
    (Status.ACTIVE, Status.PAUSED): Reason.PAUSED_REFUSES,
    (Status.PAUSED, Status.ACTIVE): Reason.RESUMES_ROUTING,
    (Status.ACTIVE, Status.COMPLETED): Reason.STOPS_ROUTING,
    (Status.PAUSED, Status.COMPLETED): Reason.NO_LONGER_REFUSED,
    (Status.PAUSED, Status.PAUSED): Reason.STAYS_REFUSED,
}


def public_ids_touched(ops: Iterable[Op], actual: ActualState) -> set[str]:
    """Public ids whose routing entry the gateway ops change: each touched row's current id
    plus the ids ops give rows (create, public id change)."""
    ops = list(ops)
    touched = {op.experiment_id for op in ops if touches_gateway(op)}
    pids = {actual.experiments[eid].public_model_id for eid in touched if eid in actual.experiments}
    for op in ops:
        if isinstance(op, CreateExperiment):
            pids.add(op.public_model_id)
        elif isinstance(op, UpdateFields):
            pids.update(str(c.after) for c in op.changes if c.path == "public_model_id")
    return pids


def cache_keys_for(ops: Iterable[Op], actual: ActualState, prefix: str) -> tuple[str, ...]:
    """Every Redis key to refresh after ``ops`` ran: the membership key first, then the
    per-public-id keys, sorted; ``()`` when no op writes the gateway's tables."""
    ops = list(ops)
    if not any(touches_gateway(op) for op in ops):
        return ()
    return (membership_key(prefix), *(per_id_key(p, prefix) for p in sorted(public_ids_touched(ops, actual))))


def _version_reasons(r: ExperimentDiff) -> list[Explained]:
    out = []
    for op in r.ops:
        if isinstance(op, InsertVersion) and op.base_version_id is not None:
            version = "upstream_changed" if op.upstream_diff else "key_rotated" \
                if op.key_change is KeyChange.ROTATED else "new"
            out.append(Explained(Reason.TRAFFIC_MOVES, (("label", op.label), ("version", version))))
    return out


def _shares_after(r: ExperimentDiff, before: tuple[Share, ...]) -> tuple[Share, ...]:
    d = r.pair.desired
    if any(x.is_error for x in r.diagnostics) or (d is None and r.status_after is not None):
        return before  # refused, or released: the rows stay as they are
    if d is not None and r.status_after is not None:
        return shares([(d.variant_id(v), v.label, v.weight) for v in d.variants])
    return ()


def explain(r: ExperimentDiff, actual: ActualState, prefix: str) -> ExperimentPlan:
    """The display of one checked experiment: shares, routing impact, cache keys, notes."""
    a = r.pair.actual
    before = shares([(v.id, v.label, v.weight) for v in a.variants]) if a and not r.hidden else ()
    status_before = a.status if a else None
    pid = r.public_model_id
    impact: list[Explained] = []
    gateway = any(touches_gateway(op) for op in r.ops)
    reason = _IMPACT.get((status_before, r.status_after)) \
        if status_before != r.status_after or status_before is Status.PAUSED else None
    if reason is not None and gateway:
        impact.append(Explained(reason, (("public_model_id", pid),)))
    if r.status_after is Status.ACTIVE:
        impact += _version_reasons(r)
    cache: tuple[str, ...] = ()
    if gateway:
        cache = tuple(per_id_key(x, prefix) for x in sorted({pid} | public_ids_touched(r.ops, actual)))
        before_routing = a is not None and a.status in rules.ROUTING_STATUSES
        after_routing = r.status_after in rules.ROUTING_STATUSES
        if before_routing != after_routing or (after_routing and a is not None and a.public_model_id != pid):
            # the set of routing public ids changes: the membership key is what the gateway
            # caches in-process for about a minute (spec §1.3)
            cache = (membership_key(prefix), *cache)
            impact.append(Explained(Reason.MEMBERSHIP_CACHE))
    return ExperimentPlan(
        key=r.pair.key, experiment_id=r.experiment_id, public_model_id=pid,
        public_model_id_before=a.public_model_id if a and not r.hidden else None,
        status_before=status_before, status_after=r.status_after,
        archived_before=a.is_archived if a else None, archived_after=r.archived_after,
        shares_before=before, shares_after=_shares_after(r, before), routing_impact=tuple(impact),
        cache_keys=cache, ops=order(r.ops), notes=tuple(Explained(n) for n in r.notes), values_hidden=r.hidden,
    )

