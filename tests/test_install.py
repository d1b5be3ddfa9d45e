"""`pip install .` into a fresh virtualenv gives a working `expsync` (issue 2 acceptance).

Installs from this checkout without the test extras, so it also proves the runtime
dependencies are declared and that package data (migrations, schema) is shipped.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]


def test_fresh_virtualenv_install_runs_validate(tmp_path: Path) -> None:
    src = tmp_path / "src"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(".venv", ".git", "*.egg-info", "build", ".expsync", "__pycache__"))
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    py = env_dir / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTHON"))}
    subprocess.run([str(py), "-m", "pip", "install", "-q", str(src)], check=True, env=env, cwd=tmp_path)
    exe = env_dir / "bin" / "expsync"
    r = subprocess.run([str(exe), "validate", "experiments"], cwd=src, env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "3 experiment(s) in 3 file(s) are valid." in r.stdout
    r = subprocess.run([str(exe), "--version"], env=env, capture_output=True, text=True)
    assert r.stdout.strip().endswith(sys.modules["expsync"].__version__)
