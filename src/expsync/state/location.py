"""Which database a run uses: ``EXPSYNC_DATABASE_URL``, or the embedded SQLite file.

Plain string work (no database library), so a command can choose how to connect - a bare
psycopg connection for ``plan`` on Postgres (:mod:`~expsync.state.connection`), an engine
otherwise (:mod:`~expsync.state.db`) - before importing either. Both read a URL with
:data:`URL_PATTERN`, SQLAlchemy's own, and both get it from :func:`database_url`, which refuses
a URL that pattern would read a password fragment out of (:func:`check_userinfo`).
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Mapping
from pathlib import Path
from typing import Final

from expsync.errors import ConfigError

__all__ = ["DEFAULT_SQLITE_PATH", "ENV_DATABASE_URL", "URL_PATTERN", "check_userinfo", "database_url",
           "is_embedded_default"]

#: The embedded default database, relative to the working directory (created on first use).
DEFAULT_SQLITE_PATH: Final = ".expsync/expsync.db"
ENV_DATABASE_URL: Final = "EXPSYNC_DATABASE_URL"

#: SQLAlchemy's URL pattern (``sqlalchemy.engine.url._parse_url``, applied with ``match``), so
#: every reading of a database URL in expsync agrees with the engine's
URL_PATTERN: Final = re.compile(
    r"""
        (?P<name>[\w\+]+)://
        (?:
            (?P<username>[^:/]*)
            (?::(?P<password>[^@]*))?
        @)?
        (?:
            (?:
                \[(?P<ipv6host>[^/\?]+)\] |
                (?P<ipv4host>[^/:\?]+)
            )?
            (?::(?P<port>[^/\?]*))?
        )?
        (?:/(?P<database>[^\?]*))?
        (?:\?(?P<query>.*))?
    """,
    re.X,
)


def database_url(environ: Mapping[str, str], *, cwd: Path | None = None) -> str:
    """``EXPSYNC_DATABASE_URL`` (``postgres://`` and ``postgresql://`` mean psycopg 3), or
    the embedded SQLite file :data:`DEFAULT_SQLITE_PATH` under ``cwd`` (default: the
    process's working directory). Raises :class:`~expsync.errors.ConfigError` for a URL
    :func:`check_userinfo` refuses."""
    raw = (environ.get(ENV_DATABASE_URL) or "").strip()
    if not raw:
        base = cwd if cwd is not None else Path.cwd()
        # percent-encoded (SQLAlchemy decodes the database part): a '?' or '%' in the working
        # directory's path must not end the path or decode into another folder
        return f"sqlite:///{urllib.parse.quote(str((base / DEFAULT_SQLITE_PATH).resolve()), safe='/')}"
    for scheme in ("postgres://", "postgresql://"):
        if raw.startswith(scheme):
            raw = "postgresql+psycopg://" + raw[len(scheme) :]
            break
    check_userinfo(raw)
    return raw


def check_userinfo(url: str) -> None:
    """Refuse (:class:`~expsync.errors.ConfigError`, the URL never echoed) a URL with a
    password and an unescaped ``@`` after the one that ends it. :data:`URL_PATTERN` ends the
    password at its first ``@``, so a password holding one would lend its rest to the host
    (or port, or database) name - which a driver's "failed to resolve host" message then
    prints, and which the redactor, knowing only the whole password, cannot recognise."""
    # SQLAlchemy's reading is a prefix match (a line break ends its query early), and a search
    # finds what a match would when it starts at 0; a URL it cannot read at all connects nowhere
    m = URL_PATTERN.search(url)
    if m is None or m.start() != 0 or m["password"] is None:
        return
    if "@" in "".join(m[g] or "" for g in ("ipv6host", "ipv4host", "port", "database")):
        raise ConfigError(f"{ENV_DATABASE_URL}: the password (or user) contains '@': percent-encode it as %40 "
                          "(an '@' in the database name too)")


def is_embedded_default(url: str, *, cwd: Path | None = None) -> bool:
    """Whether ``url`` is the embedded default that :func:`database_url` falls back to."""
    return url == database_url({}, cwd=cwd)
