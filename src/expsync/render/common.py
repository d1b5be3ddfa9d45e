"""What the plan renderers share (counts, the summary line, value and share formatting), so
text, markdown and JSON say the same thing. Re-exported by :mod:`expsync.render`."""


from __future__ import annotations

# stdlib json under another name: importing the submodule expsync.render.json rebinds ``json`` here
import dataclasses
import json as _stdjson
from collections.abc import Iterable, Mapping
from typing import Final, assert_never

from expsync.model import JsonValue, KeyChange
from expsync.plan.ops import Action, Explained, Reason, RelabelVariant
from expsync.plan.types import ExperimentPlan, Plan, Share
from expsync.records import dataclass
from expsync.urls import mask_json

__all__ = [
    "HEADLINE",
    "Summary",
    "changed_experiments",
    "format_percent",
    "format_share",
    "format_value",
    "headline_action",
    "key_change_text",
    "reason_text",
    "share_rows",
    "shares_unchanged",
    "summarize",
    "summary_line",
]

#: per-experiment action -> (symbol, phrase) of its headline, in text and markdown alike
HEADLINE: Final[Mapping[Action, tuple[str, str]]] = {
    Action.CREATE: ("+", "will be created"),
    Action.UPDATE: ("~", "will be updated"),
    Action.TRANSITION: ("~", "will change status"),
    Action.DELETE: ("-", "will be deleted"),
    Action.MANAGE: ("#", "bookkeeping only"),
}

#: the words for each plan reason ({public_model_id}, {label}, {version} are its values)
_REASON_TEXT: Final[Mapping[Reason, str]] = {
    Reason.ADOPTED: "expsync starts managing this existing experiment (adopted by id)",
    Reason.RELEASED_ROW_DELETED: "deleted in the database and removed from git",
    Reason.RELEASED_COMPLETED_ARCHIVED: "completed and archived; removed from git",
    Reason.STARTS_ROUTING: "{public_model_id} starts routing to this experiment",
    Reason.PAUSED_REFUSES: "requests to {public_model_id} will be refused while paused (no fall-through)",
    Reason.RESUMES_ROUTING: "{public_model_id} resumes routing to this experiment",
    Reason.STOPS_ROUTING: "{public_model_id} stops routing to this experiment; normal routing resumes",
    Reason.NO_LONGER_REFUSED: "requests to {public_model_id} are no longer refused; normal routing resumes",
    Reason.STAYS_REFUSED: "requests to {public_model_id} stay refused while paused",
    Reason.TRAFFIC_MOVES: "variant {label!r}: its traffic moves to the {version} immediately",
    Reason.MEMBERSHIP_CACHE: "the gateway's membership cache picks this up within about 60 s of the Redis refresh",
}

_VERSION_TEXT: Final = {"upstream_changed": "new upstream version", "key_rotated": "same upstream with a rotated key",
                        "new": "new version"}


def reason_text(x: Explained | Reason) -> str:
    """A plan reason in words (the one place reasons become English)."""
    if isinstance(x, Reason):
        x = Explained(x)
    values = dict(x.values)
    if "version" in values:
        values["version"] = _VERSION_TEXT[values["version"]]
    return _REASON_TEXT[x.reason].format(**values)


def headline_action(e: ExperimentPlan) -> Action:
    """The action an experiment is counted under (defined once, on :class:`ExperimentPlan`)."""
    return e.action


@dataclass(frozen=True, slots=True)
class Summary:
    """Counts of changed experiments by :func:`headline_action` (one field per
    :data:`HEADLINE` action, same names), plus ops and diagnostics."""

    create: int
    update: int
    transition: int
    delete: int
    manage: int
    operations: int
    errors: int
    warnings: int

    def as_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)


def changed_experiments(plan: Plan) -> list[ExperimentPlan]:
    """Experiments with at least one op, sorted by key."""
    return sorted((e for e in plan.experiments if e.ops), key=lambda e: e.key)


def summarize(plan: Plan) -> Summary:
    counts = plan.counts()  # counted once, on the Plan
    errors = sum(1 for d in plan.diagnostics if d.is_error)
    return Summary(**{a.value: counts[a.value] for a in HEADLINE}, operations=len(plan.ops), errors=errors,
                   warnings=len(plan.diagnostics) - errors)


def summary_line(plan: Plan) -> str:
    """``Plan: 1 to create, ...`` / ``No changes. ...`` / ``Plan refused: N error(s).``"""
    s = summarize(plan)
    if plan.refused:
        return f"Plan refused: {s.errors} error(s)."
    if not plan.has_changes:
        return "No changes. The database matches the YAML."
    line = f"Plan: {s.create} to create, {s.update} to update, {s.transition} to transition, {s.delete} to delete"
    if s.manage:
        line += f", {s.manage} bookkeeping only"
    return line + "."


def format_value(value: JsonValue, path: str = "") -> str:
    """Compact JSON (``"foo"``, ``1``, ``null``, ``{"t":0.2}``); control characters escaped.

    Credentials are masked (``***``): values under a credential-named key (the last segment of
    ``path``, or any key inside ``value``) and URL passwords and credential query parameters.
    YAML cannot hold them (E411, E114), but a row another writer stored can, and the plan is a
    pull-request comment."""
    return _stdjson.dumps(masked(value, path), ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def masked(value: JsonValue, path: str = "") -> JsonValue:
    """``value`` with its credentials replaced by ``***`` (see :func:`format_value`); the JSON
    format shows values through this too."""
    out: JsonValue = mask_json(value, path.rpartition(".")[2].partition("[")[0])
    return out


def format_percent(share: Share) -> str:
    """``50%``, ``33.3%``: one decimal at most. A share that rounds to 0 or 100 without being
    exactly that is ``<0.1%`` / ``>99.9%``: weights 9999:1 must not read as all traffic to one
    variant and none to the other (JSON's ``buckets`` give the exact count)."""
    text = f"{share.percent:.1f}".rstrip("0").rstrip(".")
    if text == "0" and share.exact > 0:
        return "<0.1%"
    if text == "100" and share.exact < 1:
        return ">99.9%"
    return f"{text}%"


def format_share(share: Share | None) -> str:
    """``50% (1)``: percentage with the weight behind it; ``(none)`` when there is none."""
    return "(none)" if share is None else f"{format_percent(share)} ({share.weight})"


def share_rows(e: ExperimentPlan) -> list[tuple[str, Share | None, Share | None]]:
    """``(label, before, after)`` per variant, before matched to after by label (following the
    plan's relabels). Variants in gateway walk order: after's order, then removed ones."""
    renamed = {op.before: op.after for op in e.ops if isinstance(op, RelabelVariant)}
    before = {renamed.get(s.label, s.label): s for s in e.shares_before}
    rows: list[tuple[str, Share | None, Share | None]] = [(s.label, before.pop(s.label, None), s) for s in e.shares_after]
    rows += [(s.label, s, None) for label, s in before.items()]
    return rows


def shares_unchanged(e: ExperimentPlan) -> bool:
    return bool(e.shares_before) and _same_shares(e.shares_before, e.shares_after) and not any(
        isinstance(op, RelabelVariant) for op in e.ops
    )


def _same_shares(a: Iterable[Share], b: Iterable[Share]) -> bool:
    return [(s.label, s.weight, s.total) for s in a] == [(s.label, s.weight, s.total) for s in b]


def key_change_text(change: KeyChange, *, secrets_compared: bool) -> str:
    """What happens to a variant's api key, in words. Never the key or any part of it."""
    match change:
        case KeyChange.UNCHANGED:
            return "unchanged"
        case KeyChange.ROTATED:
            return "rotated"
        case KeyChange.NEW:
            return "new"
        case KeyChange.UNKNOWN:
            if not secrets_compared:
                return "unknown (not compared: --no-secrets)"
            return "unknown (could not be compared)"
        case _:
            assert_never(change)
