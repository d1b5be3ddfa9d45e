"""Saved plan file (``plan --out``) -> :class:`~expsync.plan.Plan`, for ``expsync show`` and
``expsync comment``.

The file is validated against the JSON format's own output models (:mod:`expsync.render.json`)
and turned back into the plan classes, so every renderer prints it exactly as ``plan`` did. No
database, secret store or environment is involved: a saved plan holds references, never keys.

Fields the JSON format does not carry are rebuilt from what it does: a share's ``total`` is the
sum of the weights in its list and its exact fraction is ``buckets / 2^32``; ``RecordManaged.last_applied`` (apply's bookkeeping, which
no renderer shows) is left empty. A loaded plan is for display only; ``apply --plan`` compares
digests and re-plans, it never executes a loaded plan.
"""

from __future__ import annotations

import functools
from fractions import Fraction
from typing import Any, cast

from expsync.diagnostics import Diagnostic, Severity, SourceRange
from expsync.model import JsonObject, JsonValue, KeyChange, SecretRef, Status
from expsync.plan.ops import (
    AddVariant,
    ChangeWeight,
    CreateExperiment,
    DeleteExperiment,
    Explained,
    FieldChange,
    InsertVersion,
    Op,
    Reason,
    RecordManaged,
    RelabelVariant,
    ReleaseExperiment,
    RemoveVariant,
    SetArchived,
    Transition,
    UpdateFields,
)
from expsync.plan.security import Security, SecurityItem
from expsync.plan.types import Digests, DriftItem, ExperimentPlan, Plan, Share
from expsync.render import json as render_json
from expsync.render.saved import SavedPlanInvalid, load_saved_plan
from expsync.rules import BUCKET_SPACE, Trigger

__all__ = ["PlanFileError", "load_plan"]


class PlanFileError(ValueError):
    """The text is not a plan written by ``expsync plan --out`` (message names the reason)."""


def load_plan(text: str) -> Plan:
    """Parse a saved JSON plan with the one saved-plan loader (:func:`expsync.render.saved.load_saved_plan`).
    Raises :class:`PlanFileError` for anything that is not a plan file, and
    :class:`~expsync.render.saved.SavedPlanTampered` (exit 5) for a file whose operations do
    not match its own digest: what is shown is what the digest stands for."""
    try:
        saved = load_saved_plan(text, name="")
    except SavedPlanInvalid as e:
        raise PlanFileError(str(e)) from None
    return _plan(saved.model, saved.digests)


def _plan(m: render_json.PlanOut, digests: Digests) -> Plan:
    return Plan(
        ops=tuple(_op(o) for o in m.operations),
        experiments=tuple(_experiment(e) for e in m.experiments),
        drift=tuple(DriftItem(experiment_key=d.experiment_key, path=d.path, last_applied=_json(d.last_applied),
                              actual=_json(d.actual), protective=d.protective, reverted=d.reverted) for d in m.drift),
        diagnostics=tuple(_diagnostic(d) for d in m.diagnostics),
        digests=digests,
        cache_keys=tuple(m.cache_keys),
        secrets_compared=m.secrets_compared,
        gateway_profile=m.gateway_profile or "",
        security=tuple(_security(x) for x in m.security),
        values_hidden=m.values_hidden,
    )


def _security(x: render_json.SecurityOut) -> SecurityItem:
    source = SourceRange(x.file, x.line or 0) if x.file is not None else None
    return SecurityItem(code=Security(x.code), experiment_key=x.experiment_key, experiment_id=x.experiment_id,
                        variant_key=x.variant_key, label=x.label, api_key_ref_before=x.api_key_ref_before,
                        api_key_ref=x.api_key_ref, origin_before=x.origin_before, origin=x.origin, source=source,
                        values_hidden=x.values_hidden)


def _json(value: Any) -> JsonValue:
    return cast(JsonValue, value)


def _shares(shares: list[render_json.ShareOut]) -> tuple[Share, ...]:
    total = sum(s.weight for s in shares)
    return tuple(Share(label=s.label, weight=s.weight, total=total, exact=Fraction(s.buckets, BUCKET_SPACE)) for s in shares)


def _reasons(reasons: list[render_json.ReasonOut]) -> tuple[Explained, ...]:
    return tuple(Explained(Reason(r.code), tuple(r.values.items())) for r in reasons)


def _experiment(e: render_json.ExperimentOut) -> ExperimentPlan:
    return ExperimentPlan(
        key=e.key,
        experiment_id=e.id,
        public_model_id=e.public_model_id,
        public_model_id_before=e.public_model_id_before,
        status_before=Status(e.status_before) if e.status_before else None,
        status_after=Status(e.status_after) if e.status_after else None,
        archived_before=e.archived_before,
        archived_after=e.archived_after,
        shares_before=_shares(e.shares_before),
        shares_after=_shares(e.shares_after),
        routing_impact=_reasons(e.routing_impact),
        cache_keys=tuple(e.cache_keys),
        ops=tuple(_op(o) for o in e.operations),
        notes=_reasons(e.notes),
        values_hidden=e.values_hidden,
    )


def _diagnostic(d: render_json.DiagnosticOut) -> Diagnostic:
    source = SourceRange(d.file, d.line or 0, d.col or 0) if d.file is not None else None
    return Diagnostic(code=d.code, message=d.message, source=source, path=d.path, hint=d.hint,
                      experiment=d.experiment or "", severity=Severity(d.severity))


def _changes(changes: list[render_json.FieldChangeOut]) -> tuple[FieldChange, ...]:
    return tuple(FieldChange(path=c.path, before=_json(c.before), after=_json(c.after)) for c in changes)


def _ref(text: str) -> SecretRef:
    """The reference as ``str(SecretRef)`` wrote it (display only: never resolved from here)."""
    scheme, sep, rest = text.partition(":")
    if not sep or scheme not in ("env", "file", "aws-sm", "vault"):
        raise PlanFileError("not a plan file written by `expsync plan --out` (invalid api_key_ref)")
    if scheme in ("env", "file"):
        return SecretRef(scheme, rest)
    locator, _, fld = rest.partition("#")
    return SecretRef(scheme, locator, fld or None)


def _base(o: render_json._OpOut) -> dict[str, Any]:
    return {"experiment_key": o.experiment_key, "experiment_id": o.experiment_id}


# -- output model -> op (one registration per output model, mirroring render.json.op_model) -----
@functools.singledispatch
def _op(o: object) -> Op:
    raise NotImplementedError(type(o).__name__)


@_op.register
def _(o: render_json.CreateExperimentOut) -> Op:
    return CreateExperiment(**_base(o), public_model_id=o.public_model_id, name=o.name, description=o.description,
                            archived=o.archived, metadata=cast(JsonObject, o.metadata) if o.metadata is not None else None)


@_op.register
def _(o: render_json.UpdateFieldsOut) -> Op:
    return UpdateFields(**_base(o), changes=_changes(o.changes))


@_op.register
def _(o: render_json.TransitionOut) -> Op:
    return Transition(**_base(o), trigger=Trigger(o.trigger), from_status=Status(o.from_status),
                      to_status=Status(o.to_status))


@_op.register
def _(o: render_json.SetArchivedOut) -> Op:
    return SetArchived(**_base(o), before=o.before, after=o.after)


@_op.register
def _(o: render_json.AddVariantOut) -> Op:
    return AddVariant(**_base(o), variant_key=o.variant_key, variant_id=o.variant_id, label=o.label, weight=o.weight)


@_op.register
def _(o: render_json.RemoveVariantOut) -> Op:
    return RemoveVariant(**_base(o), variant_id=o.variant_id, label=o.label, weight=o.weight)


@_op.register
def _(o: render_json.RelabelVariantOut) -> Op:
    return RelabelVariant(**_base(o), variant_key=o.variant_key, variant_id=o.variant_id, before=o.before,
                          after=o.after)


@_op.register
def _(o: render_json.ChangeWeightOut) -> Op:
    return ChangeWeight(**_base(o), variant_key=o.variant_key, variant_id=o.variant_id, label=o.label,
                        before=o.before, after=o.after)


@_op.register
def _(o: render_json.InsertVersionOut) -> Op:
    return InsertVersion(**_base(o), variant_key=o.variant_key, variant_id=o.variant_id, label=o.label,
                         base_version_id=o.base_version_id,
                         upstream_before=cast(JsonObject, o.upstream_before) if o.upstream_before is not None else None,
                         upstream_after=cast(JsonObject, o.upstream_after), upstream_diff=_changes(o.upstream_diff),
                         key_change=KeyChange(o.key_change), api_key_ref=_ref(o.api_key_ref))


@_op.register
def _(o: render_json.DeleteExperimentOut) -> Op:
    return DeleteExperiment(**_base(o), public_model_id=o.public_model_id, status=Status(o.status))


@_op.register
def _(o: render_json.ReleaseExperimentOut) -> Op:
    return ReleaseExperiment(**_base(o), reason=Reason(o.reason))


@_op.register
def _(o: render_json.RecordManagedOut) -> Op:
    return RecordManaged(**_base(o), last_applied={}, adopted=o.adopted)

