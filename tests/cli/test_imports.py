"""Each command imports only what it uses: every command runs in a fresh interpreter through a
small wrapper that records ``sys.modules`` when the process exits, and the test checks which
heavy libraries were loaded (counts of modules, never a wall-clock time)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.desired.test_refusals import GOOD
from tests.integration.apply_support import cli_env, subprocess_env

REPO = Path(__file__).resolve().parents[2]

#: heavy libraries by kind (top-level package names)
DATABASE = ("sqlalchemy", "psycopg")
CACHE = ("redis",)
CRYPTO = ("cryptography",)
SECRET_STORES = ("boto3", "botocore", "hvac")
DEEPDIFF = ("deepdiff",)
ALEMBIC = ("alembic",)
OFFLINE_FORBIDDEN = DATABASE + CACHE + CRYPTO + SECRET_STORES + DEEPDIFF + ALEMBIC

#: runs ``expsync ARGS`` like the console script, then writes the names of the loaded modules
_WRAPPER = """
import json, sys
out = sys.argv[1]
sys.argv = ["expsync", *sys.argv[2:]]
try:
    from expsync.cli import main
    main()
finally:
    with open(out, "w") as f:
        json.dump(sorted(sys.modules), f)
"""

def loaded(args: list[str], tmp_path: Path, env: dict[str, str | None] | None = None) -> tuple[int, set[str], str]:
    """(exit code, top-level packages imported, output) of ``expsync ARGS`` in its own process."""
    code, modules, output = loaded_modules(args, tmp_path, env)
    return code, {m.split(".")[0] for m in modules}, output


def loaded_modules(args: list[str], tmp_path: Path, env: dict[str, str | None] | None = None) -> tuple[int, set[str], str]:
    """(exit code, every module imported, output) of ``expsync ARGS`` in its own process."""
    out = tmp_path / f"modules-{len(list(tmp_path.glob('modules-*')))}.json"
    base: dict[str, str | None] = {"EXPSYNC_DATABASE_URL": None, "EXPSYNC_REDIS_URL": None, "NO_COLOR": "1"}
    r = subprocess.run([sys.executable, "-c", _WRAPPER, str(out), *args], cwd=REPO, capture_output=True, text=True,
                       env=subprocess_env(base | (env or {})), stdin=subprocess.DEVNULL)
    return r.returncode, set(json.loads(out.read_text())), r.stdout + r.stderr


@pytest.mark.parametrize("args", [["schema"], ["validate", "experiments"]])
def test_offline_commands_load_no_database_cache_crypto_store_or_deepdiff(args: list[str], tmp_path: Path) -> None:
    code, mods, output = loaded(args, tmp_path)
    assert code == 0, output
    assert "click" in mods  # the wrapper saw the run
    assert sorted(mods & set(OFFLINE_FORBIDDEN)) == [], output


def test_version_loads_neither_yaml_nor_pydantic(tmp_path: Path) -> None:
    code, mods, output = loaded(["--version"], tmp_path)
    assert code == 0 and output.strip().startswith("expsync"), output
    assert "click" in mods
    assert sorted(mods & {*OFFLINE_FORBIDDEN, "yaml", "pydantic", "pydantic_core"}) == []


def test_invalid_files_also_load_no_database(tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "x.yaml").write_text("key: [unclosed\n")
    code, mods, output = loaded(["validate", str(bad)], tmp_path)
    assert code == 3, output
    assert sorted(mods & set(OFFLINE_FORBIDDEN)) == []


def test_plan_and_apply_do_not_load_alembic_on_an_initialised_database(tmp_path: Path, pg_engine: sa.Engine) -> None:
    folder = tmp_path / "experiments"
    folder.mkdir()
    (folder / "foo.yaml").write_text(GOOD)
    env = cli_env(pg_engine, {"FOO_KEY": "sk-foo-imports"})
    code, mods, output = loaded(["plan", str(folder)], tmp_path, env)
    assert code == 0, output
    assert "psycopg" in mods  # it did read the database
    assert sorted(mods & set(ALEMBIC + SECRET_STORES)) == [], output
    code, mods, output = loaded(["apply", "--yes", str(folder)], tmp_path, env)
    assert code == 0 and "Applied in one transaction" in output, output
    # apply on Postgres writes through psycopg alone (apply/write_pg.py), like plan reads
    assert "psycopg" in mods and "sqlalchemy" not in mods, sorted(m for m in mods if m.startswith("sqlalchemy"))
    assert sorted(mods & set(ALEMBIC + SECRET_STORES)) == [], output


@pytest.mark.parametrize("changed", [False, True])
def test_plan_on_postgres_does_not_load_sqlalchemy(tmp_path: Path, pg_engine: sa.Engine, changed: bool) -> None:
    """plan on Postgres reads through psycopg alone: it connects, detects the profile, checks
    the tables and reads the state without importing SQLAlchemy (with and without changes)."""
    folder = tmp_path / "experiments"
    folder.mkdir()
    (folder / "foo.yaml").write_text(GOOD)
    env = cli_env(pg_engine, {"FOO_KEY": "sk-foo-imports"})
    if not changed:
        assert loaded(["apply", "--yes", str(folder)], tmp_path, env)[0] == 0
    code, mods, output = loaded(["plan", "--detailed-exitcode", str(folder)], tmp_path, env)
    assert code == (2 if changed else 0), output
    assert {"psycopg", "orjson"} <= mods and "sqlalchemy" not in mods, output


def test_plan_with_a_redis_url_loads_neither_sqlalchemy_nor_redis_py(tmp_path: Path, pg_engine: sa.Engine,
                                                                     redis_url: str) -> None:
    """With ``EXPSYNC_REDIS_URL`` set (every CI job), plan still checks the URL up front and asks
    whether a refresh is pending, without SQLAlchemy (``cache/client.py``) or redis-py (a plain
    URL: the small client)."""
    folder = tmp_path / "experiments"
    folder.mkdir()
    (folder / "foo.yaml").write_text(GOOD)
    env = cli_env(pg_engine, {"FOO_KEY": "sk-foo-imports", "EXPSYNC_REDIS_URL": redis_url})
    assert loaded(["apply", "--yes", str(folder)], tmp_path, env)[0] == 0
    code, mods, output = loaded(["plan", "--detailed-exitcode", str(folder)], tmp_path, env)
    assert code == 0, output
    assert "sqlalchemy" not in mods and "redis" not in mods, output
    bad, _, output = loaded(["plan", str(folder)], tmp_path, env | {"EXPSYNC_REDIS_URL": "http://x"})
    assert bad == 3 and "EXPSYNC_REDIS_URL must start with" in output, output


def test_plan_on_sqlite_still_uses_sqlalchemy(tmp_path: Path) -> None:
    work = tmp_path / "w"
    (work / "experiments").mkdir(parents=True)
    (work / "experiments" / "foo.yaml").write_text(GOOD.replace("status: active", "status: draft"))
    url = f"sqlite:///{work / 'x.db'}"
    assert loaded(["db", "init"], tmp_path, {"EXPSYNC_DATABASE_URL": url})[0] == 0
    code, mods, output = loaded(["plan", "--no-secrets", str(work / "experiments")], tmp_path,
                                {"EXPSYNC_DATABASE_URL": url, "BYOK_ENCRYPTION_KEY": None})
    assert code == 0, output
    assert "sqlalchemy" in mods and "psycopg" not in mods, output


def test_db_init_is_what_loads_alembic(tmp_path: Path, pg_url: str) -> None:
    code, mods, output = loaded(["db", "init"], tmp_path, {"EXPSYNC_DATABASE_URL": pg_url})
    assert code == 0 and "created:" in output, output
    assert "alembic" in mods


def test_embedded_database_already_migrated_is_not_migrated_again(tmp_path: Path) -> None:
    """The embedded default is initialised on first use (Alembic loads); afterwards a plan sees
    the recorded revision with plain SQL and does not load Alembic."""
    work = tmp_path / "w"
    (work / "experiments").mkdir(parents=True)
    (work / "experiments" / "foo.yaml").write_text(GOOD.replace("status: active", "status: draft"))
    env: dict[str, str | None] = {"FOO_KEY": "sk-foo-imports", "BYOK_ENCRYPTION_KEY": None}
    wrapper_env = subprocess_env({"EXPSYNC_DATABASE_URL": None, "EXPSYNC_REDIS_URL": None, "NO_COLOR": "1", **env})
    runs = []
    for _ in range(2):
        out = tmp_path / f"m{len(runs)}.json"
        r = subprocess.run([sys.executable, "-c", _WRAPPER, str(out), "plan", "--no-secrets", "experiments"], cwd=work,
                           capture_output=True, text=True, env=wrapper_env, stdin=subprocess.DEVNULL)
        assert r.returncode == 0, r.stdout + r.stderr
        runs.append(set(json.loads(out.read_text())))
    assert "alembic" in runs[0] and "alembic" not in runs[1]
    assert os.path.exists(work / ".expsync" / "expsync.db")


@pytest.mark.parametrize("args", [["validate", "experiments"], ["validate", "--format", "json", "experiments"]])
def test_validate_uses_pydantic_core_without_pydantic_models(args: list[str], tmp_path: Path) -> None:
    """The document schema is a pydantic-core schema: validating never loads pydantic itself
    (``pydantic.main`` and its schema generation cost more than the rest of ``validate``)."""
    code, mods, output = loaded(args, tmp_path)
    assert code == 0, output
    assert "pydantic_core" in mods and "pydantic" not in mods, output


def test_schema_errors_load_no_pydantic_either(tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "x.yaml").write_text(GOOD.replace("weight: 1\n", "weight: '1'\n", 1))
    code, mods, output = loaded(["validate", str(bad)], tmp_path)
    assert code == 3 and "E112" in output, output
    assert "pydantic_core" in mods and "pydantic" not in mods, output


def test_validate_loads_no_secret_resolver(tmp_path: Path) -> None:
    """``validate`` checks references against the policy but resolves none: the resolvers and
    the stores' modules (``expsync.secrets`` loads its parts on first use) stay unloaded."""
    code, mods, output = loaded_modules(["validate", "experiments"], tmp_path)
    assert code == 0, output
    assert "expsync.secrets.policy" in mods, output
    resolvers = {"expsync.secrets.resolve", "expsync.secrets.env", "expsync.secrets.file", "expsync.secrets.aws",
                 "expsync.secrets.vault"}
    assert sorted(mods & resolvers) == [], output


def test_a_text_plan_or_apply_loads_only_the_text_renderer(tmp_path: Path, pg_engine: sa.Engine) -> None:
    """The JSON renderer builds pydantic models on import: text output does not load it."""
    folder = tmp_path / "experiments"
    folder.mkdir()
    (folder / "foo.yaml").write_text(GOOD)
    env = cli_env(pg_engine, {"FOO_KEY": "sk-foo-imports"})
    for args in (["plan", str(folder)], ["apply", "--yes", str(folder)], ["plan", "--format", "json", str(folder)]):
        code, mods, output = loaded(args, tmp_path, env)
        assert code == 0, output
        assert ("pydantic" in mods) == ("json" in args), (args, output)
