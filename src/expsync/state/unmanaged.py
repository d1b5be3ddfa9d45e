"""Which experiments ``expsync import`` may adopt: rows in the database expsync does not manage."""

from __future__ import annotations

import uuid
from collections.abc import Iterable

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from expsync.state.tables import experiment, managed


def select_unmanaged(conn: Connection, *, all_unmanaged: bool, ids: Iterable[uuid.UUID],
                     public_model_ids: Iterable[str]) -> list[uuid.UUID]:
    """Experiments to import: explicit ids, every row on the given public ids, or (``--all``)
    every row expsync does not manage yet. Managed rows are never re-imported. Sorted by id."""
    managed_ids = sa.select(managed.c.experiment_id)
    q = sa.select(experiment.c.id).where(experiment.c.id.not_in(managed_ids))
    conds = []
    id_list, pid_list = list(ids), list(public_model_ids)
    if id_list:
        conds.append(experiment.c.id.in_(id_list))
    if pid_list:
        conds.append(experiment.c.public_model_id.in_(pid_list))
    if not all_unmanaged:
        if not conds:
            return []
        q = q.where(sa.or_(*conds))
    return list(conn.execute(q.order_by(experiment.c.id)).scalars())
