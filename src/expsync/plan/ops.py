"""Operations: the closed set of changes a plan can make, one frozen class per kind.

Every op names its experiment (``experiment_key`` for people, ``experiment_id`` for the
database) and carries its *before* and *after* so renderers need nothing else. An op that
would change nothing is never emitted. Apply executes ops in ``Plan.ops`` order and relies
only on the fields documented as such; ``Action`` and explanations are for display.
"""

from __future__ import annotations

import enum
import uuid
from dataclasses import field
from collections.abc import Callable, Mapping
from typing import Final, TypeAlias, get_args

from expsync.model import JsonObject, JsonValue, KeyChange, SecretRef, Status
from expsync.records import dataclass
from expsync.rules import Trigger


class Action(enum.StrEnum):
    """What kind of change an op is (summaries and counts). Never drives apply."""

    CREATE = "create"
    UPDATE = "update"
    TRANSITION = "transition"
    ARCHIVE = "archive"
    UNARCHIVE = "unarchive"
    DELETE = "delete"
    MANAGE = "manage"  # expsync's own bookkeeping only (ownership record)


class Reason(enum.StrEnum):
    """Why something appears in a plan: stable codes with values that renderers word. Display
    only: apply never branches on a reason."""

    ADOPTED = "adopted"  # expsync starts managing an existing row (matched by id)
    RELEASED_ROW_DELETED = "released_row_deleted"  # deleted in the database and removed from git
    RELEASED_COMPLETED_ARCHIVED = "released_completed_archived"  # completed+archived, removed from git
    STARTS_ROUTING = "starts_routing"  # {public_model_id}
    PAUSED_REFUSES = "paused_refuses"  # {public_model_id}
    RESUMES_ROUTING = "resumes_routing"  # {public_model_id}
    STOPS_ROUTING = "stops_routing"  # {public_model_id}
    NO_LONGER_REFUSED = "no_longer_refused"  # {public_model_id}
    STAYS_REFUSED = "stays_refused"  # {public_model_id}
    TRAFFIC_MOVES = "traffic_moves"  # {label, version: upstream_changed | key_rotated | new}
    MEMBERSHIP_CACHE = "membership_cache"  # the gateway's in-process membership cache (about 60 s)


@dataclass(frozen=True, slots=True)
class Explained:
    """One reason with its values (``public_model_id``, ``label``, ``version``)."""

    reason: Reason
    values: tuple[tuple[str, str], ...] = ()

    def value(self, name: str) -> str:
        return dict(self.values)[name]


@dataclass(frozen=True, slots=True)
class FieldChange:
    """``path`` inside the object (``name``, ``extra_body.temperature``); ``None`` = absent."""

    path: str
    before: JsonValue
    after: JsonValue


@dataclass(frozen=True, slots=True, kw_only=True)
class _ExperimentOp:
    experiment_key: str
    experiment_id: uuid.UUID


@dataclass(frozen=True, slots=True, kw_only=True)
class CreateExperiment(_ExperimentOp):
    """Insert the experiment row as ``draft`` (activation, if wanted, is a later Transition)."""

    public_model_id: str
    name: str
    description: str | None
    archived: bool
    #: ``model_experiment.metadata`` (gateway profiles that have it); None: NULL, not written
    metadata: JsonObject | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class UpdateFields(_ExperimentOp):
    """UPDATE of name / description / public_model_id / metadata; ``changes`` before -> after."""

    changes: tuple[FieldChange, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Transition(_ExperimentOp):
    """Status change along one edge of the state machine. Apply sets started_at (if NULL) on
    activation and ended_at on completion."""

    trigger: Trigger
    from_status: Status
    to_status: Status


@dataclass(frozen=True, slots=True, kw_only=True)
class SetArchived(_ExperimentOp):
    before: bool
    after: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class AddVariant(_ExperimentOp):
    variant_key: str
    variant_id: uuid.UUID
    label: str
    weight: int


@dataclass(frozen=True, slots=True, kw_only=True)
class RemoveVariant(_ExperimentOp):
    """DELETE of a variant row (cascades to its versions). Only legal in draft. ``weight`` is
    ``None`` (and ``label`` the variant id) when the experiment's values are not shown."""

    variant_id: uuid.UUID
    label: str
    weight: int | None


@dataclass(frozen=True, slots=True, kw_only=True)
class RelabelVariant(_ExperimentOp):
    variant_key: str
    variant_id: uuid.UUID
    before: str
    after: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ChangeWeight(_ExperimentOp):
    """``before`` is ``None`` when the experiment's values are not shown."""

    variant_key: str
    variant_id: uuid.UUID
    label: str
    before: int | None
    after: int


@dataclass(frozen=True, slots=True, kw_only=True)
class InsertVersion(_ExperimentOp):
    """Insert a new immutable version row effective now (hot swap and/or key rotation).

    ``upstream_after`` is written as is. ``key_change`` decides the key: ``unchanged`` copies
    the encrypted key of ``base_version_id`` verbatim; ``new``/``rotated`` encrypts the value
    resolved from ``api_key_ref`` afresh (``unchanged`` copies in SQL, never through Python).
    ``upstream_before``/``upstream_diff`` are display only.
    """

    variant_key: str
    variant_id: uuid.UUID
    label: str
    base_version_id: uuid.UUID | None
    upstream_before: JsonObject | None
    upstream_after: JsonObject
    upstream_diff: tuple[FieldChange, ...] = field(default=())
    key_change: KeyChange
    api_key_ref: SecretRef


@dataclass(frozen=True, slots=True, kw_only=True)
class DeleteExperiment(_ExperimentOp):
    """DELETE of a draft experiment (cascades to variants and versions) whose YAML was removed;
    its ownership record goes with it."""

    public_model_id: str
    status: Status


@dataclass(frozen=True, slots=True, kw_only=True)
class ReleaseExperiment(_ExperimentOp):
    """Stop managing (drop expsync's ownership record); the gateway rows stay untouched."""

    reason: Reason


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordManaged(_ExperimentOp):
    """Upsert expsync's ownership record with the desired state just applied (no secrets)."""

    last_applied: JsonObject
    adopted: bool = False


Op: TypeAlias = (
    CreateExperiment
    | UpdateFields
    | Transition
    | SetArchived
    | AddVariant
    | RemoveVariant
    | RelabelVariant
    | ChangeWeight
    | InsertVersion
    | DeleteExperiment
    | ReleaseExperiment
    | RecordManaged
)

OP_TYPES: Final[tuple[type, ...]] = get_args(Op)


class Phase(enum.IntEnum):
    """Execution phases (spec §5 item 5); every intermediate state is valid."""

    UNARCHIVE = 0  # an archived row cannot become active (CHECK constraint)
    EDIT = 1  # creates, field/variant/version edits while the status still allows them
    RELEASE = 2  # complete/pause/delete: frees public ids before anything activates
    ACTIVATE = 3  # after the other experiment on the public id has completed
    ARCHIVE = 4  # last: the experiment has left ``active`` by now
    BOOKKEEPING = 5  # expsync's ownership records


def _archive_action(op: Op) -> Action:
    return Action.ARCHIVE if isinstance(op, SetArchived) and op.after else Action.UNARCHIVE


def _archive_phase(op: Op) -> Phase:
    return Phase.ARCHIVE if isinstance(op, SetArchived) and op.after else Phase.UNARCHIVE


def _transition_phase(op: Op) -> Phase:
    return Phase.ACTIVATE if isinstance(op, Transition) and op.trigger is Trigger.ACTIVATE else Phase.RELEASE


@dataclass(frozen=True, slots=True)
class OpRow:
    """One op type's row: ``action``/``phase`` are a value or a function of the op (for the
    two op types whose fields decide them). ``rank`` orders op types inside a phase.
    The executor (:data:`expsync.apply.execute.EXECUTORS`) and the renderer entries
    (``op_lines``, ``op_rows``, ``op_out`` in :mod:`expsync.render`) are registries in their
    own stages; ``tests/plan/test_registries.py`` checks they have exactly these rows."""

    action: Action | Callable[[Op], Action]
    phase: Phase | Callable[[Op], Phase]
    rank: int
    touches_gateway: bool


#: the per-op table; looking up a type without a row fails loudly (:func:`row_of`)
OP_TABLE: Final[Mapping[type, OpRow]] = {
    SetArchived: OpRow(_archive_action, _archive_phase, 0, True),
    CreateExperiment: OpRow(Action.CREATE, Phase.EDIT, 1, True),
    UpdateFields: OpRow(Action.UPDATE, Phase.EDIT, 2, True),
    RemoveVariant: OpRow(Action.UPDATE, Phase.EDIT, 3, True),  # free labels before adding/relabelling
    RelabelVariant: OpRow(Action.UPDATE, Phase.EDIT, 4, True),
    AddVariant: OpRow(Action.UPDATE, Phase.EDIT, 5, True),
    ChangeWeight: OpRow(Action.UPDATE, Phase.EDIT, 6, True),
    InsertVersion: OpRow(Action.UPDATE, Phase.EDIT, 7, True),
    DeleteExperiment: OpRow(Action.DELETE, Phase.RELEASE, 8, True),
    Transition: OpRow(Action.TRANSITION, _transition_phase, 9, True),
    ReleaseExperiment: OpRow(Action.MANAGE, Phase.BOOKKEEPING, 10, False),
    RecordManaged: OpRow(Action.MANAGE, Phase.BOOKKEEPING, 11, False),
}


def row_of(op_type: type) -> OpRow:
    try:
        return OP_TABLE[op_type]
    except KeyError:
        raise NotImplementedError(f"no row in OP_TABLE for {op_type.__name__}") from None


def action_of(op: Op) -> Action:
    a = row_of(type(op)).action
    return a if isinstance(a, Action) else a(op)


def phase_of(op: Op) -> Phase:
    p = row_of(type(op)).phase
    return p if isinstance(p, Phase) else p(op)


def rank_of(op: Op) -> int:
    return row_of(type(op)).rank


def touches_gateway(op: Op) -> bool:
    """True when the op writes the gateway's tables (and so may need a cache refresh)."""
    return row_of(type(op)).touches_gateway
