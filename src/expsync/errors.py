"""Exceptions that mean "cannot continue", each carrying the process exit code.

Diagnostics about the user's input are *values* (see :mod:`expsync.diagnostics`), collected
and printed together; an exception from this tree is raised only when a stage or a command
cannot go on. ``cli.main`` is the one boundary that maps them to exit codes and prints them:
``error: <message>`` on stderr, or, when the error carries ``diagnostics``, those diagnostics
(the message is then only for logs). Messages must never contain a secret value: they are
printed verbatim (after the run's redactor).

Exit codes (README "Exit codes"; :class:`ExitCode` is the one table)::

    0 ok   1 unexpected / unreachable   2 changes (--detailed-exitcode)   3 invalid input
    4 refused   5 stale, lock timeout or conflict   6 applied, cache refresh pending
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from expsync.diagnostics import Diagnostic


class ExitCode(enum.IntEnum):
    """Process exit codes. A command returns one for an outcome it has fully reported (a plan
    with changes, a refused plan, invalid files in ``validate``); errors carry their own."""

    OK = 0
    ERROR = 1
    CHANGES = 2
    INVALID = 3
    REFUSED = 4
    CONFLICT = 5
    CACHE_PENDING = 6


class ExpsyncError(Exception):
    """Base class. ``exit_code`` is what the process exits with.

    ``diagnostics``: shown by the boundary instead of the message (e.g. E4xx for unresolvable
    secrets); ``summary_line``: also print the "N error(s), M warning(s)" line after them."""

    exit_code: ClassVar[int] = ExitCode.ERROR
    diagnostics: tuple[Diagnostic, ...] = ()
    summary_line: bool = False

    def __init__(self, message: str = "", *, diagnostics: Sequence[Diagnostic] = (),
                 summary_line: bool = False) -> None:
        super().__init__(message)
        if diagnostics:
            self.diagnostics = tuple(diagnostics)
        self.summary_line = summary_line


class ConfigError(ExpsyncError):
    """Bad configuration (environment variables, flags): exit 3 like other invalid input."""

    exit_code = ExitCode.INVALID


class InvalidInput(ExpsyncError):
    """The desired state cannot be loaded or validated, or a flag or path given is unusable."""

    exit_code = ExitCode.INVALID


class PlanRefused(ExpsyncError):
    """The plan breaks the state machine, edit rules, drift or ownership rules."""

    exit_code = ExitCode.REFUSED
    #: the refused plan (an ``expsync.plan.Plan``), when there is one: the boundary prints it
    #: as the command's output instead of the message, exactly as ``plan`` shows a refused plan
    plan: object = None


class StalePlan(ExpsyncError):
    """A saved plan no longer matches the desired or actual state."""

    exit_code = ExitCode.CONFLICT


class LockTimeout(ExpsyncError):
    """The apply lock could not be taken in time."""

    exit_code = ExitCode.CONFLICT


class ApplyConflict(ExpsyncError):
    """A concurrent writer won a race (e.g. the routing unique index)."""

    exit_code = ExitCode.CONFLICT


class CachePending(ExpsyncError):
    """The database change is committed but the Redis refresh did not finish."""

    exit_code = ExitCode.CACHE_PENDING


class DatabaseUnavailable(ExpsyncError):
    """The database cannot be reached (message carries the URL without password)."""

    exit_code = ExitCode.ERROR
