"""JSON format: a versioned wire format for machines (``plan --format json``, ``plan --out``).

The output is built from the pydantic models below, never from the internal plan classes, so
refactoring the planner cannot silently change the format. Names are stable snake_case strings.

Versioning (``format_version``): adding a field, an op ``type`` or an enum value keeps the
version (consumers must ignore what they do not know); removing or renaming a field, or
changing its meaning or type, bumps it. ``schemas/plan.schema.json`` is generated from these
models by :func:`json_schema` and a test keeps the committed file equal to it.

Security: the top-level ``security`` list (where api keys go that they did not go before) comes
first in the document. With ``--no-secrets``, an experiment expsync does not manage has
``values_hidden: true`` and the before-side values of its operations are ``null`` (a label:
the variant id).

Secrets: an ``insert_version`` op says what happens to the key (``key_change``) and names its
reference (``api_key_ref``, e.g. ``env:FOO_KEY``). No field can hold a key.
"""

from __future__ import annotations

import functools
import json
import uuid
from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic import JsonValue as JsonAny
from pydantic.json_schema import GenerateJsonSchema

from expsync.escape import json_document
from expsync.plan.ops import (
    AddVariant,
    ChangeWeight,
    CreateExperiment,
    DeleteExperiment,
    Explained,
    FieldChange,
    InsertVersion,
    Op,
    RecordManaged,
    RelabelVariant,
    ReleaseExperiment,
    RemoveVariant,
    SetArchived,
    Transition,
    UpdateFields,
    action_of,
)
from expsync.plan.security import SecurityItem
from expsync.plan.types import DriftItem, ExperimentPlan, Plan, Share
from expsync.render import headline_action, masked, summarize
from expsync.rules import BUCKET_SPACE

__all__ = ["FORMAT_VERSION", "PlanOut", "json_schema", "op_model", "render_json", "schema_text"]

#: 2: ``routing_impact``, ``notes`` and ``release_experiment.reason`` are reason codes with
#: values (``{"code": ..., "values": {...}}``) that consumers word, no longer English sentences;
#: shares carry ``buckets`` (the gateway's exact share). Added within 2: ``security``,
#: ``values_hidden``
FORMAT_VERSION: Final = "2"

ActionName = Literal["create", "update", "transition", "archive", "unarchive", "delete", "manage"]
StatusName = Literal["draft", "active", "paused", "completed"]
TriggerName = Literal["activate", "pause", "complete"]
KeyChangeName = Literal["unchanged", "rotated", "unknown", "new"]
ReasonName = Literal["adopted", "released_row_deleted", "released_completed_archived", "starts_routing",
                     "paused_refuses", "resumes_routing", "stops_routing", "no_longer_refused", "stays_refused",
                     "traffic_moves", "membership_cache"]

SecurityName = Literal["key_ref_changed", "origin_changed", "key_sent_to_new_origin", "new_origin"]

#: validators are built on first use (a JSON render, a saved plan read), not on import: the
#: CLI imports every format and a text plan needs none of them
_OUT = ConfigDict(extra="forbid", frozen=True, defer_build=True)


class SecurityOut(BaseModel):
    """A variant whose api key goes somewhere it did not go before (see docs/plan-output.md).
    ``*_before`` is null when unknown, unchanged or not shown; an origin is
    ``scheme://host[:port]`` as the gateway connects to it."""

    model_config = _OUT
    code: SecurityName
    severity: Literal["warning", "notice"]
    experiment_key: str
    experiment_id: uuid.UUID
    variant_key: str
    label: str
    api_key_ref_before: str | None
    api_key_ref: str
    origin_before: str | None
    origin: str | None
    values_hidden: bool
    file: str | None
    line: int | None


class ShareOut(BaseModel):
    """A variant's traffic share as the gateway computes it: ``buckets`` of the 2^32 bucket
    values land on it; ``percent`` is ``100 * buckets / 2^32`` rounded to 2 decimals (equal to
    ``weight / total`` up to 1/2^32 while the total is at most 2^32)."""

    model_config = _OUT
    label: str
    weight: int
    percent: float
    buckets: int


class ReasonOut(BaseModel):
    """Why something is in the plan: a stable code and its values (``public_model_id``,
    ``label``, ``version``: ``upstream_changed`` | ``key_rotated`` | ``new``); see docs/plan-output.md."""

    model_config = _OUT
    code: ReasonName
    values: dict[str, str]


class FieldChangeOut(BaseModel):
    """``path`` inside the object; ``null`` before/after means the field is absent."""

    model_config = _OUT
    path: str
    before: JsonAny
    after: JsonAny


class _OpOut(BaseModel):
    model_config = _OUT
    type: str
    action: ActionName
    experiment_key: str
    experiment_id: uuid.UUID


class CreateExperimentOut(_OpOut):
    """Insert the experiment row as draft (activation is a separate ``transition``)."""

    type: Literal["create_experiment"]
    public_model_id: str
    name: str
    description: str | None
    archived: bool
    #: model_experiment.metadata (gateway profiles that have it); absent: NULL
    metadata: dict[str, Any] | None = None


class UpdateFieldsOut(_OpOut):
    type: Literal["update_fields"]
    changes: list[FieldChangeOut]


class TransitionOut(_OpOut):
    type: Literal["transition"]
    trigger: TriggerName
    from_status: StatusName
    to_status: StatusName


class SetArchivedOut(_OpOut):
    type: Literal["set_archived"]
    before: bool
    after: bool


class AddVariantOut(_OpOut):
    type: Literal["add_variant"]
    variant_key: str
    variant_id: uuid.UUID
    label: str
    weight: int


class RemoveVariantOut(_OpOut):
    """``weight`` is null (``label`` the variant id) when the experiment's values are hidden."""

    type: Literal["remove_variant"]
    variant_id: uuid.UUID
    label: str
    weight: int | None


class RelabelVariantOut(_OpOut):
    type: Literal["relabel_variant"]
    variant_key: str
    variant_id: uuid.UUID
    before: str
    after: str


class ChangeWeightOut(_OpOut):
    """``before`` is null when the experiment's values are hidden."""

    type: Literal["change_weight"]
    variant_key: str
    variant_id: uuid.UUID
    label: str
    before: int | None
    after: int


class InsertVersionOut(_OpOut):
    """A new version row. ``upstream_before`` is null for a variant's first version."""

    type: Literal["insert_version"]
    variant_key: str
    variant_id: uuid.UUID
    label: str
    base_version_id: uuid.UUID | None
    upstream_before: dict[str, JsonAny] | None
    upstream_after: dict[str, JsonAny]
    upstream_diff: list[FieldChangeOut]
    key_change: KeyChangeName
    #: the secret *reference* (``env:NAME``); never the key
    api_key_ref: str


class DeleteExperimentOut(_OpOut):
    type: Literal["delete_experiment"]
    public_model_id: str
    status: StatusName


class ReleaseExperimentOut(_OpOut):
    """expsync stops managing the experiment; its database rows stay."""

    type: Literal["release_experiment"]
    reason: ReasonName


class RecordManagedOut(_OpOut):
    """expsync's own ownership record (bookkeeping; no gateway change)."""

    type: Literal["record_managed"]
    adopted: bool


OperationOut = Annotated[
    CreateExperimentOut
    | UpdateFieldsOut
    | TransitionOut
    | SetArchivedOut
    | AddVariantOut
    | RemoveVariantOut
    | RelabelVariantOut
    | ChangeWeightOut
    | InsertVersionOut
    | DeleteExperimentOut
    | ReleaseExperimentOut
    | RecordManagedOut,
    Field(discriminator="type"),
]


class ExperimentOut(BaseModel):
    """One experiment the plan touches or refuses; ``operations`` in execution order."""

    model_config = _OUT
    key: str
    id: uuid.UUID
    #: the action the summary counts it under; ``manage`` = expsync bookkeeping only
    action: ActionName | None
    public_model_id: str
    public_model_id_before: str | None
    status_before: StatusName | None
    status_after: StatusName | None
    status_path: str
    archived_before: bool | None
    archived_after: bool | None
    shares_before: list[ShareOut]
    shares_after: list[ShareOut]
    routing_impact: list[ReasonOut]
    cache_keys: list[str]
    notes: list[ReasonOut]
    operations: list[OperationOut]
    #: not managed by expsync and its values are not shown (``--no-secrets``): before-side
    #: values of its operations are null (labels: the variant id), ``shares_before`` is empty
    values_hidden: bool


class DriftOut(BaseModel):
    """A field changed in the database outside git, relative to what expsync last applied."""

    model_config = _OUT
    experiment_key: str
    path: str
    last_applied: JsonAny
    actual: JsonAny
    protective: bool
    reverted: bool


class DiagnosticOut(BaseModel):
    model_config = _OUT
    code: str
    severity: Literal["error", "warning"]
    file: str | None
    line: int | None
    col: int | None
    path: str
    experiment: str | None
    message: str
    hint: str


class DigestsOut(BaseModel):
    """``ops`` is recomputable from ``operations`` (:mod:`expsync.plan.document`);
    ``secrets`` is a keyed digest (HMAC) of the api key values the operations encrypt, empty
    when they encrypt none: never a value, nothing a value can be learnt from."""

    model_config = _OUT
    desired: str
    actual: str
    ops: str
    secrets: str = ""


class SummaryOut(BaseModel):
    """Changed experiments by action (as in the text summary line), ops and diagnostics."""

    model_config = _OUT
    create: int
    update: int
    transition: int
    delete: int
    manage: int
    operations: int
    errors: int
    warnings: int


class PlanOut(BaseModel):
    """The whole plan. ``operations`` is the flat list in execution order (what apply runs)."""

    model_config = ConfigDict(extra="forbid", frozen=True, title="expsync plan", defer_build=True)
    format_version: Literal["2"]
    #: where api keys go that they did not go before; listed first, read it first
    security: list[SecurityOut]
    applyable: bool
    refused: bool
    has_changes: bool
    secrets_compared: bool
    #: values of experiments expsync does not manage are not shown (``--no-secrets``)
    values_hidden: bool
    #: the gateway profile the plan was made for (expsync.profiles.PROFILES); null when unknown
    gateway_profile: str | None = None
    summary: SummaryOut
    digests: DigestsOut
    experiments: list[ExperimentOut]
    operations: list[OperationOut]
    drift: list[DriftOut]
    diagnostics: list[DiagnosticOut]
    cache_keys: list[str]


# -- op -> output model (one registration per op class) ----------------------------------------
def _base(op: Op) -> dict[str, Any]:
    return {"action": action_of(op).value, "experiment_key": op.experiment_key, "experiment_id": op.experiment_id}


def _changes(changes: tuple[FieldChange, ...]) -> list[FieldChangeOut]:
    return [FieldChangeOut(path=c.path, before=c.before, after=c.after) for c in changes]


@functools.singledispatch
def op_model(op: object) -> _OpOut:
    """The output model of one op. Every op class registers an implementation."""
    raise NotImplementedError(type(op).__name__)


@op_model.register
def _(op: CreateExperiment) -> _OpOut:
    return CreateExperimentOut(type="create_experiment", **_base(op), public_model_id=op.public_model_id,
                               name=op.name, description=op.description, archived=op.archived, metadata=op.metadata)


@op_model.register
def _(op: UpdateFields) -> _OpOut:
    return UpdateFieldsOut(type="update_fields", **_base(op), changes=_changes(op.changes))


@op_model.register
def _(op: Transition) -> _OpOut:
    return TransitionOut(type="transition", **_base(op), trigger=op.trigger.value, from_status=op.from_status.value,
                         to_status=op.to_status.value)


@op_model.register
def _(op: SetArchived) -> _OpOut:
    return SetArchivedOut(type="set_archived", **_base(op), before=op.before, after=op.after)


@op_model.register
def _(op: AddVariant) -> _OpOut:
    return AddVariantOut(type="add_variant", **_base(op), variant_key=op.variant_key, variant_id=op.variant_id,
                         label=op.label, weight=op.weight)


@op_model.register
def _(op: RemoveVariant) -> _OpOut:
    return RemoveVariantOut(type="remove_variant", **_base(op), variant_id=op.variant_id, label=op.label,
                            weight=op.weight)


@op_model.register
def _(op: RelabelVariant) -> _OpOut:
    return RelabelVariantOut(type="relabel_variant", **_base(op), variant_key=op.variant_key,
                             variant_id=op.variant_id, before=op.before, after=op.after)


@op_model.register
def _(op: ChangeWeight) -> _OpOut:
    return ChangeWeightOut(type="change_weight", **_base(op), variant_key=op.variant_key, variant_id=op.variant_id,
                           label=op.label, before=op.before, after=op.after)


@op_model.register
def _(op: InsertVersion) -> _OpOut:
    return InsertVersionOut(type="insert_version", **_base(op), variant_key=op.variant_key, variant_id=op.variant_id,
                            label=op.label, base_version_id=op.base_version_id, upstream_before=op.upstream_before,
                            upstream_after=op.upstream_after, upstream_diff=_changes(op.upstream_diff),
                            key_change=op.key_change.value, api_key_ref=str(op.api_key_ref))


@op_model.register
def _(op: DeleteExperiment) -> _OpOut:
    return DeleteExperimentOut(type="delete_experiment", **_base(op), public_model_id=op.public_model_id,
                               status=op.status.value)


@op_model.register
def _(op: ReleaseExperiment) -> _OpOut:
    return ReleaseExperimentOut(type="release_experiment", **_base(op), reason=op.reason.value)


@op_model.register
def _(op: RecordManaged) -> _OpOut:
    return RecordManagedOut(type="record_managed", **_base(op), adopted=op.adopted)


# -- plan -> output model -----------------------------------------------------------------------
def _shares(shares: tuple[Share, ...]) -> list[ShareOut]:
    return [ShareOut(label=s.label, weight=s.weight, percent=round(s.percent, 2), buckets=int(s.exact * BUCKET_SPACE))
            for s in shares]


def _reasons(reasons: tuple[Explained, ...]) -> list[ReasonOut]:
    return [ReasonOut(code=x.reason.value, values=dict(x.values)) for x in reasons]


def _experiment(e: ExperimentPlan) -> ExperimentOut:
    return ExperimentOut(
        key=e.key,
        id=e.experiment_id,
        action=headline_action(e).value if e.ops else None,
        public_model_id=e.public_model_id,
        public_model_id_before=e.public_model_id_before,
        status_before=e.status_before.value if e.status_before else None,
        status_after=e.status_after.value if e.status_after else None,
        status_path=e.status_path,
        archived_before=e.archived_before,
        archived_after=e.archived_after,
        shares_before=_shares(e.shares_before),
        shares_after=_shares(e.shares_after),
        routing_impact=_reasons(e.routing_impact),
        cache_keys=list(e.cache_keys),
        notes=_reasons(e.notes),
        operations=[op_model(op) for op in e.ops],
        values_hidden=e.values_hidden,
    )


def _security(x: SecurityItem) -> SecurityOut:
    return SecurityOut(code=x.code.value, severity="warning" if x.is_warning else "notice",
                       experiment_key=x.experiment_key, experiment_id=x.experiment_id, variant_key=x.variant_key,
                       label=x.label, api_key_ref_before=x.api_key_ref_before, api_key_ref=x.api_key_ref,
                       origin_before=x.origin_before, origin=x.origin, values_hidden=x.values_hidden,
                       file=x.source.file if x.source else None, line=x.source.line if x.source and x.source.line else None)


def _drift(d: DriftItem) -> DriftOut:
    return DriftOut(experiment_key=d.experiment_key, path=d.path, last_applied=masked(d.last_applied, d.path),
                    actual=masked(d.actual, d.path),
                    protective=d.protective, reverted=d.reverted)


def plan_model(plan: Plan) -> PlanOut:
    s = summarize(plan)
    return PlanOut(
        format_version=FORMAT_VERSION,
        security=[_security(x) for x in plan.security],
        applyable=plan.applyable,
        refused=plan.refused,
        has_changes=plan.has_changes,
        secrets_compared=plan.secrets_compared,
        values_hidden=plan.values_hidden,
        gateway_profile=plan.gateway_profile or None,
        summary=SummaryOut(**s.as_dict()),
        digests=DigestsOut(desired=plan.digests.desired, actual=plan.digests.actual, ops=plan.digests.ops,
                           secrets=plan.digests.secrets),
        experiments=[_experiment(e) for e in sorted(plan.experiments, key=lambda e: e.key)],
        operations=[op_model(op) for op in plan.ops],
        drift=[_drift(d) for d in plan.drift],
        diagnostics=[DiagnosticOut.model_validate(d.as_dict()) for d in plan.diagnostics],
        cache_keys=list(plan.cache_keys),
    )


def render_json(plan: Plan, *, color: bool = False) -> str:
    """The plan as indented JSON (``color`` is accepted for a uniform signature and ignored)."""
    return json_document(json.dumps(plan_model(plan).model_dump(mode="json"), indent=2, ensure_ascii=False))


# -- schema -------------------------------------------------------------------------------------
class _Draft07(GenerateJsonSchema):
    def generate(self, schema: Any, mode: Any = "validation") -> Any:
        out = super().generate(schema, mode=mode)
        out["$schema"] = "http://json-schema.org/draft-07/schema#"
        return out


def json_schema() -> dict[str, Any]:
    """JSON Schema (draft-07) of :func:`render_json`'s output; committed as schemas/plan.schema.json."""
    schema = PlanOut.model_json_schema(ref_template="#/definitions/{model}", schema_generator=_Draft07,
                                       mode="serialization")
    if "$defs" in schema:
        schema["definitions"] = schema.pop("$defs")
    schema["$id"] = "https://expsync.dev/schemas/plan.schema.json"
    return dict(sorted(schema.items()))


def schema_text() -> str:
    """The exact contents of ``schemas/plan.schema.json``."""
    return json.dumps(json_schema(), indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":  # python -m expsync.render.json > schemas/plan.schema.json
    print(schema_text(), end="")
