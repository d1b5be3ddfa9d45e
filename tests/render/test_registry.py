"""Every op type has a renderer in every format; a missing one fails loudly (style habit 8)."""

from __future__ import annotations

import json
import re
import uuid
from typing import get_args

import jsonschema
import pytest

from expsync.model import KeyChange, SecretRef, Status
from expsync.rules import Trigger
from expsync.plan.ops import (
    Action,
    AddVariant,
    ChangeWeight,
    CreateExperiment,
    DeleteExperiment,
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
from expsync.plan.types import Digests, ExperimentPlan, Plan, shares
from expsync.render import json as render_json_module
from expsync.render.json import json_schema, op_model, render_json
from expsync.render.markdown import RowContext, op_rows, render_markdown
from expsync.render.text import OpContext, op_lines, render_text

EID = uuid.UUID("00000000-0000-4000-8000-000000000001")
VID = uuid.UUID("00000000-0000-4000-8000-000000000002")
COMMON = {"experiment_key": "exp", "experiment_id": EID}
UP = {"internal_id": "m", "base_url": "https://api.example/v1"}

SAMPLES: dict[type, Op] = {
    CreateExperiment: CreateExperiment(**COMMON, public_model_id="partner/x", name="N", description="d", archived=True),
    UpdateFields: UpdateFields(**COMMON, changes=(FieldChange("name", "A", "B"),)),
    Transition: Transition(**COMMON, trigger=Trigger.ACTIVATE, from_status=Status.DRAFT, to_status=Status.ACTIVE),
    SetArchived: SetArchived(**COMMON, before=False, after=True),
    AddVariant: AddVariant(**COMMON, variant_key="k", variant_id=VID, label="a", weight=2),
    RemoveVariant: RemoveVariant(**COMMON, variant_id=VID, label="a", weight=2),
    RelabelVariant: RelabelVariant(**COMMON, variant_key="k", variant_id=VID, before="a", after="b"),
    ChangeWeight: ChangeWeight(**COMMON, variant_key="k", variant_id=VID, label="a", before=1, after=3),
    InsertVersion: InsertVersion(**COMMON, variant_key="k", variant_id=VID, label="a", base_version_id=VID,
                                 upstream_before=UP, upstream_after={**UP, "internal_id": "m2"},
                                 upstream_diff=(FieldChange("internal_id", "m", "m2"),), key_change=KeyChange.ROTATED,
                                 api_key_ref=SecretRef("env", "K")),
    DeleteExperiment: DeleteExperiment(**COMMON, public_model_id="partner/x", status=Status.DRAFT),
    ReleaseExperiment: ReleaseExperiment(**COMMON, reason=Reason.RELEASED_COMPLETED_ARCHIVED),
    RecordManaged: RecordManaged(**COMMON, last_applied={"name": "N"}, adopted=True),
}
OP_TYPES = get_args(Op)


def one_op_plan(op: Op) -> Plan:
    e = ExperimentPlan(key="exp", experiment_id=EID, public_model_id="partner/x", public_model_id_before="partner/x",
                       status_before=Status.DRAFT, status_after=Status.DRAFT, archived_before=False,
                       archived_after=False, shares_before=shares([(uuid.UUID(int=1), "a", 1), (uuid.UUID(int=2), "b", 1)]),
                       shares_after=shares([(uuid.UUID(int=1), "a", 1), (uuid.UUID(int=2), "b", 1)]), routing_impact=(), cache_keys=(), ops=(op,))
    return Plan(ops=(op,), experiments=(e,), drift=(), diagnostics=(), digests=Digests("sha256:d", "sha256:a", "sha256:o"),
                cache_keys=())


def test_samples_cover_every_op_type() -> None:
    assert set(SAMPLES) == set(OP_TYPES), "add a sample for the new op type (and register it in every renderer)"


@pytest.mark.parametrize("op_type", OP_TYPES, ids=lambda t: t.__name__)
def test_every_format_registers_every_op_type(op_type: type) -> None:
    for registry in (op_lines.registry, op_rows.registry, op_model.registry):
        assert op_type in registry


@pytest.mark.parametrize("op_type", OP_TYPES, ids=lambda t: t.__name__)
def test_every_format_renders_every_op_type(op_type: type) -> None:
    op = SAMPLES[op_type]
    plan = one_op_plan(op)
    e = plan.experiments[0]
    op_lines(op, OpContext(e, secrets_compared=True))
    assert op_rows(op, RowContext(e, secrets_compared=True, upstream_diffs=True))
    assert op_rows(op, RowContext(e, secrets_compared=True, upstream_diffs=False))
    assert render_text(plan) and render_markdown(plan)
    jsonschema.Draft7Validator(json_schema()).validate(json.loads(render_json(plan)))


@pytest.mark.parametrize("op_type", OP_TYPES, ids=lambda t: t.__name__)
def test_json_op_type_is_the_snake_case_class_name(op_type: type) -> None:
    snake = re.sub(r"(?<!^)(?=[A-Z])", "_", op_type.__name__).lower()
    out = op_model(SAMPLES[op_type])
    assert out.type == snake
    assert out.experiment_key == "exp"


def test_unregistered_op_type_fails_loudly_naming_it() -> None:
    class NewOp:
        pass

    ctx_e = one_op_plan(SAMPLES[UpdateFields]).experiments[0]
    with pytest.raises(NotImplementedError, match="^NewOp$"):
        op_lines(NewOp(), OpContext(ctx_e, secrets_compared=True))
    with pytest.raises(NotImplementedError, match="^NewOp$"):
        op_rows(NewOp(), RowContext(ctx_e, secrets_compared=True, upstream_diffs=True))
    with pytest.raises(NotImplementedError, match="^NewOp$"):
        op_model(NewOp())


def test_json_enum_strings_match_the_model_enums() -> None:
    m = render_json_module
    assert set(get_args(m.ActionName)) == {a.value for a in Action}
    assert set(get_args(m.StatusName)) == {s.value for s in Status}
    assert set(get_args(m.TriggerName)) == {t.value for t in Trigger}
    assert set(get_args(m.KeyChangeName)) == {k.value for k in KeyChange}


def test_json_reason_names_are_the_plan_reasons_and_every_reason_has_words() -> None:
    import typing

    from expsync.render import reason_text

    assert typing.get_args(render_json_module.ReasonName) == tuple(r.value for r in Reason)
    for reason in Reason:
        values = {"public_model_id": "p/x", "label": "a", "version": "new"}
        from expsync.plan.ops import Explained

        assert reason_text(Explained(reason, tuple(values.items())))
