"""Command line: parse flags -> run stages -> render -> exit code. Nothing else lives here.

* The environment is read once, by :func:`main`, into a frozen
  :class:`~expsync.settings.Settings` that every command receives through :class:`Run`.
* Commands return an :class:`~expsync.errors.ExitCode` for an outcome they have fully shown
  (changes, a refused plan, invalid files in ``validate``) and raise an
  :class:`~expsync.errors.ExpsyncError` when they cannot go on. :func:`main` is the one
  boundary that turns both into the process exit code and prints errors (spec §7): 0 ok,
  1 unexpected, 2 changes (--detailed-exitcode), 3 invalid input, 4 refused,
  5 stale/lock/conflict, 6 cache pending.
* Each command imports the stages it uses inside its body, so ``expsync --version``,
  ``schema`` and ``validate`` never load a database, cache, crypto or secret-store library
  (tests/cli/test_imports.py checks which modules every command loads).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import click

from expsync import __version__
from expsync.desired.limits import DEFAULT_MAX_FILE_SIZE
from expsync.errors import ConfigError, ExitCode, ExpsyncError, InvalidInput, PlanRefused
from expsync.settings import Settings

if TYPE_CHECKING:
    import uuid
    from datetime import datetime
    from pathlib import Path

    from sqlalchemy.engine import Engine

    from expsync.config import ProfileSelection
    from expsync.diagnostics import Diagnostic
    from expsync.model import DesiredState, Secret, SecretRef
    from expsync.plan import Digests, Plan
    from expsync.secrets import SecretUse
    from expsync.secrets.redact import Redactor
    from expsync.state.connection import PgConnection

F = TypeVar("F", bound=Callable[..., Any])


class Run:
    """What one invocation shares: its settings (read once) and its redactor (every resolved
    secret value is registered there before anything prints)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._redactor: Redactor | None = None

    @property
    def redactor(self) -> Redactor:
        if self._redactor is None:
            from expsync.secrets.redact import Redactor

            self._redactor = Redactor()
        return self._redactor

    def redact(self, text: str) -> str:
        return self._redactor.redact(text) if self._redactor is not None else text


#: the run in progress (the logging handler on the root logger is process-wide too)
_run: Run | None = None


def current() -> Run:
    """The run in progress (a run with default settings outside of one)."""
    global _run
    if _run is None:
        _run = Run(Settings())
    return _run


def redactor() -> Redactor:
    """The current run's redactor."""
    return current().redactor


def emit_diagnostics(diags: Sequence[Diagnostic], *, err: bool = True) -> None:
    """Print diagnostics (to stderr by default) and, in GitHub Actions, workflow annotations
    (on stderr too: stdout carries only the requested output, e.g. JSON)."""
    if not diags:
        return
    from expsync.render import diagnostics as render_diags

    click.echo(current().redact(render_diags.render_text(diags)), err=err)
    if current().settings.github_actions:
        click.echo(current().redact(render_diags.github_annotations(diags)), err=True)


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
    from expsync.profiles import PROFILES  # plain data, no library

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
    from expsync.config import offline_profile, select_profile

    settings = current().settings
    sel = offline_profile(select_profile(flag, settings.environ, settings.cwd))
    say_profile(sel)
    return sel


def chosen_for_database(db: Engine | PgConnection, selected: Any) -> ProfileSelection:
    """The run's profile against this database (exit 3 for an impossible pair). Said by the
    caller (after the GitHub mask lines, which must come first)."""
    from expsync.config import profile_for_database
    from expsync.pipeline import initialized_has_metadata
    from expsync.state.connection import session

    with session(db) as conn:
        has_column = initialized_has_metadata(conn)  # one catalogue question
    return profile_for_database(selected, has_column)


def _install_log_handler(red: Redactor, debug: bool) -> None:
    import logging

    handler = logging.StreamHandler(sys.stderr)
    # on the handler, not a logger: records propagated from botocore/urllib3 pass through here
    handler.addFilter(red.logging_filter())
    from expsync.escape import LogFormatter

    handler.setFormatter(LogFormatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_expsync", False)]:
        root.removeHandler(old)
    handler._expsync = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if debug else logging.WARNING)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="expsync")
@click.option("--debug", is_flag=True, envvar="EXPSYNC_DEBUG", help="Show tracebacks of unexpected errors.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Declarative GitOps reconciler for model experiments."""
    global _run
    if not isinstance(ctx.obj, Run):  # invoked without main (tests): read the environment here
        ctx.obj = Run(Settings.from_environ(os.environ))
    run: Run = ctx.obj
    _run = run
    run.settings = replace(run.settings, debug=debug or run.settings.debug)
    from expsync.secrets.redact import redact_every_record

    run.redactor.add_config(run.settings.environ)  # store and database credentials, before anything can log them
    redact_every_record(run.redactor)  # every log record is created masked, whichever handler gets it
    _install_log_handler(run.redactor, run.settings.debug)


# --------------------------------------------------------------------------------------
# helpers shared by the commands: each raises a typed error instead of exiting
# --------------------------------------------------------------------------------------


def load_or_raise(paths: Sequence[str], max_file_size: int, sel: ProfileSelection,
                  warnings: list[Diagnostic] | None = None) -> DesiredState:
    """The desired state, or InvalidInput with the errors; the loader's warnings (``W301`` ...)
    are appended to ``warnings`` so the plan can carry them."""
    from expsync.desired.loader import LoadOptions, load_desired
    from expsync.diagnostics import has_errors

    desired, diags = load_desired(paths, LoadOptions(max_file_size=max_file_size, profile=sel.profile.name))
    if has_errors(diags):
        say_profile(sel)  # the errors depend on it
        raise InvalidInput("invalid experiment files", diagnostics=diags, summary_line=True)
    if warnings is not None:
        warnings.extend(diags)
    return desired


def resolved_uses(desired: DesiredState) -> list[SecretUse]:
    """The api key references a plan or apply resolves (not those of completed experiments)."""
    from expsync import rules
    from expsync.secrets import uses_in

    return [u for u in uses_in(desired) if rules.keys_matter(desired.experiments[u.experiment].status)]


def check_refs_or_raise(desired: DesiredState, settings: Settings) -> None:
    """``plan --no-secrets``: the secret-reference policy still applies; nothing is resolved."""
    from expsync.diagnostics import has_errors
    from expsync.secrets import policy

    diags = policy.check(resolved_uses(desired), settings.environ, settings.cwd)
    if has_errors(diags):
        raise InvalidInput("secret references refused", diagnostics=diags, summary_line=True)


def ci_gate(settings: Settings, command: Literal["plan", "apply"]) -> Diagnostic | None:
    """``apply`` in CI without ``EXPSYNC_SECRET_REFS`` raises E412 (exit 4; nothing resolved or
    written). Otherwise the W401 warning to show (after the masks), or None."""
    from expsync.secrets import policy

    gate = policy.ci_gate(settings.environ, command)
    if gate is not None and gate.is_error:
        raise PlanRefused("no secret-reference allowlist in CI", diagnostics=[gate])
    return gate


def resolve_or_raise(desired: DesiredState, settings: Settings, red: Redactor,
                     command: Literal["plan", "apply"] = "plan") -> dict[SecretRef, Secret]:
    from expsync.diagnostics import has_errors
    from expsync.secrets import resolve_all

    gate = ci_gate(settings, command)
    secrets, diags = resolve_all(resolved_uses(desired), environ=settings.environ, cwd=settings.cwd, redactor=red)
    if settings.github_actions:
        # before anything else is printed, so the runner masks the values in the whole log
        for line in red.github_mask_lines():
            # stderr: the runner reads workflow commands from both streams, and stdout stays
            # the plan alone (a markdown comment or JSON document must never carry a value)
            click.echo(line, err=True)
    if gate is not None:
        emit_diagnostics([gate])  # W401, after the masks
    if has_errors(diags):
        raise InvalidInput("secrets cannot be resolved", diagnostics=diags, summary_line=True)
    return secrets


def _now() -> datetime:
    from datetime import datetime, timezone

    return datetime.now(timezone.utc)


def check_writable(path: str) -> None:
    """Refuse an output path that cannot be written before doing any work (exit 3)."""
    from pathlib import Path

    p = Path(path)
    parent = p.parent if str(p.parent) else Path(".")
    ok = parent.is_dir() and os.access(parent, os.W_OK) and (not p.exists() or (p.is_file() and os.access(p, os.W_OK)))
    if not ok:
        raise InvalidInput(f"cannot write {path}: not a writable file in an existing directory")


def checked_redis(settings: Settings) -> Settings:
    """Refuse a malformed ``EXPSYNC_REDIS_URL`` (exit 3) before anything is written."""
    if settings.redis_url:
        from expsync.cache.client import check_url

        check_url(settings.redis_url)
    return settings


def checked_text(flag: str, value: str | None) -> str | None:
    """A flag value written to the database (``created_by*``, the audit row) that the admin UI
    shows raw: refused (exit 3) when it holds control, bidi or zero-width characters."""
    from expsync import escape

    if value and escape.INVISIBLE.search(value):
        raise InvalidInput(f"{flag} holds an invisible or control character ({escape.visible(value)}); "
                           "it is written to the database as given")
    return value or None


def use_color() -> bool:
    return sys.stdout.isatty() and not current().settings.no_color


def render_plan(plan: Plan, fmt: str, *, color: bool = False) -> str:
    """``plan`` in one format; only that format's renderer is imported."""
    if fmt == "json":
        from expsync.render import json as render_json

        return render_json.render_json(plan)
    if fmt == "markdown":
        from expsync.render import markdown as render_markdown

        return render_markdown.render_markdown(plan)
    from expsync.render import text as render_text

    return render_text.render_text(plan, color=color)


def show_plan(plan: Plan) -> None:
    """The text plan on stdout (plus its annotations in GitHub Actions)."""
    from expsync.render import diagnostics as render_diags

    click.echo(current().redact(render_plan(plan, "text", color=use_color())))
    if current().settings.github_actions:
        click.echo(current().redact(render_diags.github_annotations(plan.diagnostics)), err=True)


def with_warnings(plan: Plan, warnings: Sequence[Diagnostic]) -> Plan:
    """The plan carrying the loader's warnings (e.g. W301, one variant takes all traffic): they
    belong in the plan a reviewer reads, not only in `validate`."""
    if not warnings:
        return plan
    from expsync.diagnostics import sort_diagnostics

    return replace(plan, diagnostics=tuple(sort_diagnostics([*warnings, *plan.diagnostics])))


def write_github_outputs(plan: Plan, settings: Settings, red: Redactor) -> None:
    if settings.github_output:
        from expsync.render import summarize

        lines = [f"has_changes={'true' if plan.has_changes else 'false'}", f"refused={'true' if plan.refused else 'false'}"]
        lines += [f"{k}={v}" for k, v in summarize(plan).as_dict().items()]
        with open(settings.github_output, "a", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
    if settings.github_step_summary:
        with open(settings.github_step_summary, "a", encoding="utf-8") as f:
            f.write(red.redact(render_plan(plan, "markdown")) + "\n")


def open_engine(settings: Settings, selected: Any = None) -> Engine:
    from expsync.config import offline_profile
    from expsync.state.db import engine_from_environ

    return engine_from_environ(settings.environ, cwd=settings.cwd,
                               with_metadata=offline_profile(selected).profile.has_metadata)


def open_database(settings: Settings, selected: Any = None) -> Engine | PgConnection:
    """``plan``'s and ``apply``'s database: on Postgres a bare psycopg connection (no
    SQLAlchemy import, no engine set-up), else (SQLite, a URL only SQLAlchemy reads) the engine."""
    from expsync.state.connection import connect
    from expsync.state.location import database_url

    conn = connect(database_url(settings.environ, cwd=settings.cwd))
    return conn if conn is not None else open_engine(settings, selected)


def drain_leftover(db: Engine | PgConnection, settings: Settings) -> None:
    """Finish a cache refresh an earlier run left pending (spec §6). Never fatal here."""
    if not settings.redis_url:
        return
    from expsync.cache.refresh import drain_leftover as drain_pending

    try:
        pending = drain_pending(db, settings.redis_url, prefix=settings.redis_prefix)
    except ExpsyncError as e:  # Redis down or unreachable: the command goes on, the outbox stays
        click.echo(f"warning: {current().redact(str(e))}", err=True)
        return
    if pending:
        click.echo(f"finished a pending cache refresh ({pending} key(s) from an earlier run)", err=True)


def refresh_after_commit(db: Engine | PgConnection, settings: Settings) -> None:
    if not settings.redis_url:
        click.echo("cache refresh skipped: EXPSYNC_REDIS_URL is not set", err=True)
        return
    from expsync.cache.refresh import connect, drain
    from expsync.escape import terminal

    result = drain(db, connect(settings.redis_url), prefix=settings.redis_prefix)
    # the membership holds every routing row's public model id, also those another writer stored
    click.echo(f"cache refreshed: membership {terminal(result.membership)}, {len(result.deleted_keys)} per-id key(s) "
               "deleted")


# --------------------------------------------------------------------------------------
# commands
# --------------------------------------------------------------------------------------


@cli.command()
@paths_argument
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@profile_option
def validate(paths: tuple[str, ...], max_file_size: int, fmt: str, gateway_profile: str | None) -> ExitCode:
    """Check experiment files offline (default: experiments/). Exit 0 valid, 3 invalid."""
    from expsync.desired.loader import LoadOptions, discover, load_desired
    from expsync.diagnostics import has_errors
    from expsync.render import diagnostics as render_diags

    from expsync.diagnostics import sort_diagnostics
    from expsync.secrets import policy

    profile = chosen_offline(gateway_profile).profile
    files, _ = discover(paths)
    desired, diags = load_desired(paths, LoadOptions(max_file_size=max_file_size, profile=profile.name))
    # the documents that loaded: their references against the policy (the allowlist when set)
    settings = current().settings
    diags = sort_diagnostics([*diags, *policy.check(resolved_uses(desired), settings.environ, settings.cwd)])
    if fmt == "json":
        click.echo(render_diags.render_validate_json(diags, files=len(files), experiments=len(desired.experiments)))
        if current().settings.github_actions:
            click.echo(current().redact(render_diags.github_annotations(diags)), err=True)
    else:
        emit_diagnostics(diags)
        if not has_errors(diags):
            click.echo(f"{len(desired.experiments)} experiment(s) in {len(files)} file(s) are valid.")
        else:
            click.echo(render_diags.summary_line(diags), err=True)
    return ExitCode.INVALID if has_errors(diags) else ExitCode.OK


@cli.command("plan")
@paths_argument
@click.option("--format", "fmt", type=click.Choice(["text", "json", "markdown"]), default="text", show_default=True)
@click.option("--out", "out_file", type=click.Path(dir_okay=False), help="Save the plan (JSON) for `apply --plan`.")
@click.option("--detailed-exitcode", is_flag=True, help="Exit 2 when the plan has changes.")
@click.option("--no-secrets", is_flag=True,
              help="Do not resolve secrets (fork PRs); api keys show as unknown and experiments expsync does not "
              "manage show no values.")
@click.option("--allow-empty", is_flag=True, help="Allow a plan that removes every managed experiment.")
@profile_option
def plan_cmd(paths: tuple[str, ...], max_file_size: int, fmt: str, out_file: str | None, detailed_exitcode: bool,
             no_secrets: bool, allow_empty: bool, gateway_profile: str | None) -> ExitCode:
    """Show what apply would change, checked against the state machine. Writes nothing."""
    from pathlib import Path

    from expsync import pipeline
    from expsync.config import select_profile
    from expsync.diagnostics import has_errors
    from expsync.state.connection import close, read_snapshot

    settings = replace(checked_redis(current().settings), allow_empty=allow_empty)
    if out_file:
        check_writable(out_file)
    selected = select_profile(gateway_profile, settings.environ, settings.cwd)
    # a configured profile is known without the database: bad YAML is reported before connecting
    load_warnings: list[Diagnostic] = []
    early = load_or_raise(paths, max_file_size, selected, load_warnings) if selected is not None else None
    db = open_database(settings, selected)
    try:
        chosen = chosen_for_database(db, selected)
        settings = replace(settings, profile=chosen.profile)
        desired = early if early is not None else load_or_raise(paths, max_file_size, chosen, load_warnings)
        red = current().redactor
        if no_secrets:
            check_refs_or_raise(desired, settings)
        secrets = None if no_secrets else resolve_or_raise(desired, settings, red)
        say_profile(chosen)
        drain_leftover(db, settings)
        with read_snapshot(db) as conn:  # read-only; the table check goes with the reads
            computed = pipeline.compute_plan(conn, desired, secrets, settings, now=_now(), check_tables=True)
    finally:
        close(db)
    if computed.key_diagnostics:
        if has_errors(computed.key_diagnostics):
            raise InvalidInput("stored api keys cannot be compared", diagnostics=computed.key_diagnostics)
        emit_diagnostics(computed.key_diagnostics)
    plan = computed.plan
    plan = with_warnings(plan, load_warnings)
    click.echo(red.redact(render_plan(plan, fmt, color=use_color() and fmt == "text")))
    if settings.github_actions:
        from expsync.render import diagnostics as render_diags
        from expsync.render.security import security_annotations

        click.echo(red.redact(security_annotations(plan)), err=True)
        click.echo(red.redact(render_diags.github_annotations(plan.diagnostics)), err=True)
        write_github_outputs(plan, settings, red)
    if out_file:
        try:
            Path(out_file).write_text(red.redact(render_plan(plan, "json")) + "\n", encoding="utf-8")
        except OSError as e:
            raise InvalidInput(f"cannot write {out_file}: {e.strerror}") from None
    if plan.refused:
        return ExitCode.REFUSED
    return ExitCode.CHANGES if detailed_exitcode and plan.has_changes else ExitCode.OK


def _confirmed(plan: Plan) -> bool:
    """Ask on the terminal; only "yes" applies."""
    if not sys.stdin.isatty():
        raise InvalidInput("apply needs --yes when not run on a terminal")
    click.echo(render_plan(plan, "text", color=use_color()))
    answer = click.prompt("Apply these changes? Only 'yes' will be accepted", default="", show_default=False)
    if answer != "yes":
        click.echo("Apply cancelled; nothing was changed.")
        return False
    return True


def _not_nan(value: float) -> float:
    if value != value:
        raise click.BadParameter("must be a number of seconds")
    return value


@cli.command("apply")
@paths_argument
@click.option("--plan", "plan_file", type=click.Path(exists=True, dir_okay=False), help="Apply a plan saved by `plan --out`.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation (needed when not on a terminal).")
@click.option("--actor", envvar="EXPSYNC_ACTOR", default=None, help="Written to created_by* and the audit row.")
@click.option("--revision", envvar="GITHUB_SHA", default=None, help="Git revision recorded in the audit row.")
@click.option("--lock-timeout", type=click.FloatRange(min=0.001, max=86400.0), default=30.0, show_default=True,
              callback=lambda ctx, param, v: _not_nan(v),
              help="Seconds to wait for the apply lock.")
@click.option("--allow-empty", is_flag=True, help="Allow removing every managed experiment.")
@profile_option
def apply_cmd(paths: tuple[str, ...], max_file_size: int, plan_file: str | None, yes: bool, actor: str | None,
              revision: str | None, lock_timeout: float, allow_empty: bool, gateway_profile: str | None) -> ExitCode:
    """Apply the YAML to the database in one transaction, then refresh the Redis cache."""
    from expsync import pipeline
    from expsync.apply.run import after_commit, apply
    from expsync.config import select_profile
    from expsync.state.connection import close, read_snapshot, settle

    settings = replace(checked_redis(current().settings),
                       actor=checked_text("--actor / EXPSYNC_ACTOR", actor),
                       revision=checked_text("--revision / GITHUB_SHA", revision), allow_empty=allow_empty)
    if not yes and not sys.stdin.isatty():
        # unattended runs must say so explicitly, with or without a saved plan
        raise InvalidInput("apply needs --yes when not run on a terminal")
    ci_gate(settings, "apply")  # before the database is touched
    selected = select_profile(gateway_profile, settings.environ, settings.cwd)
    # a configured profile is known without the database: bad YAML is reported before connecting
    load_warnings: list[Diagnostic] = []  # W301 ...: shown with the plan, as `plan` shows them
    early = load_or_raise(paths, max_file_size, selected, load_warnings) if selected is not None else None
    # on a terminal a saved plan is itself the reviewed confirmation (as in Terraform)
    expect = read_saved_digests(plan_file) if plan_file else None
    db = open_database(settings, selected)
    try:
        chosen = chosen_for_database(db, selected)
        settings = replace(settings, profile=chosen.profile)
        desired = early if early is not None else load_or_raise(paths, max_file_size, chosen, load_warnings)
        red = current().redactor
        secrets = resolve_or_raise(desired, settings, red, "apply")
        say_profile(chosen)
        drain_leftover(db, settings)
        if expect is None and not yes:
            with read_snapshot(db) as conn:
                pipeline.check_initialized(conn)
                shown = with_warnings(pipeline.compute_plan(conn, desired, secrets, settings, now=_now()).plan,
                                      load_warnings)
            # a person reads the plan now, for as long as they like: the snapshot must not stay
            # open meanwhile (its table locks would queue a migration, and every query behind it)
            settle(db)
            if shown.has_changes and not shown.refused and not _confirmed(shown):
                return ExitCode.OK
            # bound to what was shown (or not asked about, when there was nothing to confirm):
            # a state that changed meanwhile is stale (exit 5), never applied unconfirmed
            expect = shown.digests
        result = apply(db, desired, secrets, settings, lock_timeout=lock_timeout, expect=expect)
        with after_commit():  # committed: any failure from here on, Ctrl-C included, is exit 6
            plan = with_warnings(result.plan, load_warnings)
            if not plan.has_changes:
                click.echo("No changes. The database matches the YAML; nothing was applied.")
            else:
                click.echo(red.redact(render_plan(plan, "text", color=use_color())))
                click.echo(f"Applied in one transaction: {len(plan.ops)} operation(s), {result.statements} "
                           f"statement(s), {result.seconds:.2f}s.")
            if plan.gateway_changes or settings.redis_url:
                refresh_after_commit(db, settings)
    finally:
        close(db)
    return ExitCode.OK


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
    from expsync.escape import terminal
    from expsync.pipeline import check_initialized

    settings = checked_redis(current().settings)
    if not settings.redis_url:
        raise ConfigError("EXPSYNC_REDIS_URL is not set")
    engine = open_engine(settings)
    try:
        with engine.connect() as conn:
            check_initialized(conn)
        result = drain(engine, connect(settings.redis_url), prefix=settings.redis_prefix, full=True)
    finally:
        engine.dispose()
    click.echo(f"cache synced: membership {terminal(result.membership)}; {len(result.deleted_keys)} per-id key(s) deleted; "
               f"{result.outbox_rows} pending outbox row(s) cleared")


def _check_import_flags(all_unmanaged: bool, ids: tuple[uuid.UUID, ...], pids: tuple[str, ...],
                        key: str | None) -> None:
    import re

    from expsync.desired.schema import KEY_PATTERN

    if not (all_unmanaged or ids or pids):
        raise InvalidInput("say what to import: --all, --id or --public-model-id")
    if key is not None and (len(ids) != 1 or all_unmanaged or pids or re.fullmatch(KEY_PATTERN, key) is None):
        raise InvalidInput(f"--key needs exactly one --id and must match {KEY_PATTERN}")


@cli.command("import")
@click.option("--all", "all_unmanaged", is_flag=True, help="Every experiment expsync does not manage yet.")
@click.option("--id", "ids", multiple=True, type=click.UUID, help="An experiment id (repeatable).")
@click.option("--public-model-id", "pids", multiple=True, help="Every experiment on this public id (repeatable).")
@click.option("--key", "key", default=None, help="The key to give the experiment (one --id only).")
@click.option("--out-dir", type=click.Path(file_okay=False), default="experiments", show_default=True)
@click.option("--key-ref-template", default=None,
              help="api_key reference to write, {KEY}/{key} standing for each key group, e.g. "
                   "'env:PARTNER_{KEY}_KEY' (default: derived from EXPSYNC_SECRET_REFS, else env:<KEY>_PARTNER_API_KEY).")
@profile_option
def import_cmd(all_unmanaged: bool, ids: tuple[uuid.UUID, ...], pids: tuple[str, ...], key: str | None,
               out_dir: str, key_ref_template: str | None, gateway_profile: str | None) -> None:
    """Write YAML (with id: pins) for experiments that exist in the database but not in git."""
    from pathlib import Path

    from expsync.config import select_profile
    from expsync.crypto import load_key
    from expsync.importer import import_experiments, select_unmanaged
    from expsync.secrets import policy
    from expsync.pipeline import check_initialized
    from expsync.state.db import begin

    _check_import_flags(all_unmanaged, ids, pids, key)
    settings = checked_redis(current().settings)
    template = policy.import_template(key_ref_template, settings.environ, settings.cwd)
    byok = load_key(settings.byok_value) if settings.byok_value else None
    selected = select_profile(gateway_profile, settings.environ, settings.cwd)
    engine = open_engine(settings, selected)
    try:
        sel = chosen_for_database(engine, selected)
        say_profile(sel)
        with begin(engine, snapshot=True) as conn:
            check_initialized(conn)
            # the gateway lowercases requested ids; so does import
            chosen = select_unmanaged(conn, all_unmanaged=all_unmanaged, ids=ids,
                                      public_model_ids=[p.lower() for p in pids])
            missing = set(ids) - set(chosen)
            if missing:
                raise InvalidInput("not found, or already managed by expsync: " + ", ".join(sorted(map(str, missing))))
            try:
                done = import_experiments(conn, chosen, Path(out_dir), now=_now(), byok=byok,
                                          keys={ids[0]: key} if key else None, profile=sel.profile,
                                          ref_template=template)
            except FileExistsError as e:
                raise InvalidInput(f"{e} exists; choose another --key or --out-dir (nothing was overwritten)") from None
            except OSError as e:
                raise InvalidInput(f"cannot write into {out_dir}: {e.strerror}") from None
    finally:
        engine.dispose()
    for item in done:
        click.echo(f"wrote {item.path} (key {item.key}; api key variables: {', '.join(item.env_vars)})")
    if not done:
        click.echo("nothing to import")
    elif template is None and policy.Allowlist.from_environ(settings.environ) is not None:
        click.echo(f"warning: no reference template could be derived from {policy.ALLOWLIST_VAR}; the "
                   "references written may be outside it: pass --key-ref-template", err=True)


@cli.group()
def db() -> None:
    """Database administration."""


@db.command("init")
@profile_option
def db_init(gateway_profile: str | None) -> None:
    """Create the gateway tables (when absent, as the gateway profile has them) and migrate
    expsync's own tables."""
    from expsync.config import offline_profile, select_profile
    from expsync.state.db import database_url, init_db, make_engine

    settings = checked_redis(current().settings)
    selected = select_profile(gateway_profile, settings.environ, settings.cwd)
    profile = offline_profile(selected)
    say_profile(profile)
    engine = make_engine(database_url(settings.environ, cwd=settings.cwd))
    try:
        created = init_db(engine, with_metadata=profile.profile.has_metadata)
        if selected is not None:
            # existing gateway tables are never altered: a configured profile they cannot
            # serve is the same exit 3 every other command gives, not "nothing to do"
            chosen_for_database(engine, selected)
    finally:
        engine.dispose()
    click.echo(f"created: {', '.join(created)}" if created else "database already initialised; nothing to do")


@cli.command()
@profile_option
def schema(gateway_profile: str | None) -> None:
    """Print the JSON Schema of an experiment document (draft-07) for a gateway profile."""
    import json

    from expsync.desired.schema import json_schema

    profile = chosen_offline(gateway_profile).profile
    click.echo(json.dumps(json_schema(profile.name), indent=2, ensure_ascii=False))


# --------------------------------------------------------------------------------------
# CI integration: show, history, comment (thin wrappers; the logic is in render.load,
# render.history, state.audit and github)
# --------------------------------------------------------------------------------------


def read_plan_file(path: str) -> Plan:
    """A plan saved by ``plan --out`` (exit 3 with the reason for anything else)."""
    from pathlib import Path

    from expsync.render.load import PlanFileError, load_plan

    try:
        return load_plan(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as e:
        raise InvalidInput(f"cannot read {path}: {getattr(e, 'strerror', None) or type(e).__name__}") from None
    except PlanFileError as e:
        raise InvalidInput(f"{path}: {e}") from None


@cli.command("show")
@click.argument("plan_file", type=click.Path(dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(["text", "markdown", "json"]), default="text", show_default=True)
def show_cmd(plan_file: str, fmt: str) -> None:
    """Render a plan saved by `plan --out` (no database, no secrets), as `plan` rendered it."""
    plan = read_plan_file(plan_file)
    click.echo(current().redact(render_plan(plan, fmt, color=use_color() and fmt == "text")))


@cli.command("history")
@click.option("--limit", type=click.IntRange(min=1, max=100_000), default=20, show_default=True)
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def history_cmd(limit: int, fmt: str) -> None:
    """List recorded applies (expsync_audit), newest first."""
    from expsync.pipeline import check_initialized
    from expsync.render.history import render_history_json, render_history_text
    from expsync.state.audit import read_history

    engine = open_engine(current().settings)
    try:
        with engine.connect() as conn:
            check_initialized(conn)
            entries = read_history(conn, limit=limit)
    finally:
        engine.dispose()
    click.echo(current().redact(render_history_json(entries) if fmt == "json" else render_history_text(entries)))


def _github_backoff(settings: Settings) -> float:
    try:
        backoff = float(settings.environ.get("EXPSYNC_GITHUB_BACKOFF", "1"))
    except ValueError:
        backoff = -1.0
    if not 0 <= backoff <= 60:
        raise ConfigError("EXPSYNC_GITHUB_BACKOFF must be a number of seconds between 0 and 60")
    return backoff


@cli.command("comment")
@click.option("--plan", "plan_file", required=True, type=click.Path(dir_okay=False),
              help="The plan saved by `plan --out`.")
@click.option("--root", default="experiments", show_default=True,
              help="The plan root this comment is for: one sticky comment per pull request and root.")
@click.option("--pr", type=click.IntRange(min=1), default=None,
              help="Pull request number (default: from the GITHUB_EVENT_PATH event).")
def comment_cmd(plan_file: str, root: str, pr: int | None) -> None:
    """Create or update the pull request's sticky plan comment (GITHUB_TOKEN, GITHUB_REPOSITORY)."""
    from expsync.github import Client, comment_body, target_from_environ, upsert_comment
    from expsync.plan.ops import InsertVersion
    from expsync.render.markdown import render_markdown

    settings = current().settings
    plan = read_plan_file(plan_file)
    target = target_from_environ(settings.environ, pr=pr)
    backoff = _github_backoff(settings)
    red = current().redactor
    red.add(target.token)
    for op in plan.ops:  # defence in depth: a plan never holds a value, but mask any that is in reach
        if isinstance(op, InsertVersion) and op.api_key_ref.scheme == "env":
            value = settings.environ.get(op.api_key_ref.locator)
            if value:
                red.add(value)
    client = Client(target.api_url, target.token, backoff=backoff,
                    log=lambda m: click.echo(f"warning: {red.redact(m)}", err=True))
    body = comment_body(red.redact(render_markdown(plan)), root)
    outcome = upsert_comment(client, target, body, root=root)
    if outcome.action == "skipped":
        prefix = "::notice title=expsync comment::" if settings.github_actions else "notice: "
        click.echo(prefix + outcome.notice, err=True)
        return
    click.echo(f"comment {outcome.action}: {outcome.url or outcome.comment_id}")


# --------------------------------------------------------------------------------------
# the boundary
# --------------------------------------------------------------------------------------


def report(e: ExpsyncError) -> None:
    """Show an error that ends the command: its diagnostics, its refused plan, or its message."""
    if e.diagnostics:
        emit_diagnostics(e.diagnostics)
        if e.summary_line:
            from expsync.render import diagnostics as render_diags

            click.echo(render_diags.summary_line(e.diagnostics), err=True)
    elif isinstance(e, PlanRefused) and e.plan is not None:
        show_plan(e.plan)  # type: ignore[arg-type]
    else:
        from expsync.escape import terminal

        click.echo(f"error: {terminal(current().redact(str(e)))}", err=True)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point: every exception ends here, mapped to an exit code, never a raw traceback."""
    global _run
    if argv is None:  # the console script: this process runs one command and exits
        from expsync.heap import short_lived_process

        short_lived_process()
    args = list(argv) if argv is not None else sys.argv[1:]
    run = _run = Run(Settings.from_environ(os.environ))
    debug = "--debug" in args or run.settings.debug
    try:
        rv = cli.main(args=args, prog_name="expsync", standalone_mode=False, obj=run)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.ClickException as e:
        e.show()
        sys.exit(int(ExitCode.INVALID) if e.exit_code == 2 else e.exit_code)
    except ExpsyncError as e:
        report(e)
        sys.exit(int(e.exit_code))
    except SystemExit:
        raise
    except KeyboardInterrupt:
        sys.exit(130)
    except BaseException as e:  # noqa: BLE001 - the one boundary for unexpected errors
        click.echo(f"error: an unexpected error occurred ({type(e).__name__})", err=True)
        if debug:
            import traceback

            click.echo(current().redact(traceback.format_exc()), err=True)
        else:
            click.echo("run with --debug for details", err=True)
        sys.exit(int(ExitCode.ERROR))
    sys.exit(int(rv) if isinstance(rv, int) else 0)


if __name__ == "__main__":  # pragma: no cover
    main()
