"""Loading a saved plan file (``plan --out``): parse, validate, check it against itself.

:func:`load_saved_plan` is the one loader of saved plans: ``apply --plan`` takes the digests
from it, and a command that only shows a saved plan (no database, no secrets) can use the
validated :class:`~expsync.render.json.PlanOut` it returns.

Checks, in order:

1. JSON written by ``expsync plan --out`` in this ``format_version`` (the output models refuse
   unknown fields) - otherwise :class:`SavedPlanInvalid` (exit 3);
2. ``digests.ops`` equals the digest recomputed from the file's own ``operations``
   (:func:`expsync.plan.document.encoded_documents_digest`, each document encoded once), and
   each experiment's ``operations`` are exactly its share of the flat list - otherwise :class:`SavedPlanTampered` (exit 5): the file
   shows operations other than the ones its digest (and so apply's comparison) stands for.

Whether the saved plan still matches the YAML and the database is apply's check (it re-plans
and compares all digests); :func:`applyable_digests` adds the one thing the file alone decides:
a ``--no-secrets`` plan is never applyable.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from expsync.errors import InvalidInput, StalePlan
from expsync.plan.digest import encode
from expsync.plan.document import encoded_documents_digest
from expsync.plan.types import Digests
from expsync.records import dataclass
from expsync.render.json import PlanOut

__all__ = ["SavedPlan", "SavedPlanInvalid", "SavedPlanTampered", "applyable_digests", "load_saved_plan",
           "read_saved_plan"]

_NOT_A_PLAN = "not a plan file written by `expsync plan --out`"


def _at(name: str) -> str:
    return f"{name}: " if name else ""


class SavedPlanInvalid(InvalidInput):
    """Not a plan file of this format (exit 3)."""


class SavedPlanTampered(StalePlan):
    """The file's operations do not match its own digest (exit 5)."""


@dataclass(frozen=True, slots=True)
class SavedPlan:
    name: str
    model: PlanOut
    digests: Digests


def read_saved_plan(path: str | Path) -> SavedPlan:
    """:func:`load_saved_plan` of a file; an unreadable file is :class:`SavedPlanInvalid`."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise SavedPlanInvalid(f"{path}: cannot read the plan file ({getattr(e, 'strerror', None) or 'not UTF-8'})") \
            from None
    return load_saved_plan(text, name=str(path))


def load_saved_plan(text: str, *, name: str = "") -> SavedPlan:
    """Parse and check a saved plan; ``name`` (the path) prefixes every message."""
    try:
        raw = json.loads(text)
        model = PlanOut.model_validate(raw)
    except ValidationError as e:
        first = e.errors()[0] if e.errors() else {"loc": (), "msg": "invalid"}
        where = ".".join(str(x) for x in first.get("loc", ())) or "(top level)"
        raise SavedPlanInvalid(f"{_at(name)}{_NOT_A_PLAN} ({where}: {first.get('msg')})") from None
    except (ValueError, RecursionError):
        raise SavedPlanInvalid(f"{_at(name)}{_NOT_A_PLAN} (not JSON)") from None
    _check_operations(raw, model, name)
    d = model.digests
    return SavedPlan(name, model, Digests(desired=d.desired, actual=d.actual, ops=d.ops, secrets=d.secrets))


def _check_operations(raw: dict[str, Any], model: PlanOut, name: str) -> None:
    operations: list[dict[str, Any]] = raw["operations"]
    try:
        encoded = [encode(o) for o in operations]  # once each: for the digest and the comparison
        recomputed = encoded_documents_digest(encoded)
        flat = Counter(encoded)
        shown = Counter(encode(o) for e in raw["experiments"] for o in e["operations"])
    except (TypeError, ValueError, OverflowError, RecursionError):
        raise SavedPlanInvalid(f"{_at(name)}{_NOT_A_PLAN} (operations cannot be digested)") from None
    if recomputed != model.digests.ops:
        raise SavedPlanTampered(
            f"{_at(name)}the operations in the file do not match its ops digest (the file was edited after "
            "`expsync plan --out` wrote it); nothing was applied - re-run plan and review the new file [E507]")
    if shown != flat:
        raise SavedPlanTampered(
            f"{_at(name)}the operations listed per experiment differ from the plan's operations (the file was "
            "edited after `expsync plan --out` wrote it); nothing was applied - re-run plan [E507]")


def applyable_digests(saved: SavedPlan) -> Digests:
    """The digests ``apply --plan`` must match; a ``--no-secrets`` plan is refused (exit 3)."""
    if not saved.model.secrets_compared:
        # its key changes are `unknown`; for creates the ops digest would still match, so the
        # digests alone cannot tell (README: a --no-secrets plan is never applyable)
        raise SavedPlanInvalid(f"{_at(saved.name)}made with `plan --no-secrets` (api keys were not compared), so it "
                               "cannot be applied; run `expsync plan --out FILE` with the secrets available")
    return saved.digests
