"""Exceptions that mean "cannot continue", each carrying the process exit code.

Diagnostics about the user's input are *values* (see :mod:`expsync.diagnostics`), collected
and printed together; an exception from this tree is raised only when a stage cannot go on.
``cli.main`` is the one boundary that maps them to exit codes. Messages must never contain a
secret value: they are printed verbatim.
"""

from __future__ import annotations

from typing import ClassVar


class ExpsyncError(Exception):
    """Base class. ``exit_code`` is what the process exits with."""

    exit_code: ClassVar[int] = 1


class ConfigError(ExpsyncError):
    """Bad configuration (environment variables, flags): exit 3 like other invalid input."""

    exit_code = 3


class InvalidInput(ExpsyncError):
    """The desired state cannot be loaded or validated."""

    exit_code = 3


class PlanRefused(ExpsyncError):
    """The plan breaks the state machine, edit rules, drift or ownership rules."""

    exit_code = 4


class StalePlan(ExpsyncError):
    """A saved plan no longer matches the desired or actual state."""

    exit_code = 5


class LockTimeout(ExpsyncError):
    """The apply lock could not be taken in time."""

    exit_code = 5


class ApplyConflict(ExpsyncError):
    """A concurrent writer won a race (e.g. the routing unique index)."""

    exit_code = 5


class CachePending(ExpsyncError):
    """The database change is committed but the Redis refresh did not finish."""

    exit_code = 6


class DatabaseUnavailable(ExpsyncError):
    """The database cannot be reached (message carries the URL without password)."""

    exit_code = 1
