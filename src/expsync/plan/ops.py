"""Operations: the closed set of changes a plan can make, one frozen class per kind.

Every op names its experiment (``experiment_key`` for people, ``experiment_id`` for the
database) and carries its *before* and *after* so renderers need nothing else. An op that
would change nothing is never emitted. Apply executes ops in ``Plan.ops`` order and relies
only on the fields documented as such; ``Action`` and explanations are for display.
"""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass, field
from typing import Final, TypeAlias, get_args

from expsync.model import JsonObject, JsonValue, KeyChange, Status
from expsync.plan.machine import Trigger


class Action(enum.StrEnum):
    """What kind of change an op is (summaries and counts). Never drives apply."""

    CREATE = "create"
    UPDATE = "update"
    TRANSITION = "transition"
    ARCHIVE = "archive"
    UNARCHIVE = "unarchive"
    DELETE = "delete"
    MANAGE = "manage"  # expsync's own bookkeeping only (ownership record)


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


@dataclass(frozen=True, slots=True, kw_only=True)
class UpdateFields(_ExperimentOp):
    """UPDATE of name / description / public_model_id; ``changes`` before -> after."""

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
    """DELETE of a variant row (cascades to its versions). Only legal in draft."""

    variant_id: uuid.UUID
    label: str
    weight: int


@dataclass(frozen=True, slots=True, kw_only=True)
class RelabelVariant(_ExperimentOp):
    variant_key: str
    variant_id: uuid.UUID
    before: str
    after: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ChangeWeight(_ExperimentOp):
    variant_key: str
    variant_id: uuid.UUID
    label: str
    before: int
    after: int


@dataclass(frozen=True, slots=True, kw_only=True)
class InsertVersion(_ExperimentOp):
    """Insert a new immutable version row effective now (hot swap and/or key rotation).

    ``upstream_after`` is written as is. ``key_change`` decides the key: ``unchanged`` copies
    the encrypted key of ``base_version_id`` verbatim; ``new``/``rotated`` encrypts the value
    resolved from ``api_key_ref`` afresh. ``upstream_before``/``upstream_diff`` are display only.
    """

    variant_key: str
    variant_id: uuid.UUID
    label: str
    base_version_id: uuid.UUID | None
    upstream_before: JsonObject | None
    upstream_after: JsonObject
    upstream_diff: tuple[FieldChange, ...] = field(default=())
    key_change: KeyChange
    api_key_ref: str


@dataclass(frozen=True, slots=True, kw_only=True)
class DeleteExperiment(_ExperimentOp):
    """DELETE of a draft experiment (cascades to variants and versions) whose YAML was removed;
    its ownership record goes with it."""

    public_model_id: str
    status: Status


@dataclass(frozen=True, slots=True, kw_only=True)
class ReleaseExperiment(_ExperimentOp):
    """Stop managing (drop expsync's ownership record); the gateway rows stay untouched."""

    reason: str


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


def action_of(op: Op) -> Action:
    match op:
        case CreateExperiment():
            return Action.CREATE
        case Transition():
            return Action.TRANSITION
        case SetArchived(after=True):
            return Action.ARCHIVE
        case SetArchived():
            return Action.UNARCHIVE
        case DeleteExperiment():
            return Action.DELETE
        case ReleaseExperiment() | RecordManaged():
            return Action.MANAGE
        case _:
            return Action.UPDATE


def touches_gateway(op: Op) -> bool:
    """True when the op writes the gateway's tables (and so may need a cache refresh)."""
    return not isinstance(op, (ReleaseExperiment, RecordManaged))
