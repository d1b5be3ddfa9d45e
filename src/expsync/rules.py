"""The rules every stage consults: what the gateway accepts, stated once, as data.

* :data:`EDGES` - the status machine (spec §1.1): each edge with its guards.
* :class:`Guard` / :data:`GUARD_CODE` / :func:`activation_failures` - the activation guards
  (minimum variants, positive weights, weight sum within the bucket range, effective versions,
  one routing experiment per public id).
* :data:`EDITABLE` - the edit matrix (spec §1.2), :data:`CHECKED_AGAINST` - which status each
  change is checked against, :data:`REFUSAL_CODE` - the code of a refused change.
* :data:`PROTECTIVE` - status moves made outside git that are never silently undone, and
  :func:`is_protective` (archiving outside git is protective too).
* :func:`may_release` - when an experiment removed from git stops being managed.
* :func:`superseded_by_pending` - no new version under a future-dated one.
* :data:`ROUTING_STATUSES` - which statuses hold the public id.
* :func:`bucket` / :func:`exact_shares` - the gateway's variant picker and its exact shares.
* :data:`PRODUCED_BY` - every E2xx/E3xx/E5xx diagnostic code and the rule that produces it.

The offline checks (:mod:`expsync.desired.rules`), the planner, the table DDL
(:mod:`expsync.state.tables`), apply's constraint messages and the renderers derive from here.
This module imports only :mod:`expsync.model`.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from fractions import Fraction
from typing import Final

from expsync.model import Status
from expsync.records import dataclass

D, A, P, C = Status.DRAFT, Status.ACTIVE, Status.PAUSED, Status.COMPLETED

#: Statuses that hold the public id in the routing unique index (spec §2.1): the gateway
#: routes an active row and refuses (no fall-through) for a paused one.
ROUTING_STATUSES: Final = frozenset({A, P})
#: the same statuses as the database stores them, in the enum's order (SQL text and parameters)
ROUTING_STATUS_VALUES: Final = tuple(s.value for s in Status if s in ROUTING_STATUSES)


class Trigger(enum.StrEnum):
    ACTIVATE = "activate"
    PAUSE = "pause"
    COMPLETE = "complete"


class Guard(enum.StrEnum):
    """A condition an edge checks on the experiment as it will be when the edge runs."""

    MIN_VARIANTS = "min_variants"  # at least MIN_VARIANTS variants (one is allowed: all traffic to it)
    POSITIVE_WEIGHTS = "positive_weights"  # every weight >= 1
    WEIGHT_SUM = "weight_sum"  # sum of weights <= MAX_WEIGHT_SUM (the bucket is a uint32 mod the sum)
    VERSIONS_EFFECTIVE = "versions_effective"  # every variant has a version effective by now
    PUBLIC_ID_FREE = "public_id_free"  # no other active/paused experiment on the public id


#: the gateway's activation accepts one variant (spec gateway-profiles §4)
MIN_VARIANTS: Final = 1
#: the gateway's bucket is a uint32: [0, 2^32) is the space a variant's share is counted in
BUCKET_SPACE: Final = 2**32
#: buckets are uint32 values: with a larger sum the last variants starve (gateway-profiles §5)
MAX_WEIGHT_SUM: Final = BUCKET_SPACE

_ACTIVATION: Final = (Guard.MIN_VARIANTS, Guard.POSITIVE_WEIGHTS, Guard.WEIGHT_SUM, Guard.VERSIONS_EFFECTIVE,
                      Guard.PUBLIC_ID_FREE)


@dataclass(frozen=True, slots=True)
class Edge:
    src: Status
    trigger: Trigger
    dst: Status
    guards: tuple[Guard, ...] = ()


#: The status machine: no other transition exists; there is no way back to draft.
EDGES: Final[tuple[Edge, ...]] = (
    Edge(D, Trigger.ACTIVATE, A, _ACTIVATION),
    Edge(A, Trigger.PAUSE, P),
    Edge(P, Trigger.ACTIVATE, A, _ACTIVATION),
    Edge(A, Trigger.COMPLETE, C),
    Edge(P, Trigger.COMPLETE, C),
)

#: (from, trigger) -> to, derived from :data:`EDGES`
TRANSITIONS: Final[Mapping[tuple[Status, Trigger], Status]] = {(e.src, e.trigger): e.dst for e in EDGES}

#: a new row is inserted in this status; a wanted other status is a transition afterwards
CREATED_AS: Final = D
#: statuses a new experiment may be created in (created as draft, then activated)
CREATABLE: Final = frozenset({D, A})


class Change(enum.StrEnum):
    """Kinds of edit, one per row of spec §1.2."""

    NAME = "name, description"
    METADATA = "metadata"  # gateway profiles with model_experiment.metadata
    PUBLIC_MODEL_ID = "public_model_id"
    VARIANT_SET = "add/remove variant, change weight"
    VARIANT_LABEL = "variant label"
    NEW_VERSION = "new version (upstream or api key change)"
    ARCHIVE = "archive"
    UNARCHIVE = "unarchive"
    DELETE = "delete"


#: change -> statuses in which it is allowed (spec §1.2). Variants are frozen after
#: activation (VARIANT_SET: draft only); an active experiment cannot be archived (ARCHIVE).
EDITABLE: Final[Mapping[Change, frozenset[Status]]] = {
    Change.NAME: frozenset({D, A, P, C}),
    Change.METADATA: frozenset({D, A, P}),  # the admin API refuses it on completed experiments
    Change.PUBLIC_MODEL_ID: frozenset({D}),
    Change.VARIANT_SET: frozenset({D}),
    Change.VARIANT_LABEL: frozenset({D, A, P}),
    Change.NEW_VERSION: frozenset({D, A, P}),
    Change.ARCHIVE: frozenset({D, P, C}),
    Change.UNARCHIVE: frozenset({D, P, C}),
    Change.DELETE: frozenset({D}),
}


#: experiment field -> the edit-matrix row that governs changing it
FIELD_CHANGE: Final[Mapping[str, Change]] = {
    "name": Change.NAME,
    "description": Change.NAME,
    "public_model_id": Change.PUBLIC_MODEL_ID,
    "metadata": Change.METADATA,
}


class CheckedAgainst(enum.StrEnum):
    """Which status an edit is checked against, given where it runs in execution order."""

    CURRENT = "current"  # runs before the status transition (edits, unarchive, delete)
    FINAL = "final"  # runs after the status transition (archive runs last)


CHECKED_AGAINST: Final[Mapping[Change, CheckedAgainst]] = {
    Change.NAME: CheckedAgainst.CURRENT,
    Change.METADATA: CheckedAgainst.CURRENT,
    Change.PUBLIC_MODEL_ID: CheckedAgainst.CURRENT,
    Change.VARIANT_SET: CheckedAgainst.CURRENT,
    Change.VARIANT_LABEL: CheckedAgainst.CURRENT,
    Change.NEW_VERSION: CheckedAgainst.CURRENT,
    Change.ARCHIVE: CheckedAgainst.FINAL,
    Change.UNARCHIVE: CheckedAgainst.CURRENT,
    Change.DELETE: CheckedAgainst.CURRENT,
}

#: the diagnostic code for a refused change
REFUSAL_CODE: Final[Mapping[Change, str]] = {
    Change.NAME: "E302",
    Change.METADATA: "E221",
    Change.PUBLIC_MODEL_ID: "E302",
    Change.VARIANT_SET: "E303",
    Change.VARIANT_LABEL: "E304",
    Change.NEW_VERSION: "E305",
    Change.ARCHIVE: "E306",
    Change.UNARCHIVE: "E306",
    Change.DELETE: "E307",
}

#: changes whose refusal is best answered by a new experiment (a new key)
NEEDS_NEW_EXPERIMENT: Final = frozenset({Change.VARIANT_SET, Change.PUBLIC_MODEL_ID})

#: status moves that make routing safer (the pause and complete edges); done outside git they
#: are never silently undone
PROTECTIVE: Final[frozenset[tuple[Status, Status]]] = frozenset(
    (e.src, e.dst) for e in EDGES if e.trigger in (Trigger.PAUSE, Trigger.COMPLETE)
)


def is_protective(path: str, before: object, after: object) -> bool:
    """Whether a change made outside git (``path``: ``status`` or ``archived``) is protective:
    a pause/complete edge, or archiving (archived outside git is protective)."""
    if path == "status":
        return any(before == src.value and after == dst.value for src, dst in PROTECTIVE)
    return path == "archived" and after is True


def may_release(status: Status, archived: bool) -> bool:
    """An experiment removed from git that cannot be deleted stops being managed (its rows stay)
    only when it can never route again: completed+archived may be released."""
    return status is C and archived


def removes_every_managed(managed: int, kept: int) -> bool:
    """Whether a plan removes every experiment expsync manages (``managed`` of them, ``kept``
    still in git): refused unless explicitly allowed, as Argo CD refuses to prune to zero."""
    return managed > 0 and kept <= 0


def archivable_sql_exclusions() -> tuple[Status, ...]:
    """Statuses in which a row may never be archived (the table CHECK derives from this)."""
    return tuple(s for s in Status if s not in EDITABLE[Change.ARCHIVE])


def next_status(current: Status, trigger: Trigger) -> Status | None:
    return TRANSITIONS.get((current, trigger))


def edge_for(current: Status, target: Status) -> Edge | None:
    """The single edge that moves ``current`` to ``target`` (a plan makes one transition)."""
    return next((e for e in EDGES if e.src is current and e.dst is target), None)


def trigger_for(current: Status, target: Status) -> Trigger | None:
    edge = edge_for(current, target)
    return edge.trigger if edge else None


def legal_triggers(current: Status) -> list[tuple[Trigger, Status]]:
    return [(e.trigger, e.dst) for e in EDGES if e.src is current]


def describe_alternatives(current: Status) -> str:
    legal = legal_triggers(current)
    if not legal:
        return f"{current} is terminal: create a new experiment (new key) instead"
    return "legal from " + f"{current}: " + ", ".join(f"{t} -> {dst}" for t, dst in legal)


def may(change: Change, status: Status) -> bool:
    return status in EDITABLE[change]


def allowed_in(change: Change) -> str:
    return ", ".join(s.value for s in Status if s in EDITABLE[change]) or "no status"


def superseded_by_pending(pending_at: datetime | None) -> bool:
    """Whether a new version of a variant whose latest version is future-dated (effective at
    ``pending_at``; None: no pending version) would be superseded. Versions are inserted
    effective now (insert-only, spec §2.1), so the pending one stays the latest: it takes over
    at its time and undoes the new one, and every later plan would insert it again. Refused
    (E313): the YAML may say what the pending version holds (then nothing is to do), or the
    change waits until that version is effective."""
    return pending_at is not None


def keys_matter(status: Status) -> bool:
    """Whether api keys are resolved and compared for an experiment wanted in ``status``: not
    when it can never take a new version (a rotated or deleted partner key of a completed
    experiment must not block every later plan)."""
    return may(Change.NEW_VERSION, status)


# -- guards ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GuardInput:
    """What the guards look at: the experiment as it will be when the edge runs."""

    variant_weights: tuple[int, ...]
    #: per variant label: effective_at of its *latest* version at activation (None: none yet).
    #: The latest by effective_at DESC, id DESC with no time filter, as the admin API's guard
    #: reads it (gateway-profiles §4): a future-dated version fails the guard, even with an
    #: older version already effective
    current_effective: Mapping[str, datetime | None]
    #: keys/ids of other experiments holding the public id at activation time
    other_holders: tuple[str, ...]
    public_model_id: str
    now: datetime


@dataclass(frozen=True, slots=True)
class GuardFailure:
    code: str
    message: str


GUARD_CODE: Final[Mapping[Guard, str]] = {
    Guard.MIN_VARIANTS: "E308",
    Guard.POSITIVE_WEIGHTS: "E308",
    Guard.WEIGHT_SUM: "E312",
    Guard.VERSIONS_EFFECTIVE: "E309",
    Guard.PUBLIC_ID_FREE: "E310",
}


def weight_sum_problem(weights: Sequence[int]) -> str | None:
    total = sum(weights)
    if total > MAX_WEIGHT_SUM:
        return f"weights sum to {total}, above 2^32 ({MAX_WEIGHT_SUM}): the gateway's bucket is a uint32, later variants would starve"
    return None


def variant_count_problem(count: int) -> str | None:
    if count < MIN_VARIANTS:
        return f"needs at least {MIN_VARIANTS} variant(s) to route, has {count}"
    return None


def _min_variants(g: GuardInput) -> str | None:
    return variant_count_problem(len(g.variant_weights))


def _positive_weights(g: GuardInput) -> str | None:
    bad = [w for w in g.variant_weights if w < 1]
    return f"activation needs positive weights, has {', '.join(map(str, bad))}" if bad else None


def _versions_effective(g: GuardInput) -> str | None:
    missing = sorted(label for label, at in g.current_effective.items() if at is None or at > g.now)
    return "variant(s) whose latest version is not effective yet: " + ", ".join(missing) if missing else None


def _public_id_free(g: GuardInput) -> str | None:
    if g.other_holders:
        return f"{g.public_model_id!r} is already routed by experiment " + ", ".join(g.other_holders)
    return None


_GUARD_CHECK: Final[Mapping[Guard, Callable[[GuardInput], str | None]]] = {
    Guard.MIN_VARIANTS: _min_variants,
    Guard.POSITIVE_WEIGHTS: _positive_weights,
    Guard.WEIGHT_SUM: lambda g: weight_sum_problem(g.variant_weights),
    Guard.VERSIONS_EFFECTIVE: _versions_effective,
    Guard.PUBLIC_ID_FREE: _public_id_free,
}


def guard_failures(edge: Edge, g: GuardInput) -> list[GuardFailure]:
    """The failures of ``edge``'s guards, in the edge's order."""
    return [GuardFailure(GUARD_CODE[guard], msg) for guard in edge.guards if (msg := _GUARD_CHECK[guard](g)) is not None]


def activation_failures(g: GuardInput) -> list[GuardFailure]:
    """The failures of the activate edge's guards (the same for draft->active and paused->active)."""
    edge = next(e for e in EDGES if e.trigger is Trigger.ACTIVATE)
    return guard_failures(edge, g)


# -- the gateway's variant picker (gateway-profiles §5) -----------------------------------------


def bucket(experiment_id: str, subject: str, value: str, weights: Sequence[int]) -> int:
    """The index of the variant the gateway picks: the big-endian uint32 of
    sha256(``model_exp_<experimentId>_<subject>_<value>``)[0:4] modulo the weight sum, then
    the first variant (in id order) whose cumulative weight exceeds it."""
    digest = hashlib.sha256(f"model_exp_{experiment_id}_{subject}_{value}".encode()).digest()
    x = int.from_bytes(digest[:4], "big") % sum(weights)
    cumulative = 0
    for i, w in enumerate(weights):
        cumulative += w
        if x < cumulative:
            return i
    raise AssertionError("unreachable: x < sum(weights)")


def exact_shares(weights: Sequence[int], *, space: int = BUCKET_SPACE) -> tuple[Fraction, ...]:
    """share_i = #{x in [0, 2^32): C(i-1) <= x mod S < C(i)} / 2^32 (weights in id order;
    ``space`` is 2^32, a parameter only so a test can count a small space by brute force)."""
    total = sum(weights)
    if total <= 0:
        return tuple(Fraction(0) for _ in weights)
    full, rest = divmod(space, total)  # full cycles of [0, S), then residues [0, rest)
    out = []
    low = 0
    for w in weights:
        high = low + w
        count = full * w + max(0, min(high, rest) - low)
        out.append(Fraction(count, space))
        low = high
    return tuple(out)


# -- which rule produces each diagnostic code --------------------------------------------------


#: every E2xx/E3xx/E5xx code -> the rules that produce it: names in this module, or the
#: offline check / planner function (``desired.rules.unique_keys``) for rules that are not
#: about statuses; tests/test_rules.py checks this covers diagnostics.CODES exactly and that
#: every name exists
PRODUCED_BY: Final[Mapping[str, tuple[str, ...]]] = {
    "E201": ("desired.rules.unique_keys",),
    "E202": ("desired.rules.unique_variants",),
    "E203": ("desired.rules.unique_variants",),
    "E204": ("desired.schema.public_model_id_routable",),
    "E205": ("EDITABLE[Change.ARCHIVE]",),
    "E206": ("Guard.MIN_VARIANTS", "ROUTING_STATUSES"),
    "E207": ("ROUTING_STATUSES", "Guard.PUBLIC_ID_FREE"),
    "E208": ("desired.rules.unique_id_pins",),
    "E209": ("Guard.POSITIVE_WEIGHTS", "desired.loader.load_desired"),
    "E220": ("desired.schema.reserved_prefixes",),
    "E221": ("EDITABLE[Change.METADATA]",),
    "E301": ("EDGES",),
    "E302": ("EDITABLE[Change.NAME]", "EDITABLE[Change.PUBLIC_MODEL_ID]"),
    "E303": ("EDITABLE[Change.VARIANT_SET]",),
    "E304": ("EDITABLE[Change.VARIANT_LABEL]",),
    "E305": ("EDITABLE[Change.NEW_VERSION]",),
    "E306": ("EDITABLE[Change.ARCHIVE]", "EDITABLE[Change.UNARCHIVE]"),
    "E307": ("EDITABLE[Change.DELETE]",),
    "E308": ("Guard.MIN_VARIANTS", "Guard.POSITIVE_WEIGHTS"),
    "E309": ("Guard.VERSIONS_EFFECTIVE",),
    "E310": ("Guard.PUBLIC_ID_FREE",),
    "E311": ("CREATABLE", "CREATED_AS"),
    "E312": ("Guard.WEIGHT_SUM",),
    "E313": ("superseded_by_pending",),
    "E501": ("PROTECTIVE", "is_protective"),
    "E502": ("EDITABLE[Change.DELETE]", "may_release"),
    "E503": ("plan.diff.diff",),
    "E504": ("removes_every_managed",),
}
