"""The experiment state machine (spec §1.1) and the edit-permission table (spec §1.2).

This module is the only place that knows which status allows what. Everything else asks it:
:func:`next_status`, :func:`legal_triggers`, :func:`may` and :func:`activation_guards`.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from expsync.model import Status

D, A, P, C = Status.DRAFT, Status.ACTIVE, Status.PAUSED, Status.COMPLETED


class Trigger(enum.StrEnum):
    ACTIVATE = "activate"
    PAUSE = "pause"
    COMPLETE = "complete"


#: (from, trigger) -> to. No other transition exists; there is no way back to draft.
TRANSITIONS: Final[Mapping[tuple[Status, Trigger], Status]] = {
    (D, Trigger.ACTIVATE): A,
    (A, Trigger.PAUSE): P,
    (P, Trigger.ACTIVATE): A,
    (A, Trigger.COMPLETE): C,
    (P, Trigger.COMPLETE): C,
}


class Change(enum.StrEnum):
    """Kinds of edit, one per row of spec §1.2."""

    NAME = "name, description"
    PUBLIC_MODEL_ID = "public_model_id"
    VARIANT_SET = "add/remove variant, change weight"
    VARIANT_LABEL = "variant label"
    NEW_VERSION = "new version (upstream or api key change)"
    ARCHIVE = "archive"
    UNARCHIVE = "unarchive"
    DELETE = "delete"


#: change -> statuses in which it is allowed (spec §1.2, verbatim).
EDITABLE: Final[Mapping[Change, frozenset[Status]]] = {
    Change.NAME: frozenset({D, A, P, C}),
    Change.PUBLIC_MODEL_ID: frozenset({D}),
    Change.VARIANT_SET: frozenset({D}),
    Change.VARIANT_LABEL: frozenset({D, A, P}),
    Change.NEW_VERSION: frozenset({D, A, P}),
    Change.ARCHIVE: frozenset({D, P, C}),
    Change.UNARCHIVE: frozenset({D, P, C}),
    Change.DELETE: frozenset({D}),
}

#: the diagnostic code for a refused change
REFUSAL_CODE: Final[Mapping[Change, str]] = {
    Change.NAME: "E302",
    Change.PUBLIC_MODEL_ID: "E302",
    Change.VARIANT_SET: "E303",
    Change.VARIANT_LABEL: "E304",
    Change.NEW_VERSION: "E305",
    Change.ARCHIVE: "E306",
    Change.UNARCHIVE: "E306",
    Change.DELETE: "E307",
}

#: statuses a new experiment may be created in (created as draft, then activated)
CREATABLE: Final = frozenset({D, A})


def next_status(current: Status, trigger: Trigger) -> Status | None:
    return TRANSITIONS.get((current, trigger))


def trigger_for(current: Status, target: Status) -> Trigger | None:
    """The single trigger that moves ``current`` to ``target`` (a plan makes one transition)."""
    for (src, trig), dst in TRANSITIONS.items():
        if src is current and dst is target:
            return trig
    return None


def legal_triggers(current: Status) -> list[tuple[Trigger, Status]]:
    return [(t, dst) for (src, t), dst in TRANSITIONS.items() if src is current]


def describe_alternatives(current: Status) -> str:
    legal = legal_triggers(current)
    if not legal:
        return f"{current} is terminal: create a new experiment (new key) instead"
    return "legal from " + f"{current}: " + ", ".join(f"{t} -> {dst}" for t, dst in legal)


def may(change: Change, status: Status) -> bool:
    return status in EDITABLE[change]


def allowed_in(change: Change) -> str:
    return ", ".join(s.value for s in Status if s in EDITABLE[change]) or "no status"


@dataclass(frozen=True, slots=True)
class GuardInput:
    """What the activation guards look at: the experiment as it will be when activated."""

    variant_weights: tuple[int, ...]
    #: per variant label: effective_at of the version current at activation (None: none yet)
    current_effective: Mapping[str, datetime | None]
    #: keys/ids of other experiments holding the public id at activation time
    other_holders: tuple[str, ...]
    public_model_id: str
    now: datetime


@dataclass(frozen=True, slots=True)
class GuardFailure:
    code: str
    message: str


def _enough_variants(g: GuardInput) -> GuardFailure | None:
    if len(g.variant_weights) < 2 or any(w < 1 for w in g.variant_weights):
        return GuardFailure("E308", f"activation needs at least 2 variants with positive weights, has {len(g.variant_weights)}")
    return None


def _versions_effective(g: GuardInput) -> GuardFailure | None:
    missing = sorted(label for label, at in g.current_effective.items() if at is None or at > g.now)
    if missing:
        return GuardFailure("E309", "variant(s) without an effective version: " + ", ".join(missing))
    return None


def _public_id_free(g: GuardInput) -> GuardFailure | None:
    if g.other_holders:
        return GuardFailure(
            "E310", f"{g.public_model_id!r} is already routed by experiment " + ", ".join(g.other_holders)
        )
    return None


#: guards attached to the activate edge (draft->active and paused->active)
ACTIVATION_GUARDS: Final = (_enough_variants, _versions_effective, _public_id_free)


def activation_guards(g: GuardInput) -> list[GuardFailure]:
    return [f for guard in ACTIVATION_GUARDS if (f := guard(g)) is not None]
