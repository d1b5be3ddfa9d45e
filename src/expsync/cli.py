"""Command line: parse flags -> run stages -> render -> exit code. Nothing else lives here.

This is the one place that reads ``os.environ`` and the only boundary that turns exceptions
into exit codes (spec §7): 0 ok, 1 unexpected, 2 changes (--detailed-exitcode), 3 invalid
input, 4 refused, 5 stale/lock/conflict, 6 cache pending.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import click

from expsync import __version__
from expsync.diagnostics import Diagnostic, has_errors
from expsync.errors import ExpsyncError
from expsync.render import diagnostics as render_diags
from expsync.spec.loader import LoadOptions, discover, load_desired
from expsync.spec.schema import json_schema
from expsync.spec.yamlload import DEFAULT_MAX_FILE_SIZE

EXIT_OK, EXIT_ERROR, EXIT_CHANGES, EXIT_INVALID, EXIT_REFUSED, EXIT_CONFLICT, EXIT_CACHE = range(7)

F = TypeVar("F", bound=Callable[..., Any])


def _in_github() -> bool:
    return os.environ.get("GITHUB_ACTIONS") == "true"


def emit_diagnostics(diags: Sequence[Diagnostic], *, err: bool = True) -> None:
    """Print diagnostics (to stderr by default) and, in GitHub Actions, annotations on stdout."""
    if not diags:
        return
    click.echo(render_diags.render_text(diags), err=err)
    if _in_github():
        click.echo(render_diags.github_annotations(diags))


def paths_argument(f: F) -> F:
    f = click.argument("paths", nargs=-1, type=click.Path())(f)
    f = click.option(
        "--max-file-size",
        type=click.IntRange(min=1),
        default=DEFAULT_MAX_FILE_SIZE,
        show_default=True,
        help="Refuse YAML files larger than this many bytes.",
    )(f)
    return f


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="expsync")
@click.option("--debug", is_flag=True, envvar="EXPSYNC_DEBUG", help="Show tracebacks of unexpected errors.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Declarative GitOps reconciler for model experiments."""
    ctx.obj = {"debug": debug}


@cli.command()
@paths_argument
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def validate(paths: tuple[str, ...], max_file_size: int, fmt: str) -> None:
    """Check experiment files offline (default: experiments/). Exit 0 valid, 3 invalid."""
    files, _ = discover(paths)
    desired, diags = load_desired(paths, LoadOptions(max_file_size=max_file_size))
    if fmt == "json":
        click.echo(render_diags.render_validate_json(diags, files=len(files), experiments=len(desired.experiments)))
        if _in_github():
            click.echo(render_diags.github_annotations(diags))
    else:
        emit_diagnostics(diags)
        if not has_errors(diags):
            click.echo(f"{len(desired.experiments)} experiment(s) in {len(files)} file(s) are valid.")
        else:
            click.echo(render_diags.summary_line(diags), err=True)
    sys.exit(EXIT_INVALID if has_errors(diags) else EXIT_OK)


@cli.command()
def schema() -> None:
    """Print the JSON Schema of an experiment document (draft-07)."""
    click.echo(json.dumps(json_schema(), indent=2, ensure_ascii=False))


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point: every exception ends here, mapped to an exit code, never a raw traceback."""
    debug = "--debug" in (argv or sys.argv[1:]) or bool(os.environ.get("EXPSYNC_DEBUG"))
    try:
        cli.main(args=list(argv) if argv is not None else None, prog_name="expsync", standalone_mode=False)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.ClickException as e:
        e.show()
        sys.exit(EXIT_INVALID if e.exit_code == 2 else e.exit_code)
    except ExpsyncError as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(e.exit_code)
    except SystemExit:
        raise
    except KeyboardInterrupt:
        sys.exit(130)
    except BaseException as e:  # noqa: BLE001 - the one boundary for unexpected errors
        click.echo(f"error: an unexpected error occurred ({type(e).__name__})", err=True)
        if debug:
            traceback.print_exc()
        else:
            click.echo("run with --debug for details", err=True)
        sys.exit(EXIT_ERROR)


if __name__ == "__main__":  # pragma: no cover
    main()
