"""action.yml and every example workflow pass GitHub's JSON Schemas and zizmor (offline) with
no finding of medium severity or above; the README's "Adopt in CI" files all exist."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
WORKFLOWS = sorted((ROOT / "examples" / "github").glob("*.yml"))


def test_the_examples_are_there() -> None:
    assert {p.name for p in WORKFLOWS} == {"plan.yml", "apply.yml", "drift.yml"}


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, cwd=ROOT, stdin=subprocess.DEVNULL)


def test_action_matches_the_github_actions_schema() -> None:
    r = _run(str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.github-actions", "action.yml")
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_workflow_matches_the_github_workflows_schema(workflow: Path) -> None:
    r = _run(str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.github-workflows", str(workflow))
    assert r.returncode == 0, r.stdout + r.stderr


def test_zizmor_finds_nothing_of_medium_severity_or_above() -> None:
    files = ["action.yml", *[str(p.relative_to(ROOT)) for p in WORKFLOWS]]
    r = _run(str(BIN / "zizmor"), "--offline", "--config", "zizmor.yml", "--min-severity", "medium", "--format",
             "plain", *files)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "No findings" in r.stdout + r.stderr
    for f in files:
        assert f"completed {f}" in r.stderr  # each file was audited, as a workflow or an action


def test_zizmor_would_catch_an_injection(tmp_path: Path) -> None:
    """The check is live: a run step interpolating the pull request title is a finding."""
    original = (ROOT / "examples" / "github" / "plan.yml").read_text(encoding="utf-8")
    text = original.replace(
        "      - name: Validate (offline)\n",
        '      - name: Echo\n        run: echo "${{ github.event.pull_request.title }}"\n'
        "      - name: Validate (offline)\n")
    assert text != original
    probe = tmp_path / "probe.yml"
    probe.write_text(text, encoding="utf-8")
    r = _run(str(BIN / "zizmor"), "--offline", "--config", str(ROOT / "zizmor.yml"), "--min-severity", "medium",
             str(probe))
    assert r.returncode != 0 and "template-injection" in r.stdout + r.stderr


def test_zizmor_relaxations_say_why() -> None:
    lines = (ROOT / "zizmor.yml").read_text(encoding="utf-8").splitlines()
    for i, line in enumerate(lines):
        if re.match(r"\s+\"[^\"*]+\":\s*ref-pin", line) or re.search(r"disable:\s*true|ignore:", line):
            assert lines[i - 1].strip().startswith("#"), f"zizmor.yml line {i + 1} relaxes a rule without a comment"


def test_every_file_the_readme_says_to_copy_is_checked_here() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Adopt in CI", 1)[1].split("\n## ", 1)[0]
    linked = set(re.findall(r"\]\(((?:examples|docs)/[^)]+|action\.yml)\)", section))
    assert {"examples/github/plan.yml", "examples/github/apply.yml", "examples/github/drift.yml",
            "action.yml"} <= linked
    for path in linked:
        assert (ROOT / path).is_file(), path
    checked = {"action.yml", "docs/ci.md"} | {str(p.relative_to(ROOT)) for p in WORKFLOWS}
    assert linked <= checked
    # the secret-reference allowlist is set wherever expsync plans or applies
    for wf in WORKFLOWS:
        assert re.search(r'^\s+EXPSYNC_SECRET_REFS: "env:PARTNER_\*_KEY, aws-sm:partners/\*',
                         wf.read_text(encoding="utf-8"), re.M), wf.name
