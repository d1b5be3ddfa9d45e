"""One boundary: commands raise typed errors (or return an exit code for an outcome they have
shown), ``cli.main`` maps them to the exit code and message; the environment is read once."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import pytest

from expsync import cli
from expsync.desired import schema as schema_module
from expsync.diagnostics import Diagnostic
from expsync.errors import (
    ApplyConflict,
    CachePending,
    ConfigError,
    DatabaseUnavailable,
    ExitCode,
    ExpsyncError,
    InvalidInput,
    LockTimeout,
    PlanRefused,
    StalePlan,
)
from expsync.profiles import NEWEST
from expsync.settings import Settings
from tests.cli_helpers import run_cli

CLI_SOURCE = Path(cli.__file__).read_text(encoding="utf-8")


@pytest.mark.parametrize(("error", "code"), [
    (ConfigError, 3), (InvalidInput, 3), (PlanRefused, 4), (StalePlan, 5), (LockTimeout, 5), (ApplyConflict, 5),
    (CachePending, 6), (DatabaseUnavailable, 1), (ExpsyncError, 1),
])
def test_each_error_maps_to_its_exit_code_and_message(error: type[ExpsyncError], code: int,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*_: object) -> dict:
        raise error("something specific went wrong")

    monkeypatch.setattr(schema_module, "json_schema", boom)
    r = run_cli(["schema", "--gateway-profile", NEWEST])
    assert r.code == code == error.exit_code
    assert r.err == "error: something specific went wrong\n" and r.out == ""


def test_an_error_with_diagnostics_shows_them_instead_of_its_message(monkeypatch: pytest.MonkeyPatch) -> None:
    diag = Diagnostic.make("E402", "environment variable FOO is not set")

    def boom(*_: object) -> dict:
        raise InvalidInput("not shown", diagnostics=[diag], summary_line=True)

    monkeypatch.setattr(schema_module, "json_schema", boom)
    r = run_cli(["schema", "--gateway-profile", NEWEST])
    assert r.code == 3
    assert "E402" in r.err and "environment variable FOO is not set" in r.err and "not shown" not in r.err
    assert "1 error" in r.err  # the summary line


def test_unexpected_errors_are_exit_1_without_a_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*_: object) -> dict:
        raise KeyError("internal")

    monkeypatch.setattr(schema_module, "json_schema", boom)
    r = run_cli(["schema", "--gateway-profile", NEWEST])
    assert r.code == 1 and "an unexpected error occurred (KeyError)" in r.err and "Traceback" not in r.all


def _functions_calling(source: str, dotted: str) -> set[str]:
    tree = ast.parse(source)
    out = set()
    for fn in ast.walk(tree):
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for node in ast.walk(fn):
                if isinstance(node, ast.Attribute) and ast.unparse(node) == dotted:
                    out.add(fn.name)
    return out


def test_only_main_exits_and_only_main_reads_the_environment() -> None:
    assert _functions_calling(CLI_SOURCE, "sys.exit") == {"main"}
    # `cli` reads it only when invoked without main (tests calling the click group directly)
    assert _functions_calling(CLI_SOURCE, "os.environ") <= {"main", "cli"}


def test_no_sql_in_the_command_line() -> None:
    tree = ast.parse(CLI_SOURCE)
    sql = [ast.unparse(n) for n in ast.walk(tree) if isinstance(n, ast.Attribute)
           and (n.attr in ("text", "exec_driver_sql", "execute") or ast.unparse(n.value) in ("sa", "sqlalchemy"))]
    sqlalchemy_imports = [ast.unparse(n) for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))
                          and "sqlalchemy" in ast.unparse(n)]
    # (the one sqlalchemy import is the Engine type, under TYPE_CHECKING)
    assert sql == [] and sqlalchemy_imports == ["from sqlalchemy.engine import Engine"]


def test_no_module_below_the_cli_reads_the_environment() -> None:
    src = Path(cli.__file__).parent
    readers = sorted(str(p.relative_to(src)) for p in src.rglob("*.py") if p.name != "cli.py"
                     and any(ast.unparse(n) in ("os.environ", "os.getenv", "os.environb")
                             for n in ast.walk(ast.parse(p.read_text())) if isinstance(n, ast.Attribute)))
    assert readers == []


def test_settings_are_read_once_and_frozen(tmp_path: Path) -> None:
    env = {"EXPSYNC_REDIS_URL": "redis://h/1", "EXPSYNC_REDIS_KEY_PREFIX": "p:", "EXPSYNC_ACTOR": "ci",
           "GITHUB_SHA": "abc", "GITHUB_ACTIONS": "true", "NO_COLOR": "", "EXPSYNC_DEBUG": "1",
           "GITHUB_OUTPUT": str(tmp_path / "o"), "BYOK_ENCRYPTION_KEY": "k"}
    s = Settings.from_environ(env, cwd=tmp_path)
    env["EXPSYNC_ACTOR"] = "changed later"
    assert (s.redis_url, s.redis_prefix, s.actor, s.revision) == ("redis://h/1", "p:", "ci", "abc")
    assert s.github_actions and s.no_color and s.debug and s.github_output == tmp_path / "o"
    assert s.byok_value == "k" and s.environ["EXPSYNC_ACTOR"] == "ci" and s.cwd == tmp_path
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.actor = "x"  # type: ignore[misc]
    with pytest.raises(TypeError):
        s.environ["X"] = "y"  # type: ignore[index]
    empty = Settings.from_environ({}, cwd=tmp_path)
    assert (empty.redis_url, empty.actor, empty.github_actions, empty.no_color, empty.debug) == (None, None, False, False, False)


def test_exit_codes_table() -> None:
    assert [int(c) for c in ExitCode] == list(range(7))
