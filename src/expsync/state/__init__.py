"""state stage: the database -> :class:`~expsync.model.ActualState`.

Modules:

* :mod:`~expsync.state.tables`: SQLAlchemy Core tables. ``app_metadata`` is the gateway's
  three ``model_experiment*`` tables exactly as spec §2.1 defines them; ``own_metadata``
  is expsync's ``expsync_*`` tables (created by the Alembic migrations in
  :mod:`expsync.migrations`, version table ``expsync_alembic_version``).
* :mod:`~expsync.state.location`: which database (``EXPSYNC_DATABASE_URL`` or the embedded
  SQLite file ``.expsync/expsync.db``).
* :mod:`~expsync.state.db`: engine, transactions (``begin(engine, immediate=...,
  snapshot=...)``) and schema initialisation (``init_db``, ``ensure_initialized``).
* :mod:`~expsync.state.connection`: the connection the read side takes - a SQLAlchemy one, or
  a bare psycopg one (``plan`` on Postgres, which then never imports SQLAlchemy).
* :mod:`~expsync.state.catalog`: are the tables there, which profile fits (one question each).
* :mod:`~expsync.state.reader`: ``read_actual(conn, experiment_ids=, public_model_ids=,
  now=)`` in five set-based statements whatever the number of experiments
  (:mod:`~expsync.state.core_read`: the same with SQLAlchemy Core, for SQLite).
* :mod:`~expsync.state.jsonvalues`: JSON columns as Python values (orjson, exact fallback).

Nothing here reads ``os.environ`` implicitly or holds a module-level engine: callers pass
the environment mapping and the connection. The names below are imported on first use, so
importing a module of this package does not import SQLAlchemy unless that module does.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["begin", "database_url", "ensure_initialized", "init_db", "make_engine", "read_actual", "safe_url"]

_HOME = {"begin": "db", "database_url": "location", "ensure_initialized": "db", "init_db": "db",
         "make_engine": "db", "read_actual": "reader", "safe_url": "db"}


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_HOME[name]}"), name)
