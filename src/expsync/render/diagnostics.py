"""Diagnostics -> text, JSON and GitHub Actions workflow annotations. Decides nothing."""

from __future__ import annotations

from collections.abc import Sequence

from expsync import escape
from expsync.diagnostics import Diagnostic, Severity


#: beyond this many, text output and annotations stop (JSON always has every diagnostic):
#: 90,000 broken documents must not become 20 MB of stderr or 180,000 workflow commands
TEXT_LIMIT = 200
ANNOTATION_LIMIT = 50


def format_text(d: Diagnostic) -> str:
    """One diagnostic as text lines; every part that can hold user text (file name, path,
    message, hint) is escaped for a terminal, so it cannot add a line or a control sequence."""
    prefix = "error" if d.severity is Severity.ERROR else "warning"
    return f"{prefix}: {d.format()}"


def render_text(diags: Sequence[Diagnostic], limit: int = TEXT_LIMIT) -> str:
    lines = [format_text(d) for d in diags[:limit]]
    if len(diags) > limit:
        lines.append(f"... and {len(diags) - limit} more (all of them: --format json)")
    return "\n".join(lines)


def summary_line(diags: Sequence[Diagnostic]) -> str:
    errors = sum(1 for d in diags if d.is_error)
    warnings = len(diags) - errors
    return f"{errors} error(s), {warnings} warning(s)"


def render_validate_json(diags: Sequence[Diagnostic], *, files: int, experiments: int) -> str:
    import json  # only for --format json (validate's text output is the common case)

    payload = {
        "valid": not any(d.is_error for d in diags),
        "files": files,
        "experiments": experiments,
        "diagnostics": [d.as_dict() for d in diags],
    }
    return escape.json_document(json.dumps(payload, indent=2, ensure_ascii=False))


def github_annotations(diags: Sequence[Diagnostic], limit: int = ANNOTATION_LIMIT) -> str:
    """``::error file=F,line=L,col=C,title=CODE::message`` lines (GitHub workflow commands)."""
    out = []
    for d in diags[:limit]:
        level = "error" if d.is_error else "warning"
        props = [f"title={escape.workflow_property(d.code)}"]
        if d.source:
            props.insert(0, f"file={escape.workflow_property(d.source.file)}")
            if d.source.line:
                props.insert(1, f"line={d.source.line}")
                props.insert(2, f"col={d.source.col}")
        msg = f"{d.path}: {d.message}" if d.path else d.message
        if d.hint:
            msg += f" (hint: {d.hint})"
        out.append(f"::{level} {','.join(props)}::{escape.workflow_data(msg)}")
    return "\n".join(out)
