"""Markdown format: one sticky pull-request comment (and ``$GITHUB_STEP_SUMMARY``).

Order (spec §7): summary, security-relevant changes (never collapsed, never dropped), errors and
warnings, drift ("Changes made outside git"), then one collapsible ``<details>`` section per
changed experiment with its tables.

The comment must stay under :data:`MAX_CHARS`. Detail is dropped in steps (:class:`Detail`),
the first that fits wins; a table is never cut in the middle:

1. ``FULL``: every section, per-field upstream diffs of new versions.
2. ``NO_UPSTREAM_DIFFS``: a new version is one row naming the changed upstream fields.
3. ``ONE_LINE``: no ``<details>``; one table row per experiment.
4. ``TRUNCATED``: as 3, and long tables end at a row boundary with "... and N more"; the
   security table is cut last (it gets the room the other tables do not need).

Text from YAML or the database is escaped (code spans or backslash escapes), so a name or label
cannot inject markup, mentions or HTML into the comment.
"""

from __future__ import annotations

import enum
import functools
import html
from collections.abc import Sequence
from typing import Final

from expsync import escape
from expsync.diagnostics import Diagnostic
from expsync.model import JsonValue
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
from expsync.plan.security import SecurityItem
from expsync.records import dataclass
from expsync.render.security import SECURITY_TITLE, security_text
from expsync.render import (
    HEADLINE,
    changed_experiments,
    format_share,
    format_value,
    headline_action,
    key_change_text,
    reason_text,
    share_rows,
    summarize,
    summary_line,
)

__all__ = ["MAX_CHARS", "Detail", "Row", "RowContext", "op_rows", "render_markdown"]

#: GitHub refuses comments over 65,536 characters; stay well below
MAX_CHARS: Final = 60_000

#: the hidden first line that CI uses to find and update its sticky comment
MARKER: Final = "<!-- expsync:plan -->"


class Detail(enum.IntEnum):
    """How much detail the comment carries (lower is more)."""

    FULL = 0
    NO_UPSTREAM_DIFFS = 1
    ONE_LINE = 2
    TRUNCATED = 3


_DEGRADED_NOTE: Final = {
    Detail.NO_UPSTREAM_DIFFS: "per-field upstream diffs are left out",
    Detail.ONE_LINE: "each experiment is summarised in one row",
    Detail.TRUNCATED: "each experiment is summarised in one row and long lists are cut short",
}


# -- escaping -----------------------------------------------------------------------------------
def _text(s: str) -> str:
    """Plain text inside markdown (also in a table cell): invisible characters escaped
    visibly, markup characters backslash-escaped."""
    return escape.markdown_text(s)


def _code(s: str) -> str:
    """A code span that survives any content, also in a table cell."""
    return escape.markdown_code(s)


def _html(s: str) -> str:
    return html.escape(escape.visible(s), quote=False)


# -- op -> table rows (one registration per op class) -------------------------------------------
@dataclass(frozen=True, slots=True)
class Row:
    """One row of an experiment's operations table; cells are markdown already."""

    symbol: str
    operation: str
    target: str = ""
    before: str = ""
    after: str = ""


@dataclass(frozen=True, slots=True)
class RowContext:
    experiment: ExperimentPlan
    secrets_compared: bool
    upstream_diffs: bool


@functools.singledispatch
def op_rows(op: object, ctx: RowContext) -> list[Row]:
    """The operations-table rows for one op. Every op class registers an implementation."""
    raise NotImplementedError(type(op).__name__)


def _v(value: JsonValue, path: str = "") -> str:
    return _code(format_value(value, path))


@op_rows.register
def _(op: CreateExperiment, ctx: RowContext) -> list[Row]:
    rows = [Row("+", "create experiment (draft)", _code("name"), after=_v(op.name))]
    if op.description is not None:
        rows.append(Row("+", "create experiment (draft)", _code("description"), after=_v(op.description)))
    if op.archived:
        rows.append(Row("+", "create experiment (draft)", _code("archived"), after=_v(True)))
    if op.metadata is not None:
        rows.append(Row("+", "create experiment (draft)", _code("metadata"), after=_v(op.metadata)))
    return rows


_NOT_SHOWN: Final = "_not shown_"


def _before(value: JsonValue, ctx: RowContext) -> str:
    """A value read from the database, or that it is not shown (``--no-secrets``, unmanaged)."""
    return _NOT_SHOWN if ctx.experiment.values_hidden else _v(value)


@op_rows.register
def _(op: UpdateFields, ctx: RowContext) -> list[Row]:
    return [Row("~", "update", _code(c.path), _before(c.before, ctx), _v(c.after)) for c in op.changes]


@op_rows.register
def _(op: Transition, ctx: RowContext) -> list[Row]:
    return [Row(">", op.trigger.value, _code("status"), _code(op.from_status), _code(op.to_status))]


@op_rows.register
def _(op: SetArchived, ctx: RowContext) -> list[Row]:
    return [Row("~", "archive" if op.after else "unarchive", _code("archived"), _v(op.before), _v(op.after))]


@op_rows.register
def _(op: AddVariant, ctx: RowContext) -> list[Row]:
    key = f" (key {_code(op.variant_key)})" if op.variant_key != op.label else ""
    return [Row("+", "add variant", _code(op.label) + key, after=f"weight {op.weight}")]


@op_rows.register
def _(op: RemoveVariant, ctx: RowContext) -> list[Row]:
    if op.weight is None:
        return [Row("-", "remove variant", _code(str(op.variant_id)), before=_NOT_SHOWN)]
    return [Row("-", "remove variant", _code(op.label), before=f"weight {op.weight}")]


@op_rows.register
def _(op: RelabelVariant, ctx: RowContext) -> list[Row]:
    before = _NOT_SHOWN if ctx.experiment.values_hidden else _code(op.before)
    return [Row("~", "relabel variant", _code(op.variant_key), before, _code(op.after))]


@op_rows.register
def _(op: ChangeWeight, ctx: RowContext) -> list[Row]:
    return [Row("~", "change weight", _code(op.label), _NOT_SHOWN if op.before is None else str(op.before),
                str(op.after))]


@op_rows.register
def _(op: InsertVersion, ctx: RowContext) -> list[Row]:
    first = op.upstream_before is None
    name = "first version" if op.base_version_id is None else "new version"
    label = _code(op.label)
    key = f"{_text(key_change_text(op.key_change, secrets_compared=ctx.secrets_compared))}, from {_code(str(op.api_key_ref))}"
    if not ctx.upstream_diffs:
        fields = sorted(op.upstream_after) if first else [c.path for c in op.upstream_diff]
        upstream = ("upstream: " + ", ".join(_code(f) for f in fields)) if fields else "upstream unchanged"
        return [Row("+", name, label, after=f"{upstream}; api key: {key}")]
    if first:
        before = _NOT_SHOWN if op.base_version_id is not None else ""
        rows = [Row("+", name, f"{label} {_code('upstream.' + k)}", before, after=_v(op.upstream_after[k], k))
                for k in sorted(op.upstream_after)]
    else:
        rows = [Row("+", name, f"{label} {_code('upstream.' + c.path)}", _v(c.before, c.path) if c.before is not None else "",
                    _v(c.after, c.path) if c.after is not None else "") for c in op.upstream_diff]
        if not rows:
            rows = [Row("+", name, f"{label} upstream", after="unchanged")]
    rows.append(Row("+", name, f"{label} api key", after=key))
    return rows


@op_rows.register
def _(op: DeleteExperiment, ctx: RowContext) -> list[Row]:
    return [Row("-", "delete experiment", before=_code(op.status))]


@op_rows.register
def _(op: ReleaseExperiment, ctx: RowContext) -> list[Row]:
    return [Row("#", "stop managing", after=_text(f"{reason_text(op.reason)} (database rows stay)"))]


@op_rows.register
def _(op: RecordManaged, ctx: RowContext) -> list[Row]:
    # shown only when it is news, as in the text format
    if op.adopted:
        return [Row("#", "adopt", after="expsync starts managing it")]
    if not any(touches_gateway(o) for o in ctx.experiment.ops):
        return [Row("#", "refresh ownership record", after="no gateway change")]
    return []


# -- sections -----------------------------------------------------------------------------------


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _head(plan: Plan, detail: Detail) -> list[str]:
    s = summarize(plan)
    line = summary_line(plan)
    if plan.refused:
        line = f":no_entry: **{line}**"
    elif not plan.has_changes:
        line = f":white_check_mark: **{line}**"
    else:
        line = f"**{line}**"
    stats = (f"{len(changed_experiments(plan))} experiment(s) changed · {s.operations} operation(s) · "
             f"{s.errors} error(s) · {s.warnings} warning(s) · applyable: {'yes' if plan.applyable else 'no'} · "
             f"ops digest {_code(plan.digests.ops[:19])}")
    if plan.gateway_profile:
        stats += f" · gateway profile {_code(plan.gateway_profile)}"
    out = [MARKER, "### expsync plan", "", line, "", stats]
    if not plan.refused and not plan.applyable:
        out += ["", "> This plan cannot be applied: api keys were not compared (`--no-secrets`)."]
    if detail in _DEGRADED_NOTE:
        out += ["", f"> Detail reduced to fit one comment: {_DEGRADED_NOTE[detail]}. "
                "Run `expsync plan` (or `--format json`) for the full plan."]
    return out


def _diagnostic_row(d: Diagnostic) -> list[str]:
    icon = ":x: error" if d.is_error else ":warning: warning"
    where = " ".join(x for x in (_code(str(d.source)) if d.source else "", _code(d.path)) if x)
    message = _text(d.message) + (f"<br>hint: {_text(d.hint)}" if d.hint else "")
    return [icon, _code(d.code), where, _code(d.experiment), message]


_DIAGNOSTIC_HEADER: Final = ("", "code", "where", "experiment", "message")


def _drift_row(d: DriftItem) -> list[str]:
    if d.reverted:
        why = "this plan restores git's value"
    elif d.protective:
        why = "protective: never undone silently"
    else:
        why = "kept: the YAML now matches"
    icon = ":warning:" if d.protective else ""
    return [icon, _code(d.experiment_key), _code(d.path), _v(d.last_applied, d.path), _v(d.actual, d.path), why]


def _security_row(item: SecurityItem) -> list[str]:
    icon = ":warning:" if item.is_warning else ":lock:"
    return [icon, _code(item.experiment_key), _code(item.label), security_text(item, value=_code, words=_text)]


_SECURITY_HEADER: Final = ("", "experiment", "variant", "where the api key goes")


_DRIFT_HEADER: Final = ("", "experiment", "field", "last applied", "now in the database", "")


def _experiment_details(e: ExperimentPlan, plan: Plan, upstream_diffs: bool) -> list[str]:
    symbol, phrase = HEADLINE[headline_action(e)]
    pid = e.public_model_id
    if e.public_model_id_before is not None and e.public_model_id_before != pid:
        pid = f"{e.public_model_id_before} -> {pid}"
    summary = (f"<code>{_html(symbol)}</code> <b><code>{_html(e.key)}</code></b> {phrase} · "
               f"<code>{_html(pid)}</code> · {_html(e.status_path)}")
    out = ["", f"<details><summary>{summary}</summary>", ""]
    if e.values_hidden:
        out += ["_Its current values are not shown: an experiment not managed by expsync (`--no-secrets`)._", ""]
    if e.archived_before is not None and e.archived_after is not None and e.archived_before != e.archived_after:
        out += [f"**Archived:** {format_value(e.archived_before)} -\\> {format_value(e.archived_after)}", ""]
    if e.shares_before or e.shares_after:
        out += _table(("variant", "traffic before", "traffic after"),
                      [(_code(label), format_share(b), format_share(a)) for label, b, a in share_rows(e)])
        out.append("")
    if e.routing_impact:
        out += [f"- {_text(reason_text(x))}" for x in e.routing_impact] + [""]
    ctx = RowContext(e, plan.secrets_compared, upstream_diffs)
    rows = [r for op in e.ops for r in op_rows(op, ctx)]
    if rows:
        out += _table(("", "operation", "target", "before", "after"),
                      [(_code(r.symbol), r.operation, r.target, r.before, r.after) for r in rows])
        out.append("")
    if e.cache_keys:
        out += ["Cache keys refreshed: " + ", ".join(_code(k) for k in e.cache_keys), ""]
    if e.notes:
        out += [f"_Note: {_text(reason_text(n))}_" for n in e.notes] + [""]
    out.append("</details>")
    return out


def _operations_summary(e: ExperimentPlan, plan: Plan) -> str:
    ctx = RowContext(e, plan.secrets_compared, upstream_diffs=False)
    counts: dict[str, int] = {}
    for op in e.ops:
        for r in op_rows(op, ctx)[:1]:
            counts[r.operation] = counts.get(r.operation, 0) + 1
    return ", ".join(name if n == 1 else f"{name} ×{n}" for name, n in counts.items())


def _experiment_row(e: ExperimentPlan, plan: Plan) -> list[str]:
    symbol, _ = HEADLINE[headline_action(e)]
    pid = _code(e.public_model_id)
    if e.public_model_id_before is not None and e.public_model_id_before != e.public_model_id:
        pid = f"{_code(e.public_model_id_before)} -> {pid}"
    return [_code(symbol), _code(e.key), pid, _text(e.status_path), _operations_summary(e, plan)]


_EXPERIMENT_HEADER: Final = ("", "experiment", "public model id", "status", "operations")


# -- assembly -----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class _Section:
    title: str
    header: Sequence[str]
    rows: Sequence[Sequence[str]]
    noun: str
    #: cut last: gets all the room the sections after it do not need
    first_class: bool = False


def _render(plan: Plan, detail: Detail, budget: int) -> str | None:
    """The comment at ``detail``; ``None`` as soon as it cannot fit in ``budget`` (only the
    last step, ``TRUNCATED``, always fits)."""
    out = _head(plan, detail)
    experiments = changed_experiments(plan)
    sections = [
        _Section(f":lock: {SECURITY_TITLE} ({len(plan.security)})", _SECURITY_HEADER,
                 [_security_row(x) for x in plan.security], "security-relevant changes", first_class=True),
        _Section(f"Errors and warnings ({len(plan.diagnostics)})", _DIAGNOSTIC_HEADER,
                 [_diagnostic_row(d) for d in plan.diagnostics], "diagnostics"),
        _Section(f"Changes made outside git ({len(plan.drift)})", _DRIFT_HEADER,
                 [_drift_row(d) for d in plan.drift], "drift items"),
    ]
    if detail >= Detail.ONE_LINE:
        sections.append(_Section(f"Experiments ({len(experiments)})", _EXPERIMENT_HEADER,
                                 [_experiment_row(e, plan) for e in experiments], "experiments"))
    sections = [s for s in sections if s.rows]
    if detail is Detail.TRUNCATED:
        return "\n".join(out + _fit(sections, budget - _size(out))) + "\n"
    for s in sections:
        out += ["", f"#### {s.title}", ""] + _table(s.header, s.rows)
    size = _size(out)
    if detail < Detail.ONE_LINE and experiments:
        out += ["", f"#### Experiments ({len(experiments)})"]
        for e in experiments:
            if size > budget:
                return None  # stop early: thousands of experiments would be rendered in vain
            block = _experiment_details(e, plan, upstream_diffs=detail is Detail.FULL)
            out += block
            size += _size(block)
    text = "\n".join(out) + "\n"
    return text if len(text) <= budget else None


def _size(lines: Sequence[str]) -> int:
    return sum(len(x) + 1 for x in lines)


_MORE: Final = "_... and {n} more {noun}: run `expsync plan` for all of them._"


def _fit(sections: Sequence[_Section], budget: int) -> list[str]:
    """Whole rows of each table, as many as fit, then "... and N more"; a section gets an
    equal share of what the sections before it left over. A table never ends mid-row, and a
    table that would have no row is left out (its title and the "more" line stay)."""
    out: list[str] = []
    remaining = budget
    for i, s in enumerate(sections):
        share = remaining // (len(sections) - i)
        if s.first_class:  # the others keep the room for their title and "more" line
            share = remaining - sum(_size(["", f"#### {o.title}", "", "", _MORE.format(n=len(o.rows), noun=o.noun)])
                                    for o in sections[i + 1:])
        title = ["", f"#### {s.title}", ""]
        table = _table(s.header, s.rows)
        more_room = len(_MORE.format(n=len(s.rows), noun=s.noun)) + 2
        used = _size(title) + _size(table[:2])
        kept = 0
        for row in table[2:]:
            last = kept + 1 == len(s.rows)
            if used + len(row) + 1 + (0 if last else more_room) > share:
                break
            used += len(row) + 1
            kept += 1
        lines = title + (table[: 2 + kept] if kept else [])
        if kept < len(s.rows):
            lines += ([""] if kept else []) + [_MORE.format(n=len(s.rows) - kept, noun=s.noun)]
        out += lines
        remaining -= _size(lines)
    return out


def render_markdown(plan: Plan, *, color: bool = False, max_chars: int = MAX_CHARS) -> str:
    """The plan as one PR comment of at most ``max_chars`` characters (``color`` is ignored)."""
    for detail in Detail:
        text = _render(plan, detail, max_chars)
        if text is not None:
            return text
    raise AssertionError("the TRUNCATED step always fits")  # pragma: no cover
