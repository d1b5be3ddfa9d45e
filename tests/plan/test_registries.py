"""Adding an op is one checklist: every member of the ``Op`` union has a row in the per-op
table (action, phase, rank, touches_gateway) plus an executor and a renderer in each format,
and every lookup refuses what it does not know."""

from __future__ import annotations

import dataclasses
import typing

import pytest

from expsync.apply.execute import EXECUTORS, executes, executor_for
from expsync.plan.ops import OP_TABLE, OP_TYPES, Action, Op, Phase, action_of, phase_of, rank_of, row_of, touches_gateway
from expsync.render.json import op_model
from expsync.render.markdown import op_rows
from expsync.render.text import op_lines


def test_every_op_type_has_every_column() -> None:
    assert set(typing.get_args(Op)) == set(OP_TYPES) == set(OP_TABLE)
    ranks = [row.rank for row in OP_TABLE.values()]
    assert len(set(ranks)) == len(ranks)  # ranks order op types: no ties
    for op_type, row in OP_TABLE.items():
        assert {f.name for f in dataclasses.fields(row)} == {"action", "phase", "rank", "touches_gateway"}
        assert isinstance(row.action, Action) or callable(row.action), op_type
        assert isinstance(row.phase, Phase) or callable(row.phase), op_type
        assert isinstance(row.touches_gateway, bool), op_type


def test_executors_and_renderers_cover_exactly_the_table() -> None:
    assert set(EXECUTORS) == set(OP_TABLE)
    for registry in (op_lines.registry, op_rows.registry, op_model.registry):
        assert set(registry) - {object} == set(OP_TABLE)


def test_unknown_op_type_fails_loudly_everywhere() -> None:
    @dataclasses.dataclass(frozen=True)
    class NewOp:
        experiment_key: str = "x"

    with pytest.raises(NotImplementedError, match="NewOp"):
        executor_for(NewOp)
    with pytest.raises(NotImplementedError, match="NewOp"):
        row_of(NewOp)
    for lookup in (action_of, phase_of, rank_of, touches_gateway):
        with pytest.raises(NotImplementedError, match="NewOp"):
            lookup(NewOp())  # type: ignore[arg-type]


def test_duplicate_executor_is_refused() -> None:
    with pytest.raises(RuntimeError, match="duplicate"):
        executes(OP_TYPES[0])(lambda conn, ops, ctx: 0)
