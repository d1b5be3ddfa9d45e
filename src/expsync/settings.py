"""Settings: the process environment, read once per run into one frozen object.

``Settings.from_environ(os.environ)`` is called by the CLI boundary (``expsync.cli.main``)
and nowhere else; every stage below receives the object (or the values it needs) as a
parameter. Nothing in this module imports a database, cache, crypto or secret-store library,
so building it costs nothing on ``expsync --version``.

To add a setting: add a field here and one line in :meth:`Settings.from_environ` (the one
place that knows its variable name); list the variable in README "Configuration".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import field
from types import MappingProxyType
from typing import TYPE_CHECKING, Final

from expsync.records import dataclass

if TYPE_CHECKING:
    from pathlib import Path

    from expsync.profiles import GatewayProfile

#: the key that encrypts api keys at rest (the gateway's name for it; parsed by expsync.crypto)
BYOK_ENV_VAR: Final = "BYOK_ENCRYPTION_KEY"


def _empty() -> Mapping[str, str]:
    return MappingProxyType({})


def _cwd() -> Path:
    from pathlib import Path  # not at import time: `expsync --version` does not need pathlib

    return Path.cwd()


def _path(value: str | None) -> Path | None:
    from pathlib import Path

    return Path(value) if value else None


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    """Configuration for one run. Frozen: a stage cannot change what another one sees."""

    #: the whole environment, read-only: secret resolvers look up ``env:NAME`` references in it
    environ: Mapping[str, str] = field(default_factory=_empty)
    #: the working directory relative paths (``file:``, the embedded database) resolve against
    cwd: Path = field(default_factory=_cwd)
    #: ``EXPSYNC_DATABASE_URL`` as given (``None``: the embedded SQLite default)
    database_url: str | None = None
    #: ``EXPSYNC_REDIS_URL`` (``None``: no cache refresh)
    redis_url: str | None = None
    #: ``EXPSYNC_REDIS_KEY_PREFIX``
    redis_prefix: str = ""
    #: ``EXPSYNC_ACTOR`` (or ``apply --actor``): written to ``created_by*`` and the audit row
    actor: str | None = None
    #: ``GITHUB_SHA`` (or ``apply --revision``): recorded in the audit row
    revision: str | None = None
    #: ``EXPSYNC_DEBUG``: tracebacks of unexpected errors (also ``--debug``)
    debug: bool = False
    #: ``GITHUB_ACTIONS=true``: workflow annotations, masks, step outputs
    github_actions: bool = False
    #: ``GITHUB_OUTPUT`` / ``GITHUB_STEP_SUMMARY``: files a GitHub step appends to
    github_output: Path | None = None
    github_step_summary: Path | None = None
    #: ``NO_COLOR`` present (https://no-color.org): never colour the text plan
    no_color: bool = False
    #: ``plan``/``apply --allow-empty``: a plan may remove every managed experiment (else E504)
    allow_empty: bool = False
    #: the gateway profile of the run (``expsync.config``: flag, ``EXPSYNC_GATEWAY_PROFILE``,
    #: ``expsync.toml``, or detected); None: the database has no ``model_experiment.metadata``
    #: to read (library callers on an older gateway's tables). Set by the command.
    profile: GatewayProfile | None = None

    @classmethod
    def from_environ(cls, environ: Mapping[str, str], *, cwd: Path | None = None) -> Settings:
        """The one reading of the environment (a copy is kept: later changes do not leak in)."""
        env = MappingProxyType(dict(environ))
        return cls(
            environ=env,
            cwd=cwd if cwd is not None else _cwd(),
            database_url=env.get("EXPSYNC_DATABASE_URL") or None,
            redis_url=env.get("EXPSYNC_REDIS_URL") or None,
            redis_prefix=env.get("EXPSYNC_REDIS_KEY_PREFIX", ""),
            actor=env.get("EXPSYNC_ACTOR") or None,
            revision=env.get("GITHUB_SHA") or None,
            debug=bool(env.get("EXPSYNC_DEBUG")),
            github_actions=env.get("GITHUB_ACTIONS") == "true",
            github_output=_path(env.get("GITHUB_OUTPUT")),
            github_step_summary=_path(env.get("GITHUB_STEP_SUMMARY")),
            no_color="NO_COLOR" in env,
        )

    @property
    def with_metadata(self) -> bool:
        return self.profile is not None and self.profile.has_metadata

    @property
    def byok_value(self) -> str | None:
        """``BYOK_ENCRYPTION_KEY`` as given (parsed by :func:`expsync.crypto.load_key`)."""
        return self.environ.get(BYOK_ENV_VAR)
