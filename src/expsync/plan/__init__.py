"""plan stage: (DesiredState, ActualState, key comparisons) -> Plan. Pure: no I/O.

Imports only :mod:`expsync.model`, :mod:`expsync.rules`, :mod:`expsync.diagnostics` and its
own modules (plus deepdiff for per-object upstream diffs, and ada-url, the gateway's WHATWG URL
parser, for upstream origins); a test enforces this. One module per concern: ``pair``, ``diff``,
``drift``, ``check``, ``explain``, ``order``, ``ops`` (the per-op table), ``security`` (where
api keys go), ``redact`` (hiding unmanaged experiments' values), composed by ``planner``.
"""

from expsync.plan.drift import last_applied_of
from expsync.plan.explain import cache_keys_for
from expsync.plan.pair import Pair, pair
from expsync.plan.planner import PlanOptions, plan
from expsync.plan.types import Digests, DriftItem, ExperimentPlan, Plan, Share

__all__ = ["Digests", "DriftItem", "ExperimentPlan", "Pair", "Plan", "PlanOptions", "Share", "cache_keys_for",
           "last_applied_of", "pair", "plan"]
