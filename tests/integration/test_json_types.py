"""A boolean is not a number, end to end on Postgres: the gateway (JavaScript) sends
``"stream": true`` and ``"stream": 1`` differently, so expsync must not take them for equal as
Python's ``==`` does. A row changed outside git from ``true`` to ``1`` is drift and is reverted;
a YAML edit from ``1`` to ``true`` is a new version the gateway then reads."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa

from tests.cli_helpers import run_cli
from tests.integration.apply_support import Repo, cli_env, experiment, upstream, variant
from tests.integration.gateway import gateway_routes

SECRETS = {"JSON_KEY": "sk-json-0001"}
PID = "partner/json-types"


def _doc(stream: object) -> dict[str, Any]:
    return experiment("json-types", PID, "active", [
        variant("a", upstream("m-a", extra_body={"stream": stream, "n": 2}), "env:JSON_KEY"),
        variant("b", "m-b", "env:JSON_KEY"),
    ])


def _gateway_stream(engine: sa.Engine) -> object:
    with engine.connect() as conn:
        routes = {r["label"]: r for r in gateway_routes(conn, PID)}
    return routes["a"]["upstream"]["extra_body"]["stream"]


def _apply(repo: Repo, env: dict[str, Any]) -> None:
    r = run_cli(["apply", "--yes", repo.path], env=env)
    assert r.code == 0 and "Applied in one transaction" in r.out, r.all
    p = run_cli(["plan", "--detailed-exitcode", repo.path], env=env)
    assert p.code == 0 and "No changes" in p.out, p.all


def test_true_changed_to_1_outside_git_is_drift_and_reverted(tmp_path: Path, pg_engine: sa.Engine) -> None:
    repo, env = Repo(tmp_path).put(_doc(True)), cli_env(pg_engine, SECRETS)
    _apply(repo, env)
    with pg_engine.begin() as conn:  # the admin UI (or psql) edits the current version in place
        n = conn.execute(sa.text(
            "UPDATE model_experiment_variant_version SET upstream = jsonb_set(upstream, '{extra_body,stream}', '1') "
            "WHERE upstream->'extra_body'->'stream' = 'true'")).rowcount
    assert n == 1 and _gateway_stream(pg_engine) == 1

    p = run_cli(["plan", "--detailed-exitcode", repo.path], env=env)
    assert p.code == 2, p.all  # Python's == saw no change here (True == 1)
    assert "W501" in p.all and "variants.a.upstream was changed" in p.all, p.all
    assert "extra_body.stream" in p.out, p.out

    _apply(repo, env)
    assert _gateway_stream(pg_engine) is True


def test_a_git_edit_from_1_to_true_inserts_a_version(tmp_path: Path, pg_engine: sa.Engine) -> None:
    repo, env = Repo(tmp_path).put(_doc(1)), cli_env(pg_engine, SECRETS)
    _apply(repo, env)
    assert _gateway_stream(pg_engine) == 1 and _gateway_stream(pg_engine) is not True

    repo.put(_doc(True))
    p = run_cli(["plan", "--detailed-exitcode", repo.path], env=env)
    assert p.code == 2, p.all  # Python's == saw no change here (1 == True)
    assert "W501" not in p.all and "extra_body.stream" in p.out, p.out

    _apply(repo, env)
    assert _gateway_stream(pg_engine) is True


def test_1_and_1_0_are_the_same_number_for_the_gateway(tmp_path: Path, pg_engine: sa.Engine) -> None:
    repo, env = Repo(tmp_path).put(_doc(1)), cli_env(pg_engine, SECRETS)
    _apply(repo, env)
    repo.put(_doc(1.0))  # JSON.parse gives the same number: no version to insert
    p = run_cli(["plan", "--detailed-exitcode", repo.path], env=env)
    assert p.code == 0 and "No changes" in p.out, p.all
