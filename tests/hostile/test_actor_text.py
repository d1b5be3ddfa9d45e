"""``--actor`` and ``--revision`` are written to ``created_by*`` and the audit row, which the
gateway's admin UI shows raw: control, bidi and zero-width characters are refused (exit 3)
before anything is written."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from tests.cli_helpers import run_cli

SAMPLES = Path(__file__).resolve().parents[2] / "experiments"


@pytest.mark.parametrize("flag", ["--actor", "--revision"])
@pytest.mark.parametrize("value", ["a\x1b]0;pwned\x07", "ops\u202egnp.exe", "a\u200bb", "x\ny"])
def test_invisible_characters_in_written_flags_are_refused(tmp_path: Path, flag: str, value: str) -> None:
    folder = tmp_path / "experiments"
    shutil.copytree(SAMPLES, folder)
    db = tmp_path / "x.db"
    env = {"EXPSYNC_DATABASE_URL": f"sqlite:///{db}", "BYOK_ENCRYPTION_KEY": "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc="}
    assert run_cli(["db", "init"], env=env).code == 0
    r = run_cli(["apply", "--yes", flag, value, str(folder)], env=env)
    assert r.code == 3, r.all
    assert flag in r.all and "\x1b" not in r.all and "\u202e" not in r.all
    with sqlite3.connect(db) as conn:
        assert conn.execute("select count(*) from model_experiment").fetchone() == (0,)
        assert conn.execute("select count(*) from expsync_audit").fetchone() == (0,)


@pytest.mark.parametrize(("var", "said"), [("EXPSYNC_ACTOR", "--actor / EXPSYNC_ACTOR"),
                                           ("GITHUB_SHA", "--revision / GITHUB_SHA")])
def test_a_refused_value_from_the_environment_names_its_variable(tmp_path: Path, var: str, said: str) -> None:
    folder = tmp_path / "experiments"
    shutil.copytree(SAMPLES, folder)
    env = {"EXPSYNC_DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}",
           "BYOK_ENCRYPTION_KEY": "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=", var: "ops\u202egnp"}
    assert run_cli(["db", "init"], env=env).code == 0
    r = run_cli(["apply", "--yes", str(folder)], env=env)
    assert r.code == 3 and said in r.err and "\u202e" not in r.all, r.all
