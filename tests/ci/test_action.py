"""The composite action's shell steps, run as the runner would run them: each `run:` script of
action.yml through `bash -e -o pipefail`, with its `env:` expressions evaluated, a fake GITHUB_*
environment and per-step GITHUB_OUTPUT files, against the local GitHub API stand-in.

Only `uses:` steps (setup-python) and the pip install step are not run: the install step's one
output, the path of the `expsync` executable, is this checkout's (editable) install."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import yaml

from tests.ci.fake_github import REPO, TOKEN, FakeGitHub
from tests.ci.plans import SECRETS, foo
from tests.integration.apply_support import Repo, url_of

ROOT = Path(__file__).resolve().parents[2]
ACTION = yaml.safe_load((ROOT / "action.yml").read_text(encoding="utf-8"))
EXPSYNC = Path(sys.executable).parent / "expsync"
_EXPR = re.compile(r"\$\{\{\s*(.+?)\s*\}\}")


@dataclass
class Run:
    outputs: dict[str, str]  # the action's outputs
    exit_code: int  # of the last step that ran (the action's result)
    log: str


def _parse_output_file(path: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if "=" in line:
            k, v = line.split("=", 1)
            out[k] = v
    return out


def run_action(inputs: Mapping[str, str], *, workspace: Path, env: Mapping[str, str], event_name: str = "pull_request",
               ) -> Run:
    temp = workspace / "_runner_temp"
    temp.mkdir(exist_ok=True)
    ctx: dict[str, Any] = {
        "github": {"action_path": str(ROOT), "event_name": event_name, "token": TOKEN},
        "runner": {"temp": str(temp)},
        "steps": {"install": {"outputs": {"expsync": str(EXPSYNC)}}},
    }
    ctx["inputs"] = {name: spec.get("default", "") for name, spec in ACTION["inputs"].items()}
    ctx["inputs"] = {k: evaluate(v, ctx) if isinstance(v, str) else str(v) for k, v in ctx["inputs"].items()}
    unknown = set(inputs) - set(ctx["inputs"])
    assert not unknown, unknown
    ctx["inputs"] |= dict(inputs)
    log = []
    code = 0
    for i, step in enumerate(ACTION["runs"]["steps"]):
        if "uses" in step or step.get("id") == "install":
            continue
        assert step["shell"] == "bash" and "${{" not in step["run"], "run scripts read env vars only"
        output = temp / f"output-{i}"
        output.write_text("")
        step_env = dict(env) | {"GITHUB_OUTPUT": str(output)}
        step_env |= {k: evaluate(str(v), ctx) for k, v in step.get("env", {}).items()}
        script = temp / f"step-{i}.sh"
        script.write_text(step["run"])
        p = subprocess.run(["bash", "--noprofile", "--norc", "-e", "-o", "pipefail", str(script)], env=step_env,
                           cwd=workspace, capture_output=True, text=True, stdin=subprocess.DEVNULL)
        log.append(f"## {step['name']} (exit {p.returncode})\n{p.stdout}{p.stderr}")
        if "id" in step:
            ctx["steps"][step["id"]] = {"outputs": _parse_output_file(output)}
        code = p.returncode
        if code != 0:
            break  # a failed step ends a composite action
    outputs = {name: evaluate(spec["value"], ctx) for name, spec in ACTION["outputs"].items()}
    return Run(outputs, code, "\n".join(log))


def evaluate(text: str, ctx: Mapping[str, Any]) -> str:
    """The expression forms action.yml uses: context property paths only (a test fails on any
    other expression, which keeps the action simple enough to check here)."""
    def one(m: re.Match[str]) -> str:
        expr = m.group(1)
        assert re.fullmatch(r"[a-z_]+(\.[A-Za-z0-9_-]+)+", expr), f"unsupported expression: {expr}"
        value: Any = ctx
        for part in expr.split("."):
            value = value.get(part, "") if isinstance(value, dict) else ""
        return str(value)
    return _EXPR.sub(one, text)


def base_env(github: FakeGitHub, workspace: Path, engine: sa.Engine) -> dict[str, str]:
    event = workspace / "_event.json"
    event.write_text(json.dumps({"number": 7, "pull_request": {"number": 7}}))
    keep = {k: os.environ[k] for k in ("PATH", "HOME", "LANG") if k in os.environ}
    return keep | SECRETS | {
        "GITHUB_ACTIONS": "true", "CI": "true", "GITHUB_API_URL": github.api_url, "GITHUB_REPOSITORY": REPO,
        "GITHUB_EVENT_PATH": str(event), "GITHUB_STEP_SUMMARY": str(workspace / "_summary.md"),
        "RUNNER_TEMP": str(workspace / "_runner_temp"), "EXPSYNC_DATABASE_URL": url_of(engine),
        "BYOK_ENCRYPTION_KEY": __import__("tests.integration.gateway", fromlist=["x"]).TEST_KEY_B64,
        "EXPSYNC_SECRET_REFS": "env:PARTNER_*_KEY", "EXPSYNC_GITHUB_BACKOFF": "0.001",
    }


def test_plan_comment_apply_through_the_action(tmp_path: Path, sqlite_engine: sa.Engine, github: FakeGitHub) -> None:
    repo = Repo(tmp_path).put(foo("First"))
    env = base_env(github, tmp_path, sqlite_engine)

    run = run_action({"command": "plan"}, workspace=tmp_path, env=env)
    assert run.exit_code == 0, run.log  # changes (exit 2) are not a failure of a plan
    assert run.outputs["exit_code"] == "2" and run.outputs["has_changes"] == "true", run.log
    assert run.outputs["refused"] == "false"
    counts = {k: run.outputs[k] for k in ("create", "update", "transition", "delete", "operations")}
    assert counts == {"create": "1", "update": "0", "transition": "0", "delete": "0",
                      "operations": counts["operations"]} and int(counts["operations"]) > 1, run.outputs
    plan_file = Path(run.outputs["plan_file"])
    assert plan_file.is_absolute() and json.loads(plan_file.read_text())["has_changes"] is True
    (c,) = github.comments
    assert "comment created" in run.log and "First" in c["body"]
    assert "### expsync plan" in (tmp_path / "_summary.md").read_text()

    d = repo.edit("foo")
    d["name"] = "Second"
    repo.put(d)
    run = run_action({"command": "plan"}, workspace=tmp_path, env=env)
    assert run.exit_code == 0 and "comment updated" in run.log, run.log
    assert len(github.comments) == 1 and github.comments[0]["id"] == c["id"]
    assert "Second" in github.comments[0]["body"]

    # a drift check: the same plan with fail-on-changes fails the job with exit 2, no comment
    run = run_action({"command": "plan", "fail-on-changes": "true", "comment": "false"}, workspace=tmp_path, env=env)
    assert run.exit_code == 2 and run.outputs["has_changes"] == "true"
    assert len(github.writes()) == 2

    # no comment outside pull_request events unless asked for
    run = run_action({"command": "plan"}, workspace=tmp_path, env=env, event_name="push")
    assert run.exit_code == 0 and len(github.writes()) == 2

    run = run_action({"command": "apply"}, workspace=tmp_path, env=env, event_name="push")
    assert run.exit_code == 0, run.log
    assert run.outputs["exit_code"] == "0"

    run = run_action({"command": "plan"}, workspace=tmp_path, env=env)
    assert run.exit_code == 0 and run.outputs["has_changes"] == "false" and run.outputs["exit_code"] == "0"
    assert len(github.comments) == 1 and "No changes" in github.comments[0]["body"]
    assert TOKEN not in run.log

    # a refused plan is still posted, then fails the job with exit 4
    d = repo.edit("foo")
    d["status"] = "active"
    repo.put(d)
    assert run_action({"command": "apply"}, workspace=tmp_path, env=env, event_name="push").exit_code == 0
    d["variants"][0]["weight"] = 5  # frozen once active
    repo.put(d)
    run = run_action({"command": "plan"}, workspace=tmp_path, env=env)
    assert run.exit_code == 4 and run.outputs["refused"] == "true" and run.outputs["exit_code"] == "4", run.log
    assert len(github.comments) == 1 and "Plan refused" in github.comments[0]["body"]


def test_failures_pass_through(tmp_path: Path, sqlite_engine: sa.Engine, github: FakeGitHub) -> None:
    repo = Repo(tmp_path).put(foo())
    env = base_env(github, tmp_path, sqlite_engine)
    (repo.dir / "broken.yaml").write_text("key: [unclosed\n")

    run = run_action({"command": "validate"}, workspace=tmp_path, env=env)
    assert run.exit_code == 3 and run.outputs["exit_code"] == "3", run.log
    assert "broken.yaml:" in run.log and "::error file=" in run.log

    run = run_action({"command": "plan"}, workspace=tmp_path, env=env)
    assert run.exit_code == 3 and run.outputs["has_changes"] == "false" and run.outputs["plan_file"] == ""
    assert github.seen == []  # no plan, no comment

    (repo.dir / "broken.yaml").unlink()
    # extra args and a working directory; a fork's run: --no-secrets, and the token may not comment
    github.failures.append(("POST", 403, {}, {"message": "Resource not accessible by integration"}))
    sub = tmp_path / "sub"
    sub.mkdir()
    shutil.move(str(repo.dir), sub / "experiments")
    run = run_action({"command": "plan", "args": "--no-secrets", "working-directory": "sub"}, workspace=tmp_path,
                     env={k: v for k, v in env.items() if k not in SECRETS})
    assert run.exit_code == 0 and run.outputs["exit_code"] == "2", run.log
    assert "read-only token" in run.log and github.comments == []

    run = run_action({"command": "destroy"}, workspace=tmp_path, env=env)
    assert run.exit_code == 3 and "input command must be" in run.log


def test_apply_the_reviewed_plan_file(tmp_path: Path, sqlite_engine: sa.Engine, github: FakeGitHub) -> None:
    repo = Repo(tmp_path).put(foo("Reviewed"))
    env = base_env(github, tmp_path, sqlite_engine)
    saved = tmp_path / "reviewed.json"
    run = run_action({"command": "plan", "plan-file": str(saved), "comment": "false"}, workspace=tmp_path, env=env)
    assert run.exit_code == 0 and run.outputs["plan_file"] == str(saved), run.log

    d = repo.edit("foo")
    d["name"] = "changed after the review"
    repo.put(d)
    run = run_action({"command": "apply", "plan-file": str(saved)}, workspace=tmp_path, env=env, event_name="push")
    assert run.exit_code == 5 and run.outputs["exit_code"] == "5" and "stale plan" in run.log, run.log

    repo.put(foo("Reviewed"))
    run = run_action({"command": "apply", "plan-file": str(saved)}, workspace=tmp_path, env=env, event_name="push")
    assert run.exit_code == 0, run.log
    with sqlite_engine.connect() as c:
        assert c.execute(sa.text("SELECT name FROM model_experiment")).scalar_one() == "Reviewed"


def test_only_the_comment_step_gets_the_token() -> None:
    holders = [s.get("id") for s in ACTION["runs"]["steps"]
               if any("github-token" in str(v) or "github.token" in str(v) for v in s.get("env", {}).values())]
    assert holders == ["comment"]


def test_no_bare_array_expansion_under_set_u() -> None:
    """``"${a[@]}"`` of an empty array is an "unbound variable" error under ``set -u`` in bash
    before 4.4 (macOS runners' /bin/bash is 3.2): empty ``args`` would abort the step. The run
    scripts expand arrays as ``${a[@]+"${a[@]}"}``."""
    for step in ACTION["runs"]["steps"]:
        script = step.get("run", "")
        bare = re.findall(r'(?<!\+)"\$\{\w+\[@\]\}"', script)
        assert not bare, (step.get("name"), bare)
