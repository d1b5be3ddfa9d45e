"""Fixtures shared by the gateway-profile tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from expsync.state.db import init_db, make_engine


@pytest.fixture
def pg_2026_06(pg_url: str) -> Iterator[sa.Engine]:
    """A fresh Postgres database shaped like today's gateway (model_experiment.metadata)."""
    engine = make_engine(pg_url)
    init_db(engine, with_metadata=True)
    try:
        yield engine
    finally:
        engine.dispose()
