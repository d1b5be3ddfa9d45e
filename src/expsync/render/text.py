"""Text format: the default ``expsync plan`` output, shaped like ``terraform plan``.

Sections, in order: security-relevant changes (where api keys go that they did not go
before), drift ("Changes made outside git"), diagnostics, one block per changed experiment
(sorted by key), then one summary line. Each op becomes lines through the
:func:`op_lines` registry. Colour (ANSI) only when the caller asks for it.
"""

from __future__ import annotations

import functools
from typing import Final

from expsync import escape
from expsync.model import JsonObject, JsonValue
from expsync.plan.ops import (
    AddVariant,
    ChangeWeight,
    CreateExperiment,
    DeleteExperiment,
    InsertVersion,
    RecordManaged,
    RelabelVariant,
    ReleaseExperiment,
    RemoveVariant,
    SetArchived,
    Transition,
    UpdateFields,
    touches_gateway,
)
from expsync.plan.types import DriftItem, ExperimentPlan, Plan
from expsync.records import dataclass
from expsync.render import (
    HEADLINE,
    changed_experiments,
    format_share,
    format_value,
    headline_action,
    key_change_text,
    reason_text,
    share_rows,
    shares_unchanged,
    summary_line,
)
from expsync.render.diagnostics import render_text as render_diagnostics
from expsync.render.security import SECURITY_TITLE, security_subject, security_text

__all__ = ["Line", "OpContext", "op_lines", "render_text"]

_RESET: Final = "\x1b[0m"
_COLOURS: Final = {"+": "\x1b[32m", "~": "\x1b[33m", ">": "\x1b[33m", "-": "\x1b[31m", "!": "\x1b[31m"}
_BOLD: Final = "\x1b[1m"
_INDENT: Final = "    "


@dataclass(frozen=True, slots=True)
class Line:
    """One output line: ``indent`` levels deep, an optional change ``symbol``, the text."""

    text: str
    symbol: str = ""
    indent: int = 1


@dataclass(frozen=True, slots=True)
class OpContext:
    """What an op's lines may depend on besides the op itself."""

    experiment: ExperimentPlan
    secrets_compared: bool


@functools.singledispatch
def op_lines(op: object, ctx: OpContext) -> list[Line]:
    """The lines for one op. Every op class registers an implementation."""
    raise NotImplementedError(type(op).__name__)


@op_lines.register
def _(op: CreateExperiment, ctx: OpContext) -> list[Line]:
    lines = [Line(f"create experiment as draft: name {format_value(op.name)}", "+")]
    if op.description is not None:
        lines.append(Line(f"description: {format_value(op.description)}", indent=2))
    if op.archived:
        lines.append(Line("archived: true", indent=2))
    if op.metadata is not None:
        lines.append(Line(f"metadata: {format_value(op.metadata)}", indent=2))
    return lines


_NOT_SHOWN: Final = "(not shown: not managed by expsync)"


def _before(value: JsonValue, ctx: OpContext) -> str:
    """A value read from the database, or that it is not shown (``--no-secrets``, unmanaged)."""
    return _NOT_SHOWN if ctx.experiment.values_hidden else format_value(value)


@op_lines.register
def _(op: UpdateFields, ctx: OpContext) -> list[Line]:
    return [Line(f"{c.path}: {_before(c.before, ctx)} -> {format_value(c.after)}", "~") for c in op.changes]


@op_lines.register
def _(op: Transition, ctx: OpContext) -> list[Line]:
    return [Line(f"{op.trigger}: {op.from_status} -> {op.to_status}", ">")]


@op_lines.register
def _(op: SetArchived, ctx: OpContext) -> list[Line]:
    word = "archive" if op.after else "unarchive"
    return [Line(f"{word}: archived {format_value(op.before)} -> {format_value(op.after)}", "~")]


def _variant_name(label: str, key: str) -> str:
    return f"variant {format_value(label)}" + (f" (key {format_value(key)})" if key != label else "")


@op_lines.register
def _(op: AddVariant, ctx: OpContext) -> list[Line]:
    return [Line(f"add {_variant_name(op.label, op.variant_key)} with weight {op.weight}", "+")]


@op_lines.register
def _(op: RemoveVariant, ctx: OpContext) -> list[Line]:
    if op.weight is None:
        return [Line(f"remove variant {op.variant_id} (label and weight not shown; its versions go with it)", "-")]
    return [Line(f"remove variant {format_value(op.label)} (weight {op.weight}; its versions go with it)", "-")]


@op_lines.register
def _(op: RelabelVariant, ctx: OpContext) -> list[Line]:
    if ctx.experiment.values_hidden:
        return [Line(f"relabel variant {op.variant_id} -> {format_value(op.after)}", "~")]
    return [Line(f"relabel variant {format_value(op.before)} -> {format_value(op.after)}", "~")]


@op_lines.register
def _(op: ChangeWeight, ctx: OpContext) -> list[Line]:
    before = _NOT_SHOWN if op.before is None else str(op.before)
    return [Line(f"weight of variant {format_value(op.label)}: {before} -> {op.after}", "~")]


def _upstream_fields(upstream: JsonObject) -> list[Line]:
    return [Line(f"upstream.{k}: {format_value(upstream[k], k)}", "+", indent=2) for k in sorted(upstream)]


@op_lines.register
def _(op: InsertVersion, ctx: OpContext) -> list[Line]:
    if op.upstream_before is None:
        if op.base_version_id is None:
            lines = [Line(f"first version of variant {format_value(op.label)}", "+")]
        else:
            lines = [Line(f"new version of variant {format_value(op.label)} (current upstream {_NOT_SHOWN[1:-1]})", "+")]
        lines += _upstream_fields(op.upstream_after)
    else:
        lines = [Line(f"new version of variant {format_value(op.label)}", "+")]
        for c in op.upstream_diff:
            if c.before is None:
                lines.append(Line(f"upstream.{c.path}: {format_value(c.after, c.path)}", "+", indent=2))
            elif c.after is None:
                lines.append(Line(f"upstream.{c.path}: {format_value(c.before, c.path)}", "-", indent=2))
            else:
                lines.append(Line(f"upstream.{c.path}: {format_value(c.before, c.path)} -> {format_value(c.after, c.path)}", "~", indent=2))
        if not op.upstream_diff:
            lines.append(Line("upstream: unchanged", indent=2))
    key = key_change_text(op.key_change, secrets_compared=ctx.secrets_compared)
    lines.append(Line(f"api key: {key}, from {op.api_key_ref}", indent=2))
    return lines


@op_lines.register
def _(op: DeleteExperiment, ctx: OpContext) -> list[Line]:
    return [Line(f"delete experiment ({op.status}; its variants and versions go with it)", "-")]


@op_lines.register
def _(op: ReleaseExperiment, ctx: OpContext) -> list[Line]:
    return [Line(f"stop managing: {reason_text(op.reason)} (database rows stay)", "#")]


@op_lines.register
def _(op: RecordManaged, ctx: OpContext) -> list[Line]:
    # Every applied experiment gets its ownership record refreshed; show it only when it is
    # news (adoption) or the only thing that happens (otherwise "will be updated" misleads).
    if op.adopted:
        return [Line("adopt: expsync starts managing this experiment", "#")]
    if not any(touches_gateway(o) for o in ctx.experiment.ops):
        return [Line("refresh expsync's ownership record (no gateway change)", "#")]
    return []




def _experiment_lines(e: ExperimentPlan, secrets_compared: bool) -> list[Line]:
    symbol, phrase = HEADLINE[headline_action(e)]
    lines = [Line(f"experiment {format_value(e.key)} {phrase}", symbol, indent=0)]
    if e.values_hidden:
        lines.append(Line("its current values are not shown: an experiment not managed by expsync (--no-secrets)"))
    if e.public_model_id_before is not None and e.public_model_id_before != e.public_model_id:
        lines.append(Line(f"public model id: {e.public_model_id_before} -> {e.public_model_id}"))
    else:
        lines.append(Line(f"public model id: {e.public_model_id}"))
    lines.append(Line(f"status: {e.status_path}"))
    if e.archived_before is not None and e.archived_after is not None and e.archived_before != e.archived_after:
        lines.append(Line(f"archived: {format_value(e.archived_before)} -> {format_value(e.archived_after)}"))
    lines += _traffic_lines(e)
    lines += [Line(f"routing: {reason_text(impact)}") for impact in e.routing_impact]
    ctx = OpContext(e, secrets_compared)
    for op in e.ops:
        lines += op_lines(op, ctx)
    lines += [Line(f"cache: {key}") for key in e.cache_keys]
    lines += [Line(f"note: {reason_text(note)}") for note in e.notes]
    return lines


def _traffic_lines(e: ExperimentPlan) -> list[Line]:
    if not e.shares_before and not e.shares_after:
        return []
    if shares_unchanged(e):
        return [Line("traffic (unchanged): " + ", ".join(f"{s.label} {format_share(s)}" for s in e.shares_after))]
    rows = share_rows(e)
    width = max(len(label) for label, _, _ in rows)
    lines = [Line("traffic:")]
    lines += [Line(f"{label.ljust(width)}  {format_share(b)} -> {format_share(a)}", indent=2) for label, b, a in rows]
    return lines


def _drift_line(d: DriftItem) -> Line:
    if d.reverted:
        why = "this plan restores git's value"
    elif d.protective:
        why = "protective: expsync never undoes it silently"
    else:
        why = "kept: the YAML now matches"
    text = f"{d.experiment_key}: {d.path} {format_value(d.last_applied, d.path)} -> {format_value(d.actual, d.path)} ({why})"
    return Line(text, "!" if d.protective else "~")


def _security_lines(plan: Plan) -> list[Line]:
    lines = [Line(f"{SECURITY_TITLE} ({len(plan.security)}):", indent=0)]
    for item in plan.security:
        warning = "warning: " if item.is_warning else ""
        lines.append(Line(f"{warning}{security_subject(item)}: {security_text(item)}", "!"))
    return lines


def render_text(plan: Plan, *, color: bool = False) -> str:
    """The whole plan as text; ANSI colour only when ``color`` (the CLI decides: a TTY and
    ``NO_COLOR`` unset)."""
    out: list[str] = []
    if plan.security:
        out += [_format(line, color) for line in _security_lines(plan)]
        out.append("")
    if plan.drift:
        out.append(_paint("Changes made outside git:", _BOLD, color))
        out += [_format(_drift_line(d), color) for d in sorted(plan.drift, key=_drift_key)]
        out.append("")
    if plan.diagnostics:
        out += [_safe(line) for line in render_diagnostics(plan.diagnostics).split("\n")]
        out.append("")
    for e in changed_experiments(plan):
        out += [_format(line, color) for line in _experiment_lines(e, plan.secrets_compared)]
        out.append("")
    summary = summary_line(plan)
    if plan.refused:
        summary = _paint(summary, _COLOURS["-"], color)
    out.append(summary)
    if not plan.refused and not plan.applyable:
        out.append("This plan cannot be applied: api keys were not compared (--no-secrets).")
    if plan.gateway_profile:
        out.append(f"Gateway profile: {plan.gateway_profile}.")
    return "\n".join(out)


def _drift_key(d: DriftItem) -> tuple[str, str]:
    return (d.experiment_key, d.path)


def _format(line: Line, color: bool) -> str:
    symbol = _paint(line.symbol, _COLOURS.get(line.symbol, ""), color) + " " if line.symbol else ""
    text = _safe(line.text)
    if line.indent == 0 and color:
        text = _paint(text, _BOLD, color)
    return _INDENT * line.indent + symbol + text


def _paint(text: str, code: str, color: bool) -> str:
    return f"{code}{text}{_RESET}" if color and code else text


def _safe(text: str) -> str:
    """Escape control and invisible characters so text from YAML or the database cannot drive
    the terminal or hide what it says (:func:`expsync.escape.terminal`)."""
    return escape.terminal(text)
