"""Command line: parse flags -> run stages -> render -> exit code. Nothing else lives here.

This is the one place that reads ``os.environ`` and the only boundary that turns exceptions
into exit codes (spec §7): 0 ok, 1 unexpected, 2 changes (--detailed-exitcode), 3 invalid
input, 4 refused, 5 stale/lock/conflict, 6 cache pending.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import sys
import re
import traceback
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

import click
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from expsync import __version__
from expsync.diagnostics import Diagnostic, has_errors
from expsync.model import DesiredState, Secret, SecretRef
from expsync.pipeline import Settings, check_initialized, compute_plan
from expsync import rules
from expsync.plan import Digests, Plan
from expsync.secrets import Redactor, resolve_all, uses_in
from expsync.state.db import begin, database_url, engine_from_environ, has_metadata_column, init_db, make_engine
from expsync.errors import CachePending, ExpsyncError
from expsync.render import diagnostics as render_diags
from expsync.desired.loader import LoadOptions, discover, load_desired
from expsync.desired.schema import json_schema
from expsync.config import ProfileSelection, offline_profile, profile_for_database, select_profile
from expsync.profiles import PROFILES
from expsync.desired.yamlload import DEFAULT_MAX_FILE_SIZE

EXIT_OK, EXIT_ERROR, EXIT_CHANGES, EXIT_INVALID, EXIT_REFUSED, EXIT_CONFLICT, EXIT_CACHE = range(7)

F = TypeVar("F", bound=Callable[..., Any])


def _in_github() -> bool:
    return os.environ.get("GITHUB_ACTIONS") == "true"


def emit_diagnostics(diags: Sequence[Diagnostic], *, err: bool = True) -> None:
    """Print diagnostics (to stderr by default) and, in GitHub Actions, workflow annotations
    (on stderr too: stdout carries only the requested output, e.g. JSON)."""
    if not diags:
        return
    click.echo(_redactor.redact(render_diags.render_text(diags)), err=err)
    if _in_github():
        click.echo(_redactor.redact(render_diags.github_annotations(diags)), err=True)


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


def profile_option(f: F) -> F:
    return click.option(
        "--gateway-profile",
        "gateway_profile",
        type=click.Choice(list(PROFILES)),
        default=None,
        help="Gateway version to validate against (else EXPSYNC_GATEWAY_PROFILE, expsync.toml, "
        "then detected from the database or, offline, the newest).",
    )(f)


def say_profile(sel: ProfileSelection) -> None:
    """One line on stderr when the profile was not chosen explicitly."""
    if not sel.choice.explicit:
        click.echo(sel.note, err=True)


def chosen_offline(flag: str | None) -> ProfileSelection:
    sel = offline_profile(select_profile(flag, os.environ, Path.cwd()))
    say_profile(sel)
    return sel


def chosen_for_database(engine: Engine, selected: ProfileSelection | None) -> ProfileSelection:
    """The run's profile against this database (exit 3 for an impossible pair). Said by the
    caller (after the GitHub mask lines, which must come first)."""
    with engine.connect() as conn:
        check_initialized(conn)
        has_column = has_metadata_column(conn)
    return profile_for_database(selected, has_column)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="expsync")
@click.option("--debug", is_flag=True, envvar="EXPSYNC_DEBUG", help="Show tracebacks of unexpected errors.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Declarative GitOps reconciler for model experiments."""
    global _redactor
    _redactor = Redactor()
    handler = logging.StreamHandler(sys.stderr)
    # on the handler, not a logger: records propagated from botocore/urllib3 pass through here
    handler.addFilter(_redactor.logging_filter())
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_expsync", False)]:
        root.removeHandler(old)
    handler._expsync = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if debug else logging.WARNING)
    ctx.obj = {"debug": debug, "redactor": _redactor}


#: the run's redactor: every resolved secret value is registered here before anything prints
_redactor: Redactor = Redactor()


def redactor() -> Redactor:
    return _redactor


@cli.command()
@paths_argument
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@profile_option
def validate(paths: tuple[str, ...], max_file_size: int, fmt: str, gateway_profile: str | None) -> None:
    """Check experiment files offline (default: experiments/). Exit 0 valid, 3 invalid."""
    profile = chosen_offline(gateway_profile).profile
    files, _ = discover(paths)
    desired, diags = load_desired(paths, LoadOptions(max_file_size=max_file_size, profile=profile.name))
    if fmt == "json":
        click.echo(render_diags.render_validate_json(diags, files=len(files), experiments=len(desired.experiments)))
        if _in_github():
            click.echo(_redactor.redact(render_diags.github_annotations(diags)), err=True)
    else:
        emit_diagnostics(diags)
        if not has_errors(diags):
            click.echo(f"{len(desired.experiments)} experiment(s) in {len(files)} file(s) are valid.")
        else:
            click.echo(render_diags.summary_line(diags), err=True)
    sys.exit(EXIT_INVALID if has_errors(diags) else EXIT_OK)


def settings_from_env() -> Settings:
    env = dict(os.environ)
    if env.get("EXPSYNC_REDIS_URL"):
        from expsync.cache.refresh import check_url

        check_url(env["EXPSYNC_REDIS_URL"])  # ConfigError (exit 3) before anything is written
    return Settings(
        environ=env,
        cwd=Path.cwd(),
        redis_url=env.get("EXPSYNC_REDIS_URL") or None,
        redis_prefix=env.get("EXPSYNC_REDIS_KEY_PREFIX", ""),
        actor=env.get("EXPSYNC_ACTOR") or None,
        revision=env.get("GITHUB_SHA") or None,
    )


def check_writable(path: str) -> None:
    """Refuse an output path that cannot be written before doing any work (exit 3)."""
    p = Path(path)
    parent = p.parent if str(p.parent) else Path(".")
    ok = parent.is_dir() and os.access(parent, os.W_OK) and (not p.exists() or (p.is_file() and os.access(p, os.W_OK)))
    if not ok:
        click.echo(f"error: cannot write {path}: not a writable file in an existing directory", err=True)
        sys.exit(EXIT_INVALID)


def use_color() -> bool:
    return sys.stdout.isatty() and "NO_COLOR" not in os.environ


def load_or_exit(paths: Sequence[str], max_file_size: int, sel: ProfileSelection) -> DesiredState:
    desired, diags = load_desired(paths, LoadOptions(max_file_size=max_file_size, profile=sel.profile.name))
    if has_errors(diags):
        say_profile(sel)  # the errors depend on it
        emit_diagnostics(diags)
        click.echo(render_diags.summary_line(diags), err=True)
        sys.exit(EXIT_INVALID)
    return desired


def resolve_or_exit(desired: DesiredState, settings: Settings, redactor: Redactor) -> dict[SecretRef, Secret]:
    uses = [u for u in uses_in(desired) if rules.keys_matter(desired.experiments[u.experiment].status)]
    secrets, diags = resolve_all(uses, environ=settings.environ, cwd=settings.cwd, redactor=redactor)
    if _in_github():
        # before anything else is printed, so the runner masks the values in the whole log
        for line in redactor.github_mask_lines():
            # stderr: the runner reads workflow commands from both streams, and stdout stays
            # the plan alone (a markdown comment or JSON document must never carry a value)
            click.echo(line, err=True)
    if has_errors(diags):
        emit_diagnostics(diags)
        click.echo(render_diags.summary_line(diags), err=True)
        sys.exit(EXIT_INVALID)
    return secrets


def render_plan(plan: Plan, fmt: str, *, color: bool = False) -> str:
    from expsync.render import json as render_json
    from expsync.render import markdown as render_markdown
    from expsync.render import text as render_text

    if fmt == "json":
        return render_json.render_json(plan)
    if fmt == "markdown":
        return render_markdown.render_markdown(plan)
    return render_text.render_text(plan, color=color)


def write_github_outputs(plan: Plan, redactor: Redactor) -> None:
    out = os.environ.get("GITHUB_OUTPUT")
    if out:
        from expsync.render import summarize

        lines = [f"has_changes={'true' if plan.has_changes else 'false'}", f"refused={'true' if plan.refused else 'false'}"]
        lines += [f"{k}={v}" for k, v in summarize(plan).as_dict().items()]
        with open(out, "a", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        with open(summary, "a", encoding="utf-8") as f:
            f.write(redactor.redact(render_plan(plan, "markdown")) + "\n")


@cli.command("plan")
@paths_argument
@click.option("--format", "fmt", type=click.Choice(["text", "json", "markdown"]), default="text", show_default=True)
@click.option("--out", "out_file", type=click.Path(dir_okay=False), help="Save the plan (JSON) for `apply --plan`.")
@click.option("--detailed-exitcode", is_flag=True, help="Exit 2 when the plan has changes.")
@click.option("--no-secrets", is_flag=True, help="Do not resolve secrets (fork PRs); api keys show as unknown.")
@profile_option
def plan_cmd(paths: tuple[str, ...], max_file_size: int, fmt: str, out_file: str | None, detailed_exitcode: bool,
             no_secrets: bool, gateway_profile: str | None) -> None:
    """Show what apply would change, checked against the state machine. Writes nothing."""
    settings = settings_from_env()
    if out_file:
        check_writable(out_file)
    selected = select_profile(gateway_profile, settings.environ, settings.cwd)
    # a configured profile is known without the database: bad YAML is reported before connecting
    early = load_or_exit(paths, max_file_size, selected) if selected is not None else None
    engine = engine_from_environ(settings.environ, cwd=settings.cwd,
                                 with_metadata=offline_profile(selected).profile.has_metadata)
    try:
        chosen = chosen_for_database(engine, selected)
        settings = dataclasses.replace(settings, profile=chosen.profile)
        desired = early if early is not None else load_or_exit(paths, max_file_size, chosen)
        red = redactor()
        secrets = None if no_secrets else resolve_or_exit(desired, settings, red)
        say_profile(chosen)
        drain_leftover(engine, settings)
        with begin(engine, snapshot=True) as conn:
            check_initialized(conn)
            computed = compute_plan(conn, desired, secrets, settings, now=datetime.now(timezone.utc))
            conn.rollback()  # plan never writes
    finally:
        engine.dispose()
    if computed.key_diagnostics:
        emit_diagnostics(computed.key_diagnostics)
        if has_errors(computed.key_diagnostics):
            sys.exit(EXIT_INVALID)
    plan = computed.plan
    click.echo(red.redact(render_plan(plan, fmt, color=use_color() and fmt == "text")))
    if _in_github():
        click.echo(red.redact(render_diags.github_annotations(plan.diagnostics)), err=True)
        write_github_outputs(plan, red)
    if out_file:
        try:
            Path(out_file).write_text(red.redact(render_plan(plan, "json")) + "\n", encoding="utf-8")
        except OSError as e:
            click.echo(f"error: cannot write {out_file}: {e.strerror}", err=True)
            sys.exit(EXIT_INVALID)
    if plan.refused:
        sys.exit(EXIT_REFUSED)
    sys.exit(EXIT_CHANGES if detailed_exitcode and plan.has_changes else EXIT_OK)


def drain_leftover(engine: Engine, settings: Settings) -> None:
    """Finish a cache refresh an earlier run left pending (spec §6). Never fatal here."""
    if not settings.redis_url:
        return
    from expsync.cache.refresh import connect, drain

    try:
        with engine.connect() as conn:
            pending: int = conn.execute(sa.text("SELECT count(*) FROM expsync_cache_outbox")).scalar_one()
        if pending:
            drain(engine, connect(settings.redis_url), prefix=settings.redis_prefix)
            click.echo(f"finished a pending cache refresh ({pending} key(s) from an earlier run)", err=True)
    except ExpsyncError as e:  # Redis down or unreachable: the command goes on, the outbox stays
        click.echo(f"warning: {_redactor.redact(str(e))}", err=True)
    except sa.exc.SQLAlchemyError:
        pass  # uninitialised database: the command itself reports it


def refresh_after_commit(engine: Engine, settings: Settings) -> None:
    if not settings.redis_url:
        click.echo("cache refresh skipped: EXPSYNC_REDIS_URL is not set", err=True)
        return
    from expsync.cache.refresh import connect, drain

    result = drain(engine, connect(settings.redis_url), prefix=settings.redis_prefix)
    click.echo(f"cache refreshed: membership {result.membership}, {len(result.deleted_keys)} per-id key(s) deleted")


def _confirm_or_exit(plan: Plan, yes: bool) -> None:
    if yes:
        return
    if not sys.stdin.isatty():
        click.echo("error: apply needs --yes when not run on a terminal", err=True)
        sys.exit(EXIT_INVALID)
    click.echo(render_plan(plan, "text", color=use_color()))
    answer = click.prompt("Apply these changes? Only 'yes' will be accepted", default="", show_default=False)
    if answer != "yes":
        click.echo("Apply cancelled; nothing was changed.")
        sys.exit(EXIT_OK)


@cli.command("apply")
@paths_argument
@click.option("--plan", "plan_file", type=click.Path(exists=True, dir_okay=False), help="Apply a plan saved by `plan --out`.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation (needed when not on a terminal).")
@click.option("--actor", envvar="EXPSYNC_ACTOR", default=None, help="Written to created_by* and the audit row.")
@click.option("--revision", envvar="GITHUB_SHA", default=None, help="Git revision recorded in the audit row.")
@click.option("--lock-timeout", type=click.FloatRange(min=0.001, max=86400.0), default=30.0, show_default=True,
              callback=lambda ctx, param, v: _not_nan(v),
              help="Seconds to wait for the apply lock.")
@profile_option
def apply_cmd(paths: tuple[str, ...], max_file_size: int, plan_file: str | None, yes: bool, actor: str | None,
              revision: str | None, lock_timeout: float, gateway_profile: str | None) -> None:
    """Apply the YAML to the database in one transaction, then refresh the Redis cache."""
    from expsync.apply.run import KeyProblems, Refused, after_commit, apply

    settings = dataclasses.replace(settings_from_env(), actor=actor or None, revision=revision or None)
    if not yes and not sys.stdin.isatty():
        # unattended runs must say so explicitly, with or without a saved plan
        click.echo("error: apply needs --yes when not run on a terminal", err=True)
        sys.exit(EXIT_INVALID)
    selected = select_profile(gateway_profile, settings.environ, settings.cwd)
    # a configured profile is known without the database: bad YAML is reported before connecting
    early = load_or_exit(paths, max_file_size, selected) if selected is not None else None
    # on a terminal a saved plan is itself the reviewed confirmation (as in Terraform)
    expect = read_saved_digests(plan_file) if plan_file else None
    engine = engine_from_environ(settings.environ, cwd=settings.cwd,
                                 with_metadata=offline_profile(selected).profile.has_metadata)
    try:
        chosen = chosen_for_database(engine, selected)
        settings = dataclasses.replace(settings, profile=chosen.profile)
        desired = early if early is not None else load_or_exit(paths, max_file_size, chosen)
        red = redactor()
        secrets = resolve_or_exit(desired, settings, red)
        say_profile(chosen)
        drain_leftover(engine, settings)
        if expect is None and not yes:
            with begin(engine, snapshot=True) as conn:
                check_initialized(conn)
                shown = compute_plan(conn, desired, secrets, settings, now=datetime.now(timezone.utc)).plan
            if shown.has_changes and not shown.refused:
                _confirm_or_exit(shown, yes)
            # bound to what was shown (or not asked about, when there was nothing to confirm):
            # a state that changed meanwhile is stale (exit 5), never applied unconfirmed
            expect = shown.digests
        try:
            result = apply(engine, desired, secrets, settings, lock_timeout=lock_timeout, expect=expect)
        except KeyProblems as e:
            emit_diagnostics(e.diagnostics)
            sys.exit(EXIT_INVALID)
        except Refused as e:
            click.echo(red.redact(render_plan(e.plan, "text", color=use_color())))
            if _in_github():
                click.echo(red.redact(render_diags.github_annotations(e.plan.diagnostics)), err=True)
            sys.exit(EXIT_REFUSED)
        plan = result.plan
        with after_commit():  # committed: any failure from here on is exit 6
            if not plan.has_changes:
                click.echo("No changes. The database matches the YAML; nothing was applied.")
            else:
                click.echo(red.redact(render_plan(plan, "text", color=use_color())))
                click.echo(f"Applied in one transaction: {len(plan.ops)} operation(s), {result.statements} "
                           f"statement(s), {result.seconds:.2f}s.")
            if plan.gateway_changes or settings.redis_url:
                refresh_after_commit(engine, settings)
    finally:
        engine.dispose()


def _not_nan(value: float) -> float:
    if value != value:
        raise click.BadParameter("must be a number of seconds")
    return value


def read_saved_digests(path: str) -> Digests:
    from expsync.render.saved import applyable_digests, read_saved_plan

    return applyable_digests(read_saved_plan(path))  # exit 3 (not a plan file) or 5 (edited)


@cli.group()
def cache() -> None:
    """Redis cache maintenance."""


@cache.command("sync")
def cache_sync() -> None:
    """Recompute the membership key from the database and delete every routing per-id key."""
    from expsync.cache.refresh import connect, drain

    settings = settings_from_env()
    if not settings.redis_url:
        click.echo("error: EXPSYNC_REDIS_URL is not set", err=True)
        sys.exit(EXIT_INVALID)
    engine = engine_from_environ(settings.environ, cwd=settings.cwd)
    try:
        with engine.connect() as conn:
            check_initialized(conn)
        result = drain(engine, connect(settings.redis_url), prefix=settings.redis_prefix, full=True)
    finally:
        engine.dispose()
    click.echo(f"cache synced: membership {result.membership}; {len(result.deleted_keys)} per-id key(s) deleted; "
               f"{result.outbox_rows} pending outbox row(s) cleared")


@cli.command("import")
@click.option("--all", "all_unmanaged", is_flag=True, help="Every experiment expsync does not manage yet.")
@click.option("--id", "ids", multiple=True, type=click.UUID, help="An experiment id (repeatable).")
@click.option("--public-model-id", "pids", multiple=True, help="Every experiment on this public id (repeatable).")
@click.option("--key", "key", default=None, help="The key to give the experiment (one --id only).")
@click.option("--out-dir", type=click.Path(file_okay=False), default="experiments", show_default=True)
@profile_option
def import_cmd(all_unmanaged: bool, ids: tuple[uuid.UUID, ...], pids: tuple[str, ...], key: str | None,
               out_dir: str, gateway_profile: str | None) -> None:
    """Write YAML (with id: pins) for experiments that exist in the database but not in git."""
    from expsync.crypto import load_key
    from expsync.importer import import_experiments, select_ids
    from expsync.desired.schema import KEY_PATTERN

    if not (all_unmanaged or ids or pids):
        click.echo("error: say what to import: --all, --id or --public-model-id", err=True)
        sys.exit(EXIT_INVALID)
    if key is not None and (len(ids) != 1 or all_unmanaged or pids or not re.match(KEY_PATTERN, key)):
        click.echo(f"error: --key needs exactly one --id and must match {KEY_PATTERN}", err=True)
        sys.exit(EXIT_INVALID)
    settings = settings_from_env()
    byok = load_key(settings.byok_value) if settings.byok_value else None
    selected = select_profile(gateway_profile, settings.environ, settings.cwd)
    engine = engine_from_environ(settings.environ, cwd=settings.cwd,
                                 with_metadata=offline_profile(selected).profile.has_metadata)
    try:
        sel = chosen_for_database(engine, selected)
        say_profile(sel)
        profile = sel.profile
        with begin(engine, snapshot=True) as conn:
            check_initialized(conn)
            # the gateway lowercases requested ids; so does import
            chosen = select_ids(conn, all_unmanaged=all_unmanaged, ids=ids, public_model_ids=[p.lower() for p in pids])
            missing = set(ids) - set(chosen)
            if missing:
                click.echo("error: not found, or already managed by expsync: " + ", ".join(sorted(map(str, missing))),
                           err=True)
                sys.exit(EXIT_INVALID)
            try:
                done = import_experiments(conn, chosen, Path(out_dir), now=datetime.now(timezone.utc), byok=byok,
                                          keys={ids[0]: key} if key else None, profile=profile)
            except FileExistsError as e:
                click.echo(f"error: {e} exists; choose another --key or --out-dir (nothing was overwritten)", err=True)
                sys.exit(EXIT_INVALID)
            except OSError as e:
                click.echo(f"error: cannot write into {out_dir}: {e.strerror}", err=True)
                sys.exit(EXIT_INVALID)
    finally:
        engine.dispose()
    for item in done:
        click.echo(f"wrote {item.path} (key {item.key}; api key variables: {', '.join(item.env_vars)})")
    if not done:
        click.echo("nothing to import")


@cli.group()
def db() -> None:
    """Database administration."""


@db.command("init")
@profile_option
def db_init(gateway_profile: str | None) -> None:
    """Create the gateway tables (when absent, as the gateway profile has them) and migrate
    expsync's own tables."""
    settings = settings_from_env()
    profile = offline_profile(select_profile(gateway_profile, settings.environ, settings.cwd))
    say_profile(profile)
    engine = make_engine(database_url(settings.environ, cwd=settings.cwd))
    try:
        created = init_db(engine, with_metadata=profile.profile.has_metadata)
    finally:
        engine.dispose()
    click.echo(f"created: {', '.join(created)}" if created else "database already initialised; nothing to do")


@cli.command()
@profile_option
def schema(gateway_profile: str | None) -> None:
    """Print the JSON Schema of an experiment document (draft-07) for a gateway profile."""
    profile = chosen_offline(gateway_profile).profile
    click.echo(json.dumps(json_schema(profile.name), indent=2, ensure_ascii=False))


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
        click.echo(f"error: {_redactor.redact(str(e))}", err=True)
        sys.exit(e.exit_code)
    except SystemExit:
        raise
    except KeyboardInterrupt:
        sys.exit(130)
    except BaseException as e:  # noqa: BLE001 - the one boundary for unexpected errors
        click.echo(f"error: an unexpected error occurred ({type(e).__name__})", err=True)
        if debug:
            click.echo(_redactor.redact(traceback.format_exc()), err=True)
        else:
            click.echo("run with --debug for details", err=True)
        sys.exit(EXIT_ERROR)


if __name__ == "__main__":  # pragma: no cover
    main()
