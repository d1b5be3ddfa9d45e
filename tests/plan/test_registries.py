"""Adding an op is one checklist: every Op type has an order rank and an executor, and the
registries refuse what they do not know (renderers are checked in tests/render)."""

from __future__ import annotations

import pytest

from expsync.apply.execute import EXECUTORS, executes, executor_for
from expsync.plan.ops import OP_TYPES
from expsync.plan.ops import OP_TABLE


def test_every_op_type_has_an_executor_and_a_rank() -> None:
    assert set(OP_TYPES) == set(EXECUTORS) == set(OP_TABLE)


def test_unknown_op_type_fails_loudly() -> None:
    class NewOp:
        pass

    with pytest.raises(NotImplementedError, match="NewOp"):
        executor_for(NewOp)


def test_duplicate_executor_is_refused() -> None:
    with pytest.raises(RuntimeError, match="duplicate"):
        executes(OP_TYPES[0])(lambda conn, ops, ctx: 0)
