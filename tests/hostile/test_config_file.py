"""A hostile or broken ``expsync.toml``: a clear exit 3, never a traceback, a hang or a
silently ignored file (which would change the gateway profile)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.cli_helpers import run_cli

DOC = """\
key: a
public_model_id: partner/a
name: A
status: draft
variants:
  - label: one
    weight: 1
    upstream:
      internal_id: a1
      base_url: https://api.partner.example/v1
    api_key: env:PARTNER_A_KEY
"""


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    (tmp_path / ".git").mkdir()
    (tmp_path / "experiments").mkdir()
    (tmp_path / "experiments" / "a.yaml").write_text(DOC)
    return tmp_path


def _validate(repo: Path) -> tuple[int, str]:
    r = run_cli(["validate", "experiments"], env={}, cwd=repo)
    assert "Traceback" not in r.all and "unexpected error" not in r.all, r.all
    return r.code, r.all


@pytest.mark.parametrize("make", ["dir", "fifo", "devnull", "broken"])
def test_a_config_that_is_not_a_regular_file_is_refused_not_skipped(repo: Path, make: str) -> None:
    f = repo / "expsync.toml"
    if make == "dir":
        f.mkdir()
    elif make == "fifo":
        os.mkfifo(f)
    elif make == "devnull":
        f.symlink_to("/dev/null")
    else:
        f.symlink_to(repo / "missing.toml")
    code, out = _validate(repo)
    assert code == 3 and "not a regular file" in out, out


def test_deeply_nested_toml_is_a_config_error(repo: Path) -> None:
    (repo / "expsync.toml").write_text("x = " + "[" * 2000 + "]" * 2000 + "\n")
    code, out = _validate(repo)
    assert code == 3 and "expsync.toml" in out, out


def test_a_huge_config_is_refused_without_reading_it_whole(repo: Path) -> None:
    (repo / "expsync.toml").write_text('gateway_profile = "2026-05"\n' + "#" * (1 << 20) + "\n")
    code, out = _validate(repo)
    assert code == 3 and "larger than" in out, out


def test_a_regular_config_still_works(repo: Path) -> None:
    (repo / "expsync.toml").write_text('gateway_profile = "2026-05"\n')
    code, out = _validate(repo)
    assert code == 0 and "no profile configured" not in out, out
