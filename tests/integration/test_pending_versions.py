"""A future-dated version another writer (the admin UI, a scheduled swap) put in the database:
the plan neither activates past it (the admin API's guard reads each variant's latest version,
no time filter) nor inserts a version it would supersede, which no apply could make stick."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from tests.cli_helpers import run_cli
from tests.integration.apply_support import Repo, cli_env, experiment, upstream, variant
from tests.integration.gateway import admin_add_version, dump_tables

SECRETS = {"KEY_A": "sk-a-0001"}


def _applied(engine: sa.Engine, tmp_path: Path, status: str) -> tuple[Repo, dict[str, Any]]:
    repo = Repo(tmp_path)
    repo.put(experiment("pend", "partner/pend", status, [variant("a", upstream("m-a"), "env:KEY_A"),
                                                         variant("b", upstream("m-b"), "env:KEY_A")]))
    r = run_cli(["apply", "--yes", repo.path], env=cli_env(engine, SECRETS))
    assert r.code == 0, r.all
    return repo, repo.edit("pend")


def _schedule(engine: sa.Engine, label: str, internal_id: str, api_key: str) -> None:
    """What a scheduled swap writes: a version of ``label`` effective tomorrow."""
    with engine.begin() as c:
        vid = c.execute(sa.text("SELECT id FROM model_experiment_variant WHERE label = :l"), {"l": label}).scalar_one()
        admin_add_version(c, vid, upstream(internal_id), api_key,
                          effective_at=datetime.now(timezone.utc) + timedelta(days=1))


def test_activation_is_refused_while_a_variant_has_a_pending_version(pg_engine: sa.Engine, tmp_path: Path) -> None:
    repo, doc = _applied(pg_engine, tmp_path, "draft")
    _schedule(pg_engine, "a", "m-a", "sk-a-0001")  # the same upstream and key, effective tomorrow
    doc["status"] = "active"
    repo.put(doc)
    env = cli_env(pg_engine, SECRETS)
    with pg_engine.connect() as c:
        before = dump_tables(c)
    for cmd in (["plan"], ["apply", "--yes"]):
        r = run_cli([*cmd, repo.path], env=env)
        assert r.code == 4 and "E309" in r.all and "W502" in r.all, r.all
    with pg_engine.connect() as c:
        assert dump_tables(c) == before


def test_hot_swap_or_rotation_under_a_pending_version_is_refused(pg_engine: sa.Engine, tmp_path: Path) -> None:
    """Before: apply inserted a version effective now, the pending one stayed the latest (so it
    would take over tomorrow and undo the change, a rotated key going back to the old one) and
    every later plan, and apply, inserted yet another version: never converged."""
    repo, doc = _applied(pg_engine, tmp_path, "active")
    _schedule(pg_engine, "a", "m-a-next", "sk-a-0001")
    swapped = repo.edit("pend")
    swapped["variants"][0]["upstream"]["internal_id"] = "m-a-hotfix"
    rotated = repo.edit("pend")
    rotated["variants"][0]["upstream"]["internal_id"] = "m-a-next"
    with pg_engine.connect() as c:
        before = dump_tables(c)
    for want, secrets in ((swapped, SECRETS), (rotated, {"KEY_A": "sk-a-rotated-0002"})):
        repo.put(want)
        env = cli_env(pg_engine, secrets)
        for cmd in (["plan"], ["apply", "--yes"]):
            r = run_cli([*cmd, repo.path], env=env)
            assert r.code == 4 and "E313" in r.all, r.all
        with pg_engine.connect() as c:
            assert dump_tables(c) == before
    # the YAML saying what the pending version holds has nothing to insert
    repo.put(rotated)
    env = cli_env(pg_engine, SECRETS)
    r = run_cli(["apply", "--yes", repo.path], env=env)
    assert r.code == 0 and "E313" not in r.all, r.all
    p = run_cli(["plan", "--detailed-exitcode", repo.path], env=env)
    assert p.code == 0 and "No changes" in p.out, p.all
    with pg_engine.connect() as c:
        assert c.execute(sa.text("SELECT count(*) FROM model_experiment_variant_version")).scalar_one() == 3
