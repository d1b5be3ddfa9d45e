"""state stage: the database -> :class:`~expsync.model.ActualState`.

Modules:

* :mod:`~expsync.state.tables`: SQLAlchemy Core tables. ``app_metadata`` is the gateway's
  three ``model_experiment*`` tables exactly as spec §2.1 defines them; ``own_metadata``
  is expsync's ``expsync_*`` tables (created by the Alembic migrations in
  :mod:`expsync.migrations`, version table ``expsync_alembic_version``).
* :mod:`~expsync.state.db`: URL (``EXPSYNC_DATABASE_URL`` or the embedded SQLite file
  ``.expsync/expsync.db``), engine, transactions (``begin(engine, immediate=...,
  snapshot=...)``) and schema initialisation (``init_db``, ``ensure_initialized``).
* :mod:`~expsync.state.reader`: ``read_actual(conn, experiment_ids=, public_model_ids=,
  now=)`` in five set-based statements whatever the number of experiments.

Nothing here reads ``os.environ`` implicitly or holds a module-level engine: callers pass
the environment mapping and the connection.
"""

from expsync.state.db import (
    begin,
    database_url,
    ensure_initialized,
    init_db,
    make_engine,
    safe_url,
)
from expsync.state.reader import read_actual

__all__ = ["begin", "database_url", "ensure_initialized", "init_db", "make_engine", "read_actual", "safe_url"]
