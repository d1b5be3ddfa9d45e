"""plan stage: (DesiredState, ActualState, key comparisons) -> Plan. Pure: no I/O.

Imports only :mod:`expsync.model`, :mod:`expsync.diagnostics` and its own modules (plus
deepdiff for per-object upstream diffs); a test enforces this.
"""

from expsync.plan.planner import Pair, PlanOptions, keys_matter, last_applied_of, pair, plan
from expsync.plan.types import Digests, DriftItem, ExperimentPlan, Plan, Share

__all__ = ["Digests", "DriftItem", "ExperimentPlan", "Pair", "Plan", "PlanOptions", "Share", "keys_matter", "last_applied_of", "pair", "plan"]
