"""The apply-lock holder named on a timeout is the one in this database: advisory locks are
per database, and a server often hosts several (staging beside production, parallel CI)."""

from __future__ import annotations

import psycopg
import sqlalchemy as sa

from expsync.apply.run import APPLY_LOCK, _lock_holder


def test_a_holder_in_another_database_is_not_named(pg_engine: sa.Engine, pg_url: str) -> None:
    other = psycopg.connect(pg_url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True,
                            application_name="another-database")
    mine = psycopg.connect(pg_engine.url.render_as_string(hide_password=False).replace("+psycopg", ""),
                           autocommit=True, application_name="this-database")
    try:
        other.execute("SELECT pg_advisory_lock(%s)", (APPLY_LOCK,))
        assert _lock_holder(pg_engine) == ""
        mine.execute("SELECT pg_advisory_lock(%s)", (APPLY_LOCK,))
        named = _lock_holder(pg_engine)
        assert "'this-database'" in named and f"pid {mine.info.backend_pid}" in named
    finally:
        other.close()
        mine.close()
