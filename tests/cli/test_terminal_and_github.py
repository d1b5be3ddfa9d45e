"""What a person or a CI runner sees: colour only on a terminal and never with NO_COLOR;
GitHub Actions gets masks first, annotations, $GITHUB_OUTPUT and $GITHUB_STEP_SUMMARY."""

from __future__ import annotations

import os
import pty
import select
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SECRETS = {"FOO_PARTNER_KEY": "sk-live-CANARYfoo-111", "BAR_PARTNER_KEY": "sk-live-CANARYbar-222"}
BYOK = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc="


def _env(tmp: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EXPSYNC_", "GITHUB_", "NO_COLOR"))}
    return env | SECRETS | {"BYOK_ENCRYPTION_KEY": BYOK} | extra  # the embedded default in tmp


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    (tmp_path / "experiments").mkdir()
    for name in ("foo-rc-bakeoff.yaml", "bar-reasoning-draft.yaml"):
        shutil.copy(ROOT / "experiments" / name, tmp_path / "experiments" / name)
    return tmp_path


def _on_terminal(args: list[str], env: dict[str, str], cwd: Path) -> str:
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "expsync.cli", *args], env=env, cwd=cwd,
                            stdin=slave, stdout=slave, stderr=slave, close_fds=True)
    os.close(slave)
    out = b""
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            if select.select([master], [], [], 0.1)[0]:
                try:
                    chunk = os.read(master, 65536)
                except OSError:
                    break
                if not chunk:
                    break
                out += chunk
            elif proc.poll() is not None:
                break
        proc.wait(timeout=30)
        return out.decode(errors="replace")
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()


def test_colour_on_a_terminal_unless_no_color(repo: Path) -> None:
    coloured = _on_terminal(["plan", "experiments"], _env(repo), repo)
    assert "\x1b[" in coloured and "will be created" in coloured
    plain = _on_terminal(["plan", "experiments"], _env(repo, NO_COLOR="1"), repo)
    assert "\x1b[" not in plain and "will be created" in plain


def test_no_colour_when_piped(repo: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "expsync.cli", "plan", "experiments"], env=_env(repo), cwd=repo,
                       capture_output=True, text=True)
    assert r.returncode == 0 and "\x1b[" not in r.stdout


def test_github_actions_masks_first_then_outputs(repo: Path) -> None:
    gh_out, gh_sum = repo / "gh_output", repo / "gh_summary"
    env = _env(repo, GITHUB_ACTIONS="true", GITHUB_OUTPUT=str(gh_out), GITHUB_STEP_SUMMARY=str(gh_sum))
    r = subprocess.run([sys.executable, "-m", "expsync.cli", "plan", "experiments"], env=env, cwd=repo,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # one stream, as a log
    assert r.returncode == 0, r.stdout
    lines = r.stdout.splitlines()
    masks = [ln for ln in lines if ln.startswith("::add-mask::")]
    # the resolved keys, and expsync's own encryption key (registered before anything runs)
    assert sorted(masks) == sorted(f"::add-mask::{v}" for v in [*SECRETS.values(), BYOK])
    assert lines[: len(masks)] == masks  # before anything else the run prints
    outputs = dict(line.split("=", 1) for line in gh_out.read_text().splitlines())
    assert outputs["has_changes"] == "true" and outputs["refused"] == "false"
    assert outputs["create"] == "2" and outputs["errors"] == "0"
    summary = gh_sum.read_text()
    assert summary.startswith("<!-- expsync:plan -->") and "foo-rc-bakeoff" in summary
    assert "CANARY" not in summary and "CANARY" not in gh_out.read_text()


def test_github_annotations_for_a_refused_plan(repo: Path) -> None:
    text = (repo / "experiments" / "bar-reasoning-draft.yaml").read_text()
    (repo / "experiments" / "bar-reasoning-draft.yaml").write_text(text.replace("status: draft", "status: paused"))
    gh_out = repo / "gh_output"
    env = _env(repo, GITHUB_ACTIONS="true", GITHUB_OUTPUT=str(gh_out))
    r = subprocess.run([sys.executable, "-m", "expsync.cli", "plan", "experiments"], env=env, cwd=repo,
                       capture_output=True, text=True)
    assert r.returncode == 4
    assert "::error file=experiments/bar-reasoning-draft.yaml,line=6,col=9,title=E311::" in r.stderr
    assert "refused=true" in gh_out.read_text()
