"""Which database a run uses: ``EXPSYNC_DATABASE_URL``, or the embedded SQLite file.

Plain string work (no database library), so a command can choose how to connect - a bare
psycopg connection for ``plan`` on Postgres (:mod:`~expsync.state.connection`), an engine
otherwise (:mod:`~expsync.state.db`) - before importing either.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Final

__all__ = ["DEFAULT_SQLITE_PATH", "ENV_DATABASE_URL", "database_url", "is_embedded_default"]

#: The embedded default database, relative to the working directory (created on first use).
DEFAULT_SQLITE_PATH: Final = ".expsync/expsync.db"
ENV_DATABASE_URL: Final = "EXPSYNC_DATABASE_URL"


def database_url(environ: Mapping[str, str], *, cwd: Path | None = None) -> str:
    """``EXPSYNC_DATABASE_URL`` (``postgres://`` and ``postgresql://`` mean psycopg 3), or
    the embedded SQLite file :data:`DEFAULT_SQLITE_PATH` under ``cwd`` (default: the
    process's working directory)."""
    raw = (environ.get(ENV_DATABASE_URL) or "").strip()
    if not raw:
        base = cwd if cwd is not None else Path.cwd()
        return f"sqlite:///{(base / DEFAULT_SQLITE_PATH).resolve()}"
    for scheme in ("postgres://", "postgresql://"):
        if raw.startswith(scheme):
            return "postgresql+psycopg://" + raw[len(scheme) :]
    return raw


def is_embedded_default(url: str, *, cwd: Path | None = None) -> bool:
    """Whether ``url`` is the embedded default that :func:`database_url` falls back to."""
    return url == database_url({}, cwd=cwd)
