"""What apply sends to Postgres, counted by a proxy that parses the frontend protocol
(``bench/pgwire.py``): the server-side executions (Execute + simple Query messages) of an apply
do not depend on the number of rows it writes. Every write is one multi-row statement whose
rows travel as array parameters, so 1,000 hot swaps execute exactly as many statements as 10."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from bench.pgwire import WireCounter
from expsync.apply.run import ApplyResult, apply
from expsync.desired.loader import LoadOptions, load_desired
from expsync.pipeline import NotInitialized, Settings
from expsync.secrets import Redactor, resolve_all, uses_in
from expsync.state.connection import connect
from expsync.state.db import make_engine
from tests.cli_helpers import run_cli
from tests.integration.apply_support import Repo, cli_env, experiment, upstream, url_of, variant
from tests.integration.gateway import TEST_KEY_B64, decrypt

SECRETS = {"KEY_A": "sk-wire-a-000111", "KEY_B": "sk-wire-b-000222"}


def _apply(repo: Repo, root: Path, engine: sa.Engine, via: str = "engine") -> ApplyResult:
    """``apply()`` through the engine (SQLAlchemy Core writes) or, ``via="psycopg"``, a bare
    psycopg connection to the same database (SQL text writes, what the CLI uses on Postgres)."""
    env = {"BYOK_ENCRYPTION_KEY": TEST_KEY_B64, **SECRETS}
    desired, diags = load_desired([repo.path], LoadOptions())
    assert not [d for d in diags if d.is_error], diags
    secrets, diags = resolve_all(uses_in(desired), environ=env, cwd=root, redactor=Redactor())
    assert not diags
    if via == "engine":
        return apply(engine, desired, secrets, Settings(environ=env, cwd=root))
    db = connect(url_of(engine))
    assert db is not None
    try:
        return apply(db, desired, secrets, Settings(environ=env, cwd=root))
    finally:
        db.close()


def _counted(repo: Repo, root: Path, pg_engine: sa.Engine, via: str = "engine") -> tuple[ApplyResult, dict[str, Any]]:
    """Apply through the counting proxy; the wire counts of the whole apply transaction."""
    with WireCounter() as w:
        engine = make_engine(w.url(url_of(pg_engine)))
        try:
            result = _apply(repo, root, engine, via)
        finally:
            engine.dispose()
        return result, w.stats()


def _swap_doc(i: int, tag: str) -> dict[str, Any]:
    return experiment(f"exp-{i:04d}", f"partner/exp-{i:04d}", "active", [
        variant("control", upstream(f"m-{i}-control-{tag}", extra_body={"temperature": 0.2}), "env:KEY_A"),
        variant("candidate", f"m-{i}-candidate", "env:KEY_B"),
    ])


@pytest.mark.parametrize("via", ["engine", "psycopg"])
def test_hot_swap_executions_do_not_grow_with_rows(tmp_path: Path, pg_engine: sa.Engine, via: str) -> None:
    repo = Repo(tmp_path)
    repo.put(*[_swap_doc(i, "r0") for i in range(1000)])
    _apply(repo, tmp_path, pg_engine)

    seen = {}
    for n, tag in ((10, "r1"), (1000, "r2")):
        repo.put(*[_swap_doc(i, tag) for i in range(n)])
        result, stats = _counted(repo, tmp_path, pg_engine, via)
        assert result.plan.op_counts()["InsertVersion"] == n, result.plan.op_counts()
        seen[n] = stats
    # the executions the server runs (Execute + Query messages: BEGIN, the lock, the re-plan's
    # reads, one INSERT ... SELECT copying the keys, one DELETE and one INSERT for the ownership
    # records, one INSERT of the outbox keys, the audit row, COMMIT) and the round trips
    assert seen[10]["executes"] == seen[1000]["executes"], (seen[10], seen[1000])
    assert seen[10]["round_trips"] == seen[1000]["round_trips"], (seen[10], seen[1000])
    # engine: startup, dialect question, BEGIN, lock_timeout + advisory lock + table check
    # (one statement), clock + reads (one batch), 3 row locks, 4 writes, audit, COMMIT;
    # psycopg: startup, BEGIN with the lock statement, the reads, the 3 row locks in one batch,
    # 4 writes, audit, COMMIT
    assert (seen[1000]["round_trips"], seen[1000]["executes"]) == ((14, 17) if via == "engine" else (10, 16)), seen[1000]
    with pg_engine.connect() as c:
        assert c.execute(sa.text("SELECT count(*) FROM model_experiment_variant_version")).scalar_one() == 2000 + 1010
        rows = c.execute(sa.text(
            "SELECT v.upstream->>'internal_id' FROM model_experiment_variant_version v "
            "JOIN model_experiment_variant mv ON mv.id = v.variant_id WHERE mv.label = 'control' "
            "ORDER BY v.effective_at DESC, v.id LIMIT 1")).scalar_one()
        assert rows.endswith("-control-r2")


def _draft(i: int, step: int) -> dict[str, Any] | None:
    """Experiment ``i`` at ``step``; every step changes every experiment the same way."""
    key, pid = f"kind-{i:03d}", f"partner/kind-{i:03d}"
    if step == 0:  # creates: experiment, 3 variants, 3 fresh versions, ownership records
        return experiment(key, pid, "draft", [
            variant("a", f"m-{i}-a", "env:KEY_A", key="va"),
            variant("b", f"m-{i}-b", "env:KEY_A", key="vb"),
            variant("c", f"m-{i}-c", "env:KEY_B", key="vc"),
        ])
    if step == 1:  # field updates, weights, swapped labels, an upstream copy, a new key
        return experiment(key, pid, "draft", [
            variant("a", f"m-{i}-a2", "env:KEY_A", key="va", weight=2),
            variant("c", f"m-{i}-b", "env:KEY_A", key="vb"),
            variant("b", f"m-{i}-c", "env:KEY_A", key="vc"),
        ], name=f"Renamed {i}", description="now described", archived=True)
    if step == 2:  # a removed variant, unarchive, activation
        return experiment(key, pid, "active", [
            variant("a", f"m-{i}-a2", "env:KEY_A", key="va", weight=2),
            variant("c", f"m-{i}-b", "env:KEY_A", key="vb"),
        ], name=f"Renamed {i}", description="now described", archived=False)
    if step in (3, 4):  # pause, then complete and archive
        return experiment(key, pid, "paused" if step == 3 else "completed", [
            variant("a", f"m-{i}-a2", "env:KEY_A", key="va", weight=2),
            variant("c", f"m-{i}-b", "env:KEY_A", key="vb"),
        ], name=f"Renamed {i}", description="now described", archived=step == 4)
    return None  # the file is removed: released


def _executions_per_step(root: Path, pg_engine: sa.Engine, n: int, via: str = "engine",
                         after: Callable[[], None] = lambda: None) -> list[tuple[dict[str, int], int]]:
    """Six applies making every kind of change to ``n`` experiments each; ``after`` runs after each."""
    repo = Repo(root)
    # one experiment that stays: a plan removing every managed experiment is refused (E504)
    repo.put(experiment("anchor", "partner/anchor", "draft", [variant("a", "m-anchor", "env:KEY_A")]))
    _apply(repo, root, pg_engine, via)
    out = []
    for step in range(6):
        for i in range(n):
            doc = _draft(i, step)
            if doc is None:
                repo.remove(f"kind-{i:03d}")
            else:
                repo.put(doc)
            if step == 0:  # a draft deleted in the next step
                repo.put(experiment(f"gone-{i:03d}", f"partner/gone-{i:03d}", "draft", [variant("a", "m", "env:KEY_A")]))
            elif step == 1:
                repo.remove(f"gone-{i:03d}")
        result, stats = _counted(repo, root, pg_engine, via)
        counts = result.plan.op_counts()
        assert all(v % n == 0 for v in counts.values()), counts  # the same ops for every experiment
        out.append(({k: v // n for k, v in counts.items()}, stats["executes"]))
        after()
    return out


def _empty(engine: sa.Engine) -> None:
    with engine.begin() as c:
        c.execute(sa.text("TRUNCATE model_experiment, model_experiment_variant, model_experiment_variant_version, "
                          "expsync_managed, expsync_cache_outbox CASCADE"))
        c.execute(sa.text("DELETE FROM expsync_audit"))


@pytest.mark.parametrize("via", ["engine", "psycopg"])
def test_every_kind_of_write_executes_a_constant_number_of_statements(tmp_path: Path, pg_engine: sa.Engine,
                                                                      via: str) -> None:
    small = _executions_per_step(tmp_path / "small", pg_engine, 2, via)
    _empty(pg_engine)  # the same database, emptied: the second run starts where the first did
    large = _executions_per_step(tmp_path / "large", pg_engine, 40, via)
    assert [ops for ops, _ in small] == [ops for ops, _ in large]
    kinds = {k for ops, _ in small for k in ops}
    # every executor ran at least once
    assert kinds >= {"CreateExperiment", "AddVariant", "InsertVersion", "RecordManaged", "UpdateFields", "ChangeWeight",
                     "RelabelVariant", "SetArchived", "RemoveVariant", "Transition", "DeleteExperiment",
                     "ReleaseExperiment"}, kinds
    assert [x for _, x in small] == [x for _, x in large], (small, large)


def _content(engine: sa.Engine) -> dict[str, list[Any]]:
    """Every row the writes made, without what differs between two equal applies: version ids,
    the nonces of encrypted keys (compared decrypted), timestamps (compared as set or not), and
    the audit's digests of the actual state and of the ops (which hold timestamps and version ids)."""
    q = {
        "experiments": "SELECT id, public_model_id, name, description, status, is_archived, created_by_user_id, "
                       "started_at IS NULL, ended_at IS NULL FROM model_experiment",
        "variants": "SELECT id, experiment_id, label, weight FROM model_experiment_variant",
        "versions": "SELECT variant_id, upstream::text, encrypted_api_key, created_by FROM model_experiment_variant_version",
        "managed": "SELECT key, experiment_id, last_applied::text FROM expsync_managed",
        "outbox": "SELECT cache_key FROM expsync_cache_outbox",
        "audit": "SELECT actor, revision, plan_digest, summary::text, outcome FROM expsync_audit ORDER BY id",
    }
    with engine.connect() as c:
        out = {k: [tuple(r) for r in c.execute(sa.text(sql)).all()] for k, sql in q.items()}
    out["versions"] = [(v, up, decrypt(key), by) for v, up, key, by in out["versions"]]
    for i, row in enumerate(out["audit"]):
        summary = json.loads(row[3])
        summary["digests"] = {k: v for k, v in summary["digests"].items() if k not in ("actual", "ops")}
        out["audit"][i] = (*row[:2], summary, row[4])
    return {k: v if k == "audit" else sorted(v, key=repr) for k, v in out.items()}


def test_both_writers_leave_equal_rows(tmp_path: Path, pg_engine: sa.Engine) -> None:
    """The SQL text writes (apply/write_pg.py) and the SQLAlchemy Core ones (apply/write_core.py)
    leave the same rows after each of six applies that make every kind of change."""
    seen: dict[str, list[dict[str, list[Any]]]] = {"engine": [], "psycopg": []}
    for via in seen:
        _empty(pg_engine)
        _executions_per_step(tmp_path / via, pg_engine, 3, via, after=lambda: seen[via].append(_content(pg_engine)))
    assert len(seen["engine"]) == 6 and seen["engine"] == seen["psycopg"]


@pytest.mark.parametrize("via", ["engine", "psycopg"])
def test_apply_checks_the_tables_in_its_lock_statement(tmp_path: Path, pg_engine: sa.Engine, via: str) -> None:
    repo = Repo(tmp_path)
    repo.put(_swap_doc(0, "r0"))
    with pg_engine.begin() as c:
        c.execute(sa.text("DROP TABLE expsync_cache_outbox"))
    with pytest.raises(NotInitialized, match="missing tables expsync_cache_outbox"):
        _apply(repo, tmp_path, pg_engine, via)
    with pg_engine.connect() as c:
        assert c.execute(sa.text("SELECT count(*) FROM model_experiment")).scalar_one() == 0


def test_the_cache_refresh_adds_five_round_trips_to_the_cli_apply(tmp_path: Path, pg_engine: sa.Engine,
                                                                  redis_url: str, redis_prefix: str) -> None:
    """`expsync apply --yes` with Redis vs without, the same hot swap each time: the leftover
    check (one statement, no transaction) and the refresh on the same connection (BEGIN with
    the lock statement, one read, the DELETE, COMMIT)."""
    repo = Repo(tmp_path)
    repo.put(*[_swap_doc(i, "r0") for i in range(3)])
    _apply(repo, tmp_path, pg_engine)
    seen = {}
    for tag, redis in (("r1", None), ("r2", redis_url)):
        with pg_engine.begin() as c:  # no refresh left pending by the previous run
            c.execute(sa.text("DELETE FROM expsync_cache_outbox"))
        repo.put(*[_swap_doc(i, tag) for i in range(3)])
        with WireCounter() as w:
            env = cli_env(pg_engine, SECRETS, EXPSYNC_DATABASE_URL=w.url(url_of(pg_engine)), EXPSYNC_REDIS_URL=redis,
                          EXPSYNC_REDIS_KEY_PREFIX=redis_prefix)
            r = run_cli(["apply", "--yes", repo.path], env=env)
            seen[tag] = w.stats()
        assert r.code == 0 and "Applied in one transaction" in r.out, r.all
    assert "cache refreshed" in r.out, r.all
    assert seen["r2"]["round_trips"] - seen["r1"]["round_trips"] == 5, (seen["r1"], seen["r2"])
    assert seen["r2"]["executes"] - seen["r1"]["executes"] == 6, (seen["r1"], seen["r2"])
    # without Redis: start-up, the profile question, BEGIN + the lock statement, the clock +
    # reads batch, the three row locks (one batch), four writes, the audit row, COMMIT
    assert (seen["r1"]["round_trips"], seen["r1"]["executes"]) == (11, 17), seen["r1"]
