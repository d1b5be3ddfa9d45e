"""Pairing: each desired experiment with its database row and ownership record, by id.

``desired is None`` means removed from git (delete or stop managing); ``actual is None`` means
not in the database (create). Each case is decided in :mod:`expsync.plan.diff`, once.
"""

from __future__ import annotations


from expsync.model import ActualExperiment, ActualState, DesiredExperiment, DesiredState, ManagedRecord
from expsync.records import dataclass


@dataclass(frozen=True, slots=True)
class Pair:
    """``desired is None``: removed from git. ``actual is None``: not in the database."""

    key: str
    desired: DesiredExperiment | None
    actual: ActualExperiment | None
    managed: ManagedRecord | None


def pair(desired: DesiredState, actual: ActualState) -> tuple[Pair, ...]:
    """One pair per desired key, plus one per managed key no longer in git; sorted by key."""
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
