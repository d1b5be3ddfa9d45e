"""The repository's expsync configuration file and the choice of gateway profile.

``expsync.toml`` sits at the root of the repository that holds ``experiments/`` (found from the
working directory upwards, stopping at the directory that holds ``.git``), so offline commands
(``validate``, a pre-commit hook) know the gateway profile without a database::

    # expsync.toml
    gateway_profile = "2026-06"

The profile of a run comes from, in this order: ``--gateway-profile``, the environment variable
``EXPSYNC_GATEWAY_PROFILE``, the configuration file. Without any, commands that read the
database detect it (:func:`profile_for_database`), and offline commands use the newest profile;
both say so on stderr. Callers pass the environment and working directory explicitly.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Final

from expsync.errors import ConfigError
from expsync.profiles import NEWEST, PROFILES, GatewayProfile, ProfileChoice
from expsync.records import dataclass

CONFIG_FILE: Final = "expsync.toml"
ENV_PROFILE: Final = "EXPSYNC_GATEWAY_PROFILE"
#: keys the configuration file may hold (anything else is a typo: refused, exit 3)
KNOWN_KEYS: Final = frozenset({"gateway_profile"})
#: the configuration holds one setting: anything larger is not one
MAX_CONFIG_BYTES: Final = 64 * 1024

__all__ = [
    "CONFIG_FILE",
    "ENV_PROFILE",
    "Config",
    "ProfileSelection",
    "find_config",
    "load_config",
    "profile_for_database",
    "select_profile",
]


@dataclass(frozen=True, slots=True)
class Config:
    """What the configuration file says (``path`` None: there is none)."""

    path: Path | None = None
    gateway_profile: str | None = None


@dataclass(frozen=True, slots=True)
class ProfileSelection:
    """The gateway profile of a run and how it was chosen."""

    profile: GatewayProfile
    choice: ProfileChoice
    #: where it came from, for messages (the file, the variable, the flag)
    origin: str

    @property
    def note(self) -> str:
        """The one line said on stderr when the profile was not chosen explicitly."""
        if self.choice is ProfileChoice.DETECTED:
            return (f"gateway profile {self.profile.name} (detected from the database: {self.origin}); "
                    f"set it with --gateway-profile, {ENV_PROFILE} or {CONFIG_FILE}")
        return (f"gateway profile {self.profile.name} (no profile configured: using the newest); "
                f"set it with --gateway-profile, {ENV_PROFILE} or {CONFIG_FILE}")


def find_config(cwd: Path) -> Path | None:
    """``expsync.toml`` in ``cwd`` or a parent, up to the repository root (the folder with ``.git``)."""
    for d in (cwd, *cwd.parents):
        f = d / CONFIG_FILE
        if f.is_file():
            return f
        if f.exists() or f.is_symlink():
            # a folder, FIFO, device or broken link by that name: never skipped (a skipped
            # file would silently change the profile), never read (a FIFO would block)
            raise ConfigError(f"{f}: not a regular file; {CONFIG_FILE} must be a TOML file")
        if (d / ".git").exists():
            return None
    return None


def load_config(cwd: Path) -> Config:
    path = find_config(cwd)
    if path is None:
        return Config()
    import tomllib  # only where a configuration file exists

    try:
        with path.open("rb") as f:
            raw = f.read(MAX_CONFIG_BYTES + 1)
        if len(raw) > MAX_CONFIG_BYTES:
            raise ConfigError(f"{path}: larger than {MAX_CONFIG_BYTES // 1024} KiB, not an expsync configuration")
        data = tomllib.loads(raw.decode("utf-8"))
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot be read ({type(e).__name__})") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML ({e})") from None
    except RecursionError:
        raise ConfigError(f"{path}: not valid TOML (nested too deeply)") from None
    unknown = sorted(set(data) - KNOWN_KEYS)
    if unknown:
        raise ConfigError(f"{path}: unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(KNOWN_KEYS))}")
    profile = data.get("gateway_profile")
    if profile is not None and not isinstance(profile, str):
        raise ConfigError(f"{path}: gateway_profile must be a string, one of {', '.join(PROFILES)}")
    return Config(path, profile)


def _named(name: str, origin: str) -> GatewayProfile:
    try:
        return PROFILES[name]
    except KeyError:
        raise ConfigError(f"unknown gateway profile {name!r} ({origin}): use one of {', '.join(PROFILES)}") from None


def select_profile(flag: str | None, environ: Mapping[str, str], cwd: Path) -> ProfileSelection | None:
    """The explicitly configured profile (flag, then environment, then file), or None."""
    if flag:
        return ProfileSelection(_named(flag, "--gateway-profile"), ProfileChoice.FLAG, "--gateway-profile")
    if environ.get(ENV_PROFILE):
        return ProfileSelection(_named(environ[ENV_PROFILE], ENV_PROFILE), ProfileChoice.ENV, ENV_PROFILE)
    cfg = load_config(cwd)
    if cfg.gateway_profile is not None:
        origin = str(cfg.path)
        return ProfileSelection(_named(cfg.gateway_profile, origin), ProfileChoice.CONFIG, origin)
    return None


def offline_profile(selected: ProfileSelection | None) -> ProfileSelection:
    """For commands without a database: the configured profile, else the newest."""
    return selected or ProfileSelection(PROFILES[NEWEST], ProfileChoice.DEFAULT, "newest")


def profile_for_database(selected: ProfileSelection | None, has_metadata_column: bool) -> ProfileSelection:
    """The profile of a run against a database with (or without) ``model_experiment.metadata``.

    Only impossible pairs are refused (a profile that needs the column on a database without
    it): the column appeared before the upstream schema changed, so its presence cannot prove
    2026-06 (sheet §9); detection is the fallback when nothing is configured."""
    if selected is not None:
        if selected.profile.has_metadata and not has_metadata_column:
            raise ConfigError(
                f"gateway profile {selected.profile.name} ({selected.origin}) needs the column "
                "model_experiment.metadata, which this database does not have: the gateway is on an older "
                "version (use a profile it runs, e.g. 2026-05) or its migrations have not run")
        return selected
    with_column = [p for p in PROFILES.values() if p.has_metadata == has_metadata_column]
    # the newest profile of the matching shape (profiles are listed oldest first)
    detected = with_column[-1]
    origin = "model_experiment.metadata " + ("present" if has_metadata_column else "absent")
    return ProfileSelection(detected, ProfileChoice.DETECTED, origin)
