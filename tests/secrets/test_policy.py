"""Which references a run may resolve: built-in refusals, the EXPSYNC_SECRET_REFS allowlist and
the CI gate. Each refused reference is reported and never resolved (its value never read)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from expsync.errors import ConfigError
from expsync.model import SecretRef
from expsync.secrets import Redactor, resolve_all
from expsync.secrets.policy import REFUSED_ENV, Allowlist, is_refused_env
from expsync.secrets.refs import parse_ref
from tests.cli_helpers import run_cli
from tests.integration.apply_support import Repo, cli_env, experiment, variant

VALUE = "sk-live-POLICYCANARY-0001"


def codes(text: str, *, environ: dict[str, str] | None = None, cwd: Path) -> list[str]:
    secrets, diags = resolve_all([parse_ref(text)], environ=environ or {}, cwd=cwd)
    assert not (secrets and diags)
    return [d.code for d in diags]


# built-in refusals --------------------------------------------------------------------------


@pytest.mark.parametrize("name", [
    "EXPSYNC_DATABASE_URL", "EXPSYNC_REDIS_URL", "EXPSYNC_SECRET_REFS", "BYOK_ENCRYPTION_KEY", "GITHUB_TOKEN",
    "GH_TOKEN", "ACTIONS_ID_TOKEN_REQUEST_TOKEN", "ACTIONS_RUNTIME_TOKEN", "RUNNER_TEMP", "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "VAULT_TOKEN", "VAULT_SECRET_ID", "GOOGLE_APPLICATION_CREDENTIALS",
    "AZURE_CLIENT_SECRET", "CI_JOB_TOKEN", "github_token",
])
def test_protected_variables_are_refused_even_with_the_catch_all_allowlist(tmp_path: Path, name: str) -> None:
    red = Redactor()
    environ = {name: VALUE, "EXPSYNC_SECRET_REFS": "*"}
    secrets, diags = resolve_all([SecretRef("env", name)], environ=environ, cwd=tmp_path, redactor=red)
    assert not secrets and [d.code for d in diags] == ["E409"]
    assert red.redact(VALUE) == VALUE  # never read, so never registered


def test_partner_variables_are_not_refused() -> None:
    for name in ("PARTNER_FOO_KEY", "FOO_PARTNER_KEY", "OPENAI_API_KEY", "MY_GITHUB_TOKEN_FOR_PARTNER"):
        assert not is_refused_env(name), name
    assert "GITHUB_TOKEN" in REFUSED_ENV and "EXPSYNC_*" in REFUSED_ENV


@pytest.mark.parametrize("path", ["/etc/passwd", "/etc/shadow", "/proc/self/environ", "/sys/kernel/notes",
                                  "/dev/stdin", "/dev/zero", "/run/../etc/hostname"])
def test_system_paths_are_refused(tmp_path: Path, path: str) -> None:
    assert codes(f"file:{path}", environ={"EXPSYNC_SECRET_REFS": "*"}, cwd=tmp_path) == ["E410"]


def test_relative_paths_must_stay_in_the_working_directory(tmp_path: Path) -> None:
    work = tmp_path / "work"
    (work / "keys").mkdir(parents=True)
    (tmp_path / "outside").write_text(VALUE)
    (work / "keys" / "ok").write_text(VALUE)
    (work / "keys" / "link").symlink_to(tmp_path / "outside")  # a symlink a pull request can commit
    (work / "keys" / "etc").symlink_to("/etc/hostname")
    assert codes("file:keys/ok", cwd=work) == []
    assert codes("file:../outside", cwd=work) == ["E410"]
    assert codes("file:keys/../../outside", cwd=work) == ["E410"]
    assert codes("file:keys/link", cwd=work) == ["E410"]
    assert codes("file:keys/etc", cwd=work) == ["E410"]


def test_fifo_is_refused_without_blocking_or_reading_stdin(tmp_path: Path) -> None:
    """A FIFO with no writer blocks a plain open() forever; /dev/stdin would read the job's input.
    Run in a child whose stdin is a pipe held open, so a blocking read would hang (the timeout
    only guards the test run; the assertion is on the outcome)."""
    os.mkfifo(tmp_path / "fifo")
    code = ("import pathlib, sys; from expsync.secrets import resolve_all; from expsync.secrets.refs import parse_ref;"
            "cwd = pathlib.Path(sys.argv[1]);"
            "print(*[d.code for r in ('file:fifo', 'file:/dev/stdin') "
            "for d in resolve_all([parse_ref(r)], environ={}, cwd=cwd)[1]])")
    proc = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert out.split() == ["E410", "E410"], err


def test_a_symlink_to_a_device_is_refused_by_its_resolved_path(tmp_path: Path) -> None:
    (tmp_path / "null").symlink_to("/dev/null")  # resolved: refused before opening
    assert codes("file:null", cwd=tmp_path) == ["E410"]


# the allowlist ------------------------------------------------------------------------------


def test_allowlist_patterns_split_on_commas_and_newlines() -> None:
    allow = Allowlist.from_environ({"EXPSYNC_SECRET_REFS": "env:PARTNER_*_KEY, aws-sm:partners/*\n"
                                                           "vault:secret/partners/*,\nfile:/run/secrets/*"})
    assert allow is not None and len(allow.patterns) == 4
    assert allow.allows(parse_ref("env:PARTNER_FOO_KEY"))
    assert not allow.allows(parse_ref("env:OTHER_KEY"))
    assert allow.allows(parse_ref("aws-sm:partners/foo#rc2_key"))
    assert not allow.allows(parse_ref("aws-sm:prod/db#password"))
    assert allow.allows(parse_ref("vault:secret/partners/foo#api_key"))
    assert not allow.allows(parse_ref("vault:secret/platform/ci#token"))
    assert allow.allows(parse_ref("file:/run/secrets/foo"))
    assert not allow.allows(parse_ref("file:/run/secrets/../../home/runner/.ssh/id_rsa"))  # normalised first
    assert Allowlist.from_environ({}) is None and Allowlist.from_environ({"EXPSYNC_SECRET_REFS": " "}) is None


def test_a_pattern_without_a_scheme_is_a_configuration_error() -> None:
    with pytest.raises(ConfigError, match="EXPSYNC_SECRET_REFS"):
        Allowlist.from_environ({"EXPSYNC_SECRET_REFS": "env:A_*,PARTNER_*"})


def test_reference_outside_the_allowlist_is_e408_and_not_read(tmp_path: Path) -> None:
    red = Redactor()
    environ = {"EXPSYNC_SECRET_REFS": "env:PARTNER_*", "OTHER_KEY": VALUE, "PARTNER_KEY": "sk-partner-0002"}
    secrets, diags = resolve_all([SecretRef("env", "OTHER_KEY"), SecretRef("env", "PARTNER_KEY")],
                                 environ=environ, cwd=tmp_path, redactor=red)
    assert [d.code for d in diags] == ["E408"] and "env:OTHER_KEY" in diags[0].message
    assert [str(r) for r in secrets] == ["env:PARTNER_KEY"]
    assert red.redact(VALUE) == VALUE


# the commands -------------------------------------------------------------------------------


def _repo(tmp_path: Path, ref: str) -> Repo:
    return Repo(tmp_path).put(experiment("foo", "partner/foo", "active", [
        variant("a", "m-a", "env:PARTNER_FOO_KEY"), variant("b", "m-b", ref)]))


def test_validate_plan_and_apply_report_e408_at_the_reference(tmp_path: Path, pg_engine: sa.Engine) -> None:
    repo = _repo(tmp_path, "env:DEPLOY_KEY")
    env = cli_env(pg_engine, {"PARTNER_FOO_KEY": "sk-foo-0001", "DEPLOY_KEY": VALUE},
                  EXPSYNC_SECRET_REFS="env:PARTNER_*_KEY")
    for args in (["validate"], ["plan"], ["plan", "--no-secrets"], ["apply", "--yes"]):
        r = run_cli([*args, repo.path], env=env)
        assert r.code == 3, r.all
        line = next(ln for ln in r.err.splitlines() if "[E408]" in ln)
        assert re.search(r"foo\.yaml:\d+:\d+: variants\[1\]\.api_key: env:DEPLOY_KEY is not allowed", line), line
        assert VALUE not in r.all
    with pg_engine.connect() as c:
        assert c.execute(sa.text("SELECT count(*) FROM model_experiment")).scalar_one() == 0
    # without the allowlist, validate has no opinion about this reference
    env.pop("EXPSYNC_SECRET_REFS")
    assert run_cli(["validate", repo.path], env=env).code == 0


def test_validate_refuses_protected_references_offline(tmp_path: Path) -> None:
    repo = _repo(tmp_path, "env:GITHUB_TOKEN")
    r = run_cli(["validate", repo.path], env={"GITHUB_TOKEN": VALUE})
    assert r.code == 3 and "E409" in r.err and "variants[1].api_key" in r.err and VALUE not in r.all


def test_plan_warns_without_an_allowlist(tmp_path: Path, pg_engine: sa.Engine) -> None:
    repo = _repo(tmp_path, "env:PARTNER_FOO_KEY")
    env = cli_env(pg_engine, {"PARTNER_FOO_KEY": "sk-foo-0001"})
    r = run_cli(["plan", repo.path], env=env)
    assert r.code == 0 and "W401" in r.err and "EXPSYNC_SECRET_REFS" in r.err
    r = run_cli(["plan", repo.path], env=env | {"EXPSYNC_SECRET_REFS": "env:PARTNER_*"})
    assert r.code == 0 and "W401" not in r.all


@pytest.mark.parametrize("ci", [{"GITHUB_ACTIONS": "true"}, {"CI": "true"}])
def test_apply_in_ci_without_allowlist_refuses_with_exit_4(tmp_path: Path, pg_engine: sa.Engine,
                                                          ci: dict[str, str]) -> None:
    repo = _repo(tmp_path, "env:PARTNER_FOO_KEY")
    env = cli_env(pg_engine, {"PARTNER_FOO_KEY": "sk-foo-0001"}, **ci)
    r = run_cli(["apply", "--yes", repo.path], env=env)
    assert r.code == 4, r.all
    assert "E412" in r.err and "EXPSYNC_SECRET_REFS='env:PARTNER_*_KEY" in r.err  # the hint shows how
    with pg_engine.connect() as c:
        assert c.execute(sa.text("SELECT count(*) FROM model_experiment")).scalar_one() == 0
    # the explicit opt-out, and a real allowlist, both apply
    r = run_cli(["apply", "--yes", repo.path], env=env | {"EXPSYNC_SECRET_REFS": "*"})
    assert r.code == 0, r.all


def test_apply_outside_ci_needs_no_allowlist(tmp_path: Path, pg_engine: sa.Engine) -> None:
    repo = _repo(tmp_path, "env:PARTNER_FOO_KEY")
    r = run_cli(["apply", "--yes", repo.path], env=cli_env(pg_engine, {"PARTNER_FOO_KEY": "sk-foo-0001"}, CI="false"))
    assert r.code == 0, r.all


def test_malformed_allowlist_is_exit_3(tmp_path: Path, pg_engine: sa.Engine) -> None:
    repo = _repo(tmp_path, "env:PARTNER_FOO_KEY")
    env = cli_env(pg_engine, {"PARTNER_FOO_KEY": "sk-foo-0001"}, EXPSYNC_SECRET_REFS="PARTNER_*")
    r = run_cli(["plan", repo.path], env=env)
    assert r.code == 3 and "EXPSYNC_SECRET_REFS" in r.err and "Traceback" not in r.all


def test_docs_print_the_one_refused_list() -> None:
    text = (Path(__file__).resolve().parents[2] / "docs" / "secrets.md").read_text(encoding="utf-8")
    block = text.split("<!-- refused-env:start -->")[1].split("<!-- refused-env:end -->")[0]
    assert re.findall(r"`([^`]+)`", block) == list(REFUSED_ENV)


def test_every_credential_the_redactor_registers_is_also_refused_as_a_reference() -> None:
    """The two lists of expsync's own credentials agree: what the redactor masks from the start
    (the encryption key, store credentials, the database and Redis URLs) can never be sent to a
    partner as an api key either."""
    from expsync.secrets.redact import CONFIG_SECRETS, URL_VARS

    assert [n for n in (*CONFIG_SECRETS, *URL_VARS) if not is_refused_env(n)] == []
