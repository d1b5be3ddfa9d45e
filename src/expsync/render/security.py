"""Security-relevant changes in words (text, markdown) and as GitHub ``::warning`` annotations.

The planner lists them as :class:`~expsync.plan.security.SecurityItem` (codes with values);
this module is the one place they become English, so every format says the same thing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from expsync.plan.security import Security, SecurityItem
from expsync.plan.types import Plan
from expsync.render import format_value

__all__ = ["SECURITY_TITLE", "security_annotations", "security_subject", "security_text"]

SECURITY_TITLE: Final = "Security-relevant changes"

#: beyond this many, annotations stop (every format still lists every item)
ANNOTATION_LIMIT: Final = 50


def _origin(origin: str | None) -> str:
    return origin if origin is not None else "(no valid base_url)"


def security_subject(item: SecurityItem) -> str:
    """``experiment "foo", variant "rc1"``."""
    return f"experiment {format_value(item.experiment_key)}, variant {format_value(item.label)}"


def security_text(item: SecurityItem) -> str:
    """What happens to the key, in words (references and origins only, never a value)."""
    match item.code:
        case Security.KEY_REF_CHANGED:
            return f"api key reference {item.api_key_ref_before} -> {item.api_key_ref} (same upstream origin " \
                   f"{_origin(item.origin)})"
        case Security.ORIGIN_CHANGED:
            return f"upstream origin {_origin(item.origin_before)} -> {_origin(item.origin)}: the key from " \
                   f"{item.api_key_ref} will be sent to {_origin(item.origin)}"
        case Security.KEY_SENT_TO_NEW_ORIGIN:
            return f"the key from {item.api_key_ref} will be sent to {_origin(item.origin)} (was the key from " \
                   f"{item.api_key_ref_before} sent to {_origin(item.origin_before)})"
        case Security.NEW_ORIGIN:
            if item.values_hidden:
                return f"the key from {item.api_key_ref} will be sent to {_origin(item.origin)} (an experiment not " \
                       "managed by expsync: its current origins are not shown)"
            return f"new variant: the key from {item.api_key_ref} will be sent to {_origin(item.origin)}, an origin " \
                   "this experiment did not use before"
    raise NotImplementedError(item.code)  # pragma: no cover - every code is worded above


def _escape_data(s: str) -> str:
    return s.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_prop(s: str) -> str:
    return _escape_data(s).replace(":", "%3A").replace(",", "%2C")


def security_annotations(plan: Plan, limit: int = ANNOTATION_LIMIT) -> str:
    """One ``::warning`` workflow command per security-relevant change (at the variant's
    ``api_key`` line when known); ``""`` when there is none."""
    items: Sequence[SecurityItem] = plan.security
    out = []
    for item in items[:limit]:
        props = ["title=security-relevant change"]
        if item.source is not None:
            props.insert(0, f"file={_escape_prop(item.source.file)}")
            if item.source.line:
                props.insert(1, f"line={item.source.line}")
        msg = f"{security_subject(item)}: {security_text(item)}"
        out.append(f"::warning {','.join(props)}::{_escape_data(msg)}")
    if len(items) > limit:
        out.append(f"::warning title=security-relevant change::... and {len(items) - limit} more (see the plan)")
    return "\n".join(out)
