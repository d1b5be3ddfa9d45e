"""Alembic environment for expsync's own tables (``expsync_*``).

Run through :func:`expsync.state.db.upgrade_own_tables`, which passes an open connection in
``config.attributes["connection"]``. The version table is ``expsync_alembic_version`` so a host
application's ``alembic_version`` (the gateway's own migrations) is never read or written.
Only ``expsync_*`` tables belong to these migrations; the gateway's tables are not managed here.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import engine_from_config, pool
from sqlalchemy.engine import Connection

from expsync.state.tables import own_metadata

VERSION_TABLE = "expsync_alembic_version"

config = context.config


def _include_name(name: str | None, type_: str, parent_names: object) -> bool:
    # Autogenerate must never propose changes to the host's tables.
    if type_ == "table":
        return name is not None and name.startswith("expsync_")
    return True


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=own_metadata,
        version_table=VERSION_TABLE,
        include_name=_include_name,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    # Development use (``alembic revision --autogenerate``) with sqlalchemy.url set.
    engine = engine_from_config(
        config.get_section(config.config_ini_section) or {},
        prefix="sqlalchemy.",
        poolclass=pool.NullPool,
    )
    with engine.connect() as conn:
        _run(conn)


if context.is_offline_mode():
    raise RuntimeError("expsync migrations run online only (pass a connection)")
run_migrations_online()
