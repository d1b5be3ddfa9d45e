"""The `expsync-validate` hook through the real pre-commit: `pre-commit try-repo <this repo>
expsync-validate --all-files` in a temporary git repository of experiment files."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from tests.ci.plans import foo

ROOT = Path(__file__).resolve().parents[2]
PRE_COMMIT = Path(sys.executable).parent / "pre-commit"


def git(cwd: Path, *args: str) -> str:
    env = os.environ | {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t",
                        "GIT_COMMITTER_EMAIL": "t@example.com", "GIT_CONFIG_GLOBAL": os.devnull}
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout


def snapshot_of_this_checkout(dest: Path) -> Path:
    """This checkout's working tree (tracked and new files, ignored ones left out), committed:
    try-repo installs the hook from a commit."""
    files = git(ROOT, "ls-files", "-z", "--cached", "--others", "--exclude-standard").split("\0")
    for name in filter(None, files):
        src = ROOT / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    git(dest, "init", "-q", "-b", "main")
    git(dest, "add", "-A")
    git(dest, "commit", "-q", "-m", "snapshot")
    return dest


def test_hook_passes_on_valid_files_and_fails_with_the_diagnostic(tmp_path: Path) -> None:
    hooks = snapshot_of_this_checkout(tmp_path / "expsync")
    user = tmp_path / "user"
    (user / "experiments").mkdir(parents=True)
    (user / "experiments" / "foo.yaml").write_text(yaml.safe_dump(foo(), sort_keys=False), encoding="utf-8")
    (user / "README.md").write_text("not an experiment\n")
    git(user, "init", "-q", "-b", "main")
    git(user, "add", "-A")
    env = os.environ | {"PRE_COMMIT_HOME": str(tmp_path / "cache"), "PIP_DISABLE_PIP_VERSION_CHECK": "1",
                        "GIT_CONFIG_GLOBAL": os.devnull, "NO_COLOR": "1"}
    env.pop("GITHUB_ACTIONS", None)

    def try_repo() -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(PRE_COMMIT), "try-repo", str(hooks), "expsync-validate", "--all-files",
                               "--color", "never"], cwd=user, env=env, capture_output=True, text=True,
                              stdin=subprocess.DEVNULL)

    ok = try_repo()
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "expsync validate" in ok.stdout and "Passed" in ok.stdout

    # a second experiment on the same public id, both active: a cross-file rule (E207)
    other = foo(status="active") | {"key": "foo-two"}
    (user / "experiments" / "foo.yaml").write_text(yaml.safe_dump(foo(status="active"), sort_keys=False))
    (user / "experiments" / "foo-two.yaml").write_text(yaml.safe_dump(other, sort_keys=False))
    git(user, "add", "-A")
    bad = try_repo()
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert "Failed" in bad.stdout and "[E207]" in bad.stdout and "foo-two.yaml" in bad.stdout
