"""The gateway tables match spec §2.1 on real Postgres, and behave the same on SQLite."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from expsync.state.db import OWN_VERSION_TABLE
from expsync.state.tables import experiment, own_metadata, variant, version

# (table, column) -> (type, nullable, default), as spec §2.1 states them.
EXPECTED_COLUMNS: dict[str, list[tuple[str, str, str, str | None]]] = {
    "model_experiment": [
        ("id", "uuid", "NO", "gen_random_uuid()"),
        ("public_model_id", "text", "NO", None),
        ("name", "text", "NO", None),
        ("description", "text", "YES", None),
        ("status", "text", "NO", "'draft'::text"),
        ("is_archived", "boolean", "NO", "false"),
        ("created_by_user_id", "text", "YES", None),
        ("created_at", "timestamp with time zone", "NO", "now()"),
        ("updated_at", "timestamp with time zone", "NO", "now()"),
        ("started_at", "timestamp with time zone", "YES", None),
        ("ended_at", "timestamp with time zone", "YES", None),
    ],
    "model_experiment_variant": [
        ("id", "uuid", "NO", "gen_random_uuid()"),
        ("experiment_id", "uuid", "NO", None),
        ("label", "text", "NO", None),
        ("weight", "integer", "NO", None),
        ("created_at", "timestamp with time zone", "NO", "now()"),
        ("updated_at", "timestamp with time zone", "NO", "now()"),
    ],
    "model_experiment_variant_version": [
        ("id", "uuid", "NO", "gen_random_uuid()"),
        ("variant_id", "uuid", "NO", None),
        ("upstream", "jsonb", "NO", None),
        ("encrypted_api_key", "jsonb", "NO", None),
        ("effective_at", "timestamp with time zone", "NO", "now()"),
        ("created_by", "text", "YES", None),
        ("created_at", "timestamp with time zone", "NO", "now()"),
    ],
}

EXPECTED_INDEXES = {
    ("model_experiment", "UQ_model_experiment_public_model_id_routing"): (
        'CREATE UNIQUE INDEX "UQ_model_experiment_public_model_id_routing" ON public.model_experiment '
        "USING btree (public_model_id) WHERE (status = ANY (ARRAY['active'::text, 'paused'::text]))"
    ),
    ("model_experiment", "IDX_model_experiment_status"): (
        'CREATE INDEX "IDX_model_experiment_status" ON public.model_experiment USING btree (status)'
    ),
    ("model_experiment_variant", "IDX_model_experiment_variant_experiment_id"): (
        'CREATE INDEX "IDX_model_experiment_variant_experiment_id" ON public.model_experiment_variant '
        "USING btree (experiment_id)"
    ),
    ("model_experiment_variant_version", "IDX_model_experiment_variant_version_variant_effective"): (
        'CREATE INDEX "IDX_model_experiment_variant_version_variant_effective" '
        "ON public.model_experiment_variant_version USING btree (variant_id, effective_at DESC)"
    ),
}

EXPECTED_CONSTRAINTS = {
    ("model_experiment", "model_experiment_status_valid"): (
        "CHECK ((status = ANY (ARRAY['draft'::text, 'active'::text, 'paused'::text, 'completed'::text])))"
    ),
    ("model_experiment", "model_experiment_active_not_archived"): (
        "CHECK (((status <> 'active'::text) OR (is_archived = false)))"
    ),
    ("model_experiment_variant", "UQ_model_experiment_variant_experiment_label"): "UNIQUE (experiment_id, label)",
    ("model_experiment_variant", "model_experiment_variant_weight_positive"): "CHECK ((weight > 0))",
    ("model_experiment_variant", "model_experiment_variant_experiment_id_fkey"): (
        "FOREIGN KEY (experiment_id) REFERENCES model_experiment(id) ON DELETE CASCADE"
    ),
    ("model_experiment_variant_version", "model_experiment_variant_version_variant_id_fkey"): (
        "FOREIGN KEY (variant_id) REFERENCES model_experiment_variant(id) ON DELETE CASCADE"
    ),
}


def _rows(conn: sa.Connection, sql: str) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in conn.execute(sa.text(sql))]


def test_columns_match_spec_on_postgres(pg_engine: sa.Engine) -> None:
    with pg_engine.connect() as conn:
        for table, expected in EXPECTED_COLUMNS.items():
            actual = _rows(
                conn,
                "SELECT column_name, data_type, is_nullable, column_default FROM information_schema.columns "
                f"WHERE table_schema = 'public' AND table_name = '{table}' ORDER BY ordinal_position",
            )
            assert actual == expected, table


def test_indexes_match_spec_on_postgres(pg_engine: sa.Engine) -> None:
    with pg_engine.connect() as conn:
        actual = {
            (t, name): definition
            for t, name, definition in _rows(
                conn,
                "SELECT tablename, indexname, indexdef FROM pg_indexes "
                "WHERE schemaname = 'public' AND tablename LIKE 'model_experiment%' AND indexname NOT LIKE '%pkey'",
            )
        }
    # the UNIQUE constraint's own index is listed too
    actual.pop(("model_experiment_variant", "UQ_model_experiment_variant_experiment_label"))
    assert actual == EXPECTED_INDEXES


def test_constraints_match_spec_on_postgres(pg_engine: sa.Engine) -> None:
    with pg_engine.connect() as conn:
        actual = {
            (str(t), name): definition
            for t, name, definition in _rows(
                conn,
                "SELECT CAST(CAST(conrelid AS regclass) AS text), conname, pg_get_constraintdef(oid) FROM pg_constraint "
                "WHERE connamespace = CAST('public' AS regnamespace) AND contype <> 'p' "
                "AND CAST(CAST(conrelid AS regclass) AS text) LIKE 'model_experiment%'",
            )
        }
    assert actual == EXPECTED_CONSTRAINTS


def test_own_tables_migrated_schema_matches_table_definitions(db_engine: sa.Engine) -> None:
    # The code reads and writes through own_metadata; the migrations create the tables.
    with db_engine.connect() as conn:
        ctx = MigrationContext.configure(
            conn,
            opts={
                "version_table": OWN_VERSION_TABLE,
                "compare_type": True,
                "compare_server_default": conn.dialect.name == "postgresql",
                "include_name": lambda name, type_, parent: type_ != "table" or name.startswith("expsync_"),
            },
        )
        diff = [d for d in compare_metadata(ctx, own_metadata) if not _is_version_table(d)]
    assert diff == []


def _is_version_table(diff: Any) -> bool:
    return isinstance(diff, tuple) and diff[0] == "remove_table" and diff[1].name == OWN_VERSION_TABLE


# --------------------------------------------------------------------------------------
# Behaviour (both backends)
# --------------------------------------------------------------------------------------


def _insert_experiment(conn: sa.Connection, **values: Any) -> uuid.UUID:
    values.setdefault("public_model_id", "partner/preview-foo")
    values.setdefault("name", "n")
    return conn.execute(sa.insert(experiment).values(**values).returning(experiment.c.id)).scalar_one()


def test_server_defaults_fill_a_minimal_row(db_engine: sa.Engine) -> None:
    with db_engine.begin() as conn:
        exp_id = _insert_experiment(conn)
        row = conn.execute(sa.select(experiment).where(experiment.c.id == exp_id)).one()
        var_id = conn.execute(
            sa.insert(variant).values(experiment_id=exp_id, label="a", weight=1).returning(variant.c.id)
        ).scalar_one()
        ver = conn.execute(
            sa.insert(version)
            .values(variant_id=var_id, upstream={"internal_id": "x"}, encrypted_api_key={"iv": "y"})
            .returning(version)
        ).one()
    assert isinstance(exp_id, uuid.UUID) and isinstance(var_id, uuid.UUID) and isinstance(ver.id, uuid.UUID)
    assert row.status == "draft" and row.is_archived is False
    assert row.created_at.tzinfo is not None and row.updated_at.tzinfo is not None
    assert row.started_at is None and row.ended_at is None
    assert ver.effective_at.tzinfo is not None
    assert ver.upstream == {"internal_id": "x"}


def test_refuses_active_and_archived(db_engine: sa.Engine) -> None:
    with pytest.raises(sa.exc.IntegrityError, match="model_experiment_active_not_archived|CHECK constraint"):
        with db_engine.begin() as conn:
            _insert_experiment(conn, status="active", is_archived=True)


def test_refuses_unknown_status(db_engine: sa.Engine) -> None:
    with pytest.raises(sa.exc.IntegrityError, match="model_experiment_status_valid|CHECK constraint"):
        with db_engine.begin() as conn:
            _insert_experiment(conn, status="running")


def test_paused_archived_is_allowed(db_engine: sa.Engine) -> None:
    with db_engine.begin() as conn:
        _insert_experiment(conn, status="paused", is_archived=True)


@pytest.mark.parametrize("second_status", ["active", "paused"])
def test_routing_unique_index_refuses_second_routing_experiment(db_engine: sa.Engine, second_status: str) -> None:
    with db_engine.begin() as conn:
        _insert_experiment(conn, status="active")
        # non-routing rows on the same public id are fine
        _insert_experiment(conn, status="draft")
        _insert_experiment(conn, status="completed")
    with pytest.raises(sa.exc.IntegrityError, match="UQ_model_experiment_public_model_id_routing|UNIQUE constraint"):
        with db_engine.begin() as conn:
            _insert_experiment(conn, status=second_status)


def test_variant_weight_must_be_positive(db_engine: sa.Engine) -> None:
    with db_engine.begin() as conn:
        exp_id = _insert_experiment(conn)
    with pytest.raises(sa.exc.IntegrityError, match="model_experiment_variant_weight_positive|CHECK constraint"):
        with db_engine.begin() as conn:
            conn.execute(sa.insert(variant).values(experiment_id=exp_id, label="a", weight=0))


def test_variant_label_unique_within_experiment(db_engine: sa.Engine) -> None:
    with db_engine.begin() as conn:
        exp_id = _insert_experiment(conn)
        conn.execute(sa.insert(variant).values(experiment_id=exp_id, label="a", weight=1))
    with pytest.raises(sa.exc.IntegrityError, match="UQ_model_experiment_variant_experiment_label|UNIQUE constraint"):
        with db_engine.begin() as conn:
            conn.execute(sa.insert(variant).values(experiment_id=exp_id, label="a", weight=2))


def test_deleting_experiment_cascades_to_variants_and_versions(db_engine: sa.Engine) -> None:
    with db_engine.begin() as conn:
        exp_id = _insert_experiment(conn)
        var_id = conn.execute(
            sa.insert(variant).values(experiment_id=exp_id, label="a", weight=1).returning(variant.c.id)
        ).scalar_one()
        conn.execute(sa.insert(version).values(variant_id=var_id, upstream={}, encrypted_api_key={}))
        conn.execute(sa.delete(experiment).where(experiment.c.id == exp_id))
        assert conn.execute(sa.select(sa.func.count()).select_from(variant)).scalar_one() == 0
        assert conn.execute(sa.select(sa.func.count()).select_from(version)).scalar_one() == 0


def test_foreign_keys_are_enforced(db_engine: sa.Engine) -> None:
    with pytest.raises(sa.exc.IntegrityError):
        with db_engine.begin() as conn:
            conn.execute(sa.insert(variant).values(experiment_id=uuid.uuid4(), label="a", weight=1))
