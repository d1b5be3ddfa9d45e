"""The planner: ``plan(desired, actual, now=..., key_changes=..., options=...) -> Plan``.

Pure: no database, no Redis, no environment, no clock, no printing. Same inputs, same Plan,
same digests. A composition of one function per concern:

1. :func:`~expsync.plan.pair.pair` desired experiments with database rows and ownership records;
2. :func:`~expsync.plan.diff.diff` each pair into proposed ops (drift from
   :mod:`expsync.plan.drift`);
3. :func:`~expsync.plan.check.check_edits` every op in execution order through the rules
   table, then :func:`~expsync.plan.check.check_activations` the activation guards against the
   final routing picture;
   :func:`~expsync.plan.check.check_not_emptied` refuses removing every managed experiment;
4. :func:`~expsync.plan.explain.explain` each experiment, order all ops
   (:mod:`expsync.plan.order`), derive the cache keys and the digests (each computed when
   first read); list the security-relevant changes (:mod:`expsync.plan.security`).
"""

from __future__ import annotations

import itertools
import uuid
from dataclasses import replace
from datetime import datetime

from expsync.diagnostics import Diagnostic, sort_diagnostics
from expsync.model import ActualState, DesiredState
from expsync.plan.check import check_activations, check_edits, check_not_emptied
from expsync.plan.diff import Context, KeyChanges, diff
from expsync.plan.digest import digest_items
from expsync.plan.document import ops_digest
from expsync.plan.explain import cache_keys_for, explain
from expsync.plan.ops import Op
from expsync.plan.order import order
from expsync.plan.pair import pair
from expsync.plan.security import all_security_items
from expsync.plan.types import Digests, Plan
from expsync.records import dataclass


@dataclass(frozen=True, slots=True)
class PlanOptions:
    redis_prefix: str = ""
    #: False for ``--no-secrets``: api keys are reported ``unknown`` and the plan is not applyable
    compare_secrets: bool = True
    #: show no value of an experiment expsync does not manage (``--no-secrets``: untrusted PRs)
    redact_unmanaged: bool = False
    #: allow a plan that removes every managed experiment (``--allow-empty``; else E504)
    allow_empty: bool = False
    #: the gateway profile the plan was made for (display: every format names it)
    gateway_profile: str = ""


def _digests(desired: DesiredState, actual: ActualState, ops: tuple[Op, ...]) -> Digests:
    """The plan's digests, each computed when first read (a text plan reads none)."""
    return Digests(
        desired=lambda: digest_items(desired.experiments[k] for k in sorted(desired.experiments)),
        # the outbox is excluded: draining it between plan and apply is not a change of state
        actual=lambda: digest_items(itertools.chain(
            (actual.experiments[i] for i in sorted(actual.experiments)),
            (actual.managed[k] for k in sorted(actual.managed)),
        )),
        ops=lambda: ops_digest(ops),  # of the operations exactly as a saved plan shows them
    )


def _shown(actual: ActualState, hidden: dict[uuid.UUID, str]) -> ActualState:
    """``actual`` with each hidden experiment's public id replaced by the one git wants, so the
    cache keys derived from it do not name the id it has in the database."""
    if not hidden:
        return actual
    experiments = {eid: replace(a, public_model_id=hidden[eid]) if eid in hidden else a
                   for eid, a in actual.experiments.items()}
    return ActualState(experiments, actual.managed)


def plan(
    desired: DesiredState,
    actual: ActualState,
    *,
    now: datetime,
    key_changes: KeyChanges,
    options: PlanOptions = PlanOptions(),
) -> Plan:
    ctx = Context(now=now, key_changes=key_changes,
                  managed_by_id={m.experiment_id: m for m in actual.managed.values()},
                  desired_keys=frozenset(desired.experiments), existing=frozenset(actual.experiments),
                  redact_unmanaged=options.redact_unmanaged)
    results = [diff(p, ctx) for p in pair(desired, actual)]
    for r in (r for r in results if r.ops):  # nothing to check without an op
        check_edits(r, r.pair.actual.status if r.pair.actual is not None and r.pair.desired is not None else None)
    check_activations(results, actual, now, hide_unmanaged=options.redact_unmanaged)

    diags = [d for r in results for d in r.diagnostics]
    emptied = check_not_emptied(results, actual, allow_empty=options.allow_empty)
    if emptied is not None:
        diags.append(emptied)
    if not options.compare_secrets:
        diags.append(Diagnostic.make("W503", "api keys were not compared (--no-secrets): key changes show as unknown "
                                     "and this plan cannot be applied", None))
    ops = order(op for r in results for op in r.ops)
    shown = _shown(actual, {r.experiment_id: r.public_model_id for r in results if r.hidden})
    return Plan(
        ops=ops,
        experiments=tuple(explain(r, shown, options.redis_prefix) for r in results if r.ops or r.diagnostics or r.drift),
        drift=tuple(item for r in results for item in r.drift),
        diagnostics=tuple(sort_diagnostics(diags)),
        digests=_digests(desired, actual, ops),
        cache_keys=cache_keys_for(ops, shown, options.redis_prefix),
        secrets_compared=options.compare_secrets,
        security=all_security_items((r, r.hidden) for r in results),
        values_hidden=options.redact_unmanaged,
        gateway_profile=options.gateway_profile,
    )
