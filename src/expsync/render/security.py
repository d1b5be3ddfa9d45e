"""Security-relevant changes in words (text, markdown) and as GitHub ``::warning`` annotations.

The planner lists them as :class:`~expsync.plan.security.SecurityItem` (codes with values);
this module is the one place they become English, so every format says the same thing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Final

from expsync.escape import workflow_data, workflow_property
from expsync.plan.security import Security, SecurityItem
from expsync.plan.types import Plan
from expsync.render import format_value

__all__ = ["SECURITY_TITLE", "security_annotations", "security_parts", "security_subject", "security_text"]

SECURITY_TITLE: Final = "Security-relevant changes"

#: beyond this many, annotations stop (every format still lists every item)
ANNOTATION_LIMIT: Final = 50


#: the reference before, for a variant expsync never applied one to (an adopted experiment)
_UNKNOWN_REF: Final = "(a stored key expsync did not apply)"


def _origin(origin: str | None) -> str:
    return origin if origin is not None else "(no valid base_url)"


def security_subject(item: SecurityItem) -> str:
    """``experiment "foo", variant "rc1"``."""
    return f"experiment {format_value(item.experiment_key)}, variant {format_value(item.label)}"


def security_parts(item: SecurityItem) -> list[tuple[str, bool]]:
    """What happens to the key as ``(fragment, is_value)`` pieces: values are references and
    origins (from YAML or the database), the rest is fixed wording. Never a key."""
    ref, origin, origin_before = item.api_key_ref, _origin(item.origin), _origin(item.origin_before)
    # no reference before (an adopted variant): the key stored in the database is replaced
    ref_before = ((item.api_key_ref_before, True) if item.api_key_ref_before is not None
                  else (_UNKNOWN_REF, False))
    match item.code:
        case Security.KEY_REF_CHANGED:
            return [("api key reference ", False), ref_before, (" -> ", False), (ref, True),
                    (" (same upstream origin ", False), (origin, True), (")", False)]
        case Security.ORIGIN_CHANGED:
            return [("upstream origin ", False), (origin_before, True), (" -> ", False), (origin, True),
                    (": the key from ", False), (ref, True), (" will be sent to ", False), (origin, True)]
        case Security.KEY_SENT_TO_NEW_ORIGIN:
            return [("the key from ", False), (ref, True), (" will be sent to ", False), (origin, True),
                    (" (was the key from ", False), ref_before, (" sent to ", False), (origin_before, True),
                    (")", False)]
        case Security.NEW_ORIGIN:
            if item.values_hidden:
                return [("the key from ", False), (ref, True), (" will be sent to ", False), (origin, True),
                        (" (an experiment not managed by expsync: its current origins are not shown)", False)]
            return [("new variant: the key from ", False), (ref, True), (" will be sent to ", False), (origin, True),
                    (", an origin this experiment did not use before", False)]
    raise NotImplementedError(item.code)  # pragma: no cover - every code is worded above


def security_text(item: SecurityItem, *, value: Callable[[str], str] = str, words: Callable[[str], str] = str) -> str:
    """:func:`security_parts` joined: ``value`` formats references and origins (markdown: code
    spans), ``words`` the fixed wording (markdown: escaped text)."""
    return "".join(value(x) if is_value else words(x) for x, is_value in security_parts(item))


def security_annotations(plan: Plan, limit: int = ANNOTATION_LIMIT) -> str:
    """One ``::warning`` workflow command per security-relevant change (at the variant's
    ``api_key`` line when known); ``""`` when there is none."""
    items: Sequence[SecurityItem] = plan.security
    out = []
    for item in items[:limit]:
        props = ["title=security-relevant change"]
        if item.source is not None:
            props.insert(0, f"file={workflow_property(item.source.file)}")
            if item.source.line:
                props.insert(1, f"line={item.source.line}")
        msg = f"{security_subject(item)}: {security_text(item)}"
        out.append(f"::warning {','.join(props)}::{workflow_data(msg)}")
    if len(items) > limit:
        out.append(f"::warning title=security-relevant change::... and {len(items) - limit} more (see the plan)")
    return "\n".join(out)
