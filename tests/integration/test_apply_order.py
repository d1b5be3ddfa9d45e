"""Apply executes exactly ``Plan.ops``, in that order, and enqueues exactly ``Plan.cache_keys``;
a hot swap copies the previous ciphertext inside the database."""

from __future__ import annotations

import itertools
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from expsync.apply.execute import ApplyContext, execute
from expsync.desired.loader import load_desired
from expsync.model import Secret, SecretRef
from expsync.pipeline import Settings, compute_plan
from expsync.plan.order import shape_of
from expsync.plan.ops import AddVariant, CreateExperiment, InsertVersion, Op, RecordManaged, Transition
from tests.cli_helpers import run_cli
from tests.integration.apply_support import Repo, cli_env, experiment, variant
from tests.integration.gateway import TEST_KEY

SECRETS = {"K": "sk-order-000111"}

#: the statements each op type's executor issues (verb, table), in order
STATEMENTS: dict[type, list[tuple[str, str]]] = {
    Transition: [("UPDATE", "model_experiment")],
    CreateExperiment: [("INSERT", "model_experiment")],
    AddVariant: [("INSERT", "model_experiment_variant")],
    InsertVersion: [("INSERT", "model_experiment_variant_version")],
    RecordManaged: [("DELETE", "expsync_managed"), ("INSERT", "expsync_managed")],
}


def _statement(sql: str) -> tuple[str, str]:
    words = sql.split()
    verb = words[0].upper()
    table = words[2] if verb in ("INSERT", "DELETE") else words[1]
    return verb, table.strip('"')


def _plan(engine: sa.Engine, repo: Repo) -> tuple[Any, sa.Connection]:
    desired, diags = load_desired([repo.path])
    assert not [d for d in diags if d.is_error]
    conn = engine.connect()
    conn.begin()
    computed = compute_plan(conn, desired, {SecretRef("env", "K"): Secret(SECRETS["K"])},
                            Settings(environ=dict(cli_env(engine, SECRETS))),  # type: ignore[arg-type]
                            now=datetime.now(timezone.utc))
    return computed, conn


def test_apply_runs_plan_ops_in_plan_order(tmp_path: Path, db_engine: sa.Engine) -> None:
    repo = Repo(tmp_path)
    old = experiment("old", "partner/x", "active", [variant("a", "m1", "env:K"), variant("b", "m2", "env:K")])
    repo.put(old)
    assert run_cli(["apply", "--yes", repo.path], env=cli_env(db_engine, SECRETS)).code == 0
    # one plan: complete "old", create "new" active on the same public id, create a draft
    old["status"] = "completed"
    repo.put(old, experiment("new", "partner/x", "active", [variant("c", "m3", "env:K")]),
             experiment("draft", "partner/d", "draft", [variant("d", "m4", "env:K")]))
    computed, conn = _plan(db_engine, repo)
    ops: tuple[Op, ...] = computed.plan.ops
    seen: list[str] = []
    sa.event.listen(conn, "before_cursor_execute", lambda *a: seen.append(a[2]))
    try:
        results = execute(ops, conn, ApplyContext(actor=None, secrets={SecretRef("env", "K"): Secret(SECRETS["K"])},
                                                  byok_key=TEST_KEY))
    finally:
        conn.rollback()
        conn.close()
    batches = [(t.__name__, len(list(g))) for t, g in itertools.groupby(ops, key=type)]
    assert [(r.op_type, r.count) for r in results] == batches
    # one statement (set) per run of ops sharing a statement shape, in plan order
    expected = [s for (t, _), _ in itertools.groupby(ops, key=lambda o: (type(o), shape_of(o))) for s in STATEMENTS[t]]
    assert [_statement(s) for s in seen] == expected
    # the complete runs before the activation that needs the public id
    transitions = [(o.experiment_key, o.trigger.value) for o in ops if isinstance(o, Transition)]
    assert transitions == [("old", "complete"), ("new", "activate")]


def test_outbox_gets_exactly_the_plans_cache_keys(tmp_path: Path, db_engine: sa.Engine) -> None:
    repo = Repo(tmp_path)
    repo.put(experiment("one", "partner/one", "active", [variant("a", "m1", "env:K")]),
             experiment("two", "partner/two", "draft", [variant("a", "m1", "env:K")]))
    env = cli_env(db_engine, SECRETS, EXPSYNC_REDIS_KEY_PREFIX="pre:")
    plan = run_cli(["plan", "--format", "json", repo.path], env=env)
    import json

    shown = json.loads(plan.out)["cache_keys"]
    assert run_cli(["apply", "--yes", repo.path], env=env).code == 0
    with db_engine.connect() as c:
        queued = c.execute(sa.text("SELECT cache_key FROM expsync_cache_outbox ORDER BY id")).scalars().all()
    assert queued == shown and shown[0] == "pre:ai-gateway.model-experiments:experimented-public-ids"


def test_hot_swap_copies_the_stored_ciphertext_in_sql(tmp_path: Path, db_engine: sa.Engine) -> None:
    repo = Repo(tmp_path)
    doc = experiment("swap", "partner/swap", "active", [variant("a", "m1", "env:K"), variant("b", "m2", "env:K")])
    repo.put(doc)
    env = cli_env(db_engine, SECRETS)
    assert run_cli(["apply", "--yes", repo.path], env=env).code == 0
    doc["variants"][0]["upstream"]["internal_id"] = "m1-hotfix"
    doc["variants"][1]["upstream"]["internal_id"] = "m2-hotfix"
    repo.put(doc)
    computed, conn = _plan(db_engine, repo)
    seen: list[str] = []
    sa.event.listen(conn, "before_cursor_execute", lambda *a: seen.append(a[2]))
    try:
        versions = [o for o in computed.plan.ops if isinstance(o, InsertVersion)]
        assert len(versions) == 2 and all(o.key_change.value == "unchanged" for o in versions)
        # no secrets and no BYOK key: the copy cannot go through Python
        execute(versions, conn, ApplyContext(actor=None, secrets={}, byok_key=None))
        rows = conn.execute(sa.text(
            "SELECT v.upstream, v.encrypted_api_key, b.encrypted_api_key FROM model_experiment_variant_version v "
            "JOIN model_experiment_variant_version b ON b.variant_id = v.variant_id AND b.id <> v.id")).all()
    finally:
        conn.rollback()
        conn.close()
    inserts = [s for s in seen if s.lstrip().upper().startswith("INSERT")]
    assert len(inserts) == 1 and "SELECT" in inserts[0].upper()
    assert len(rows) == 4 and all(new == old for _, new, old in rows)


def test_many_hot_swaps_are_one_copy_statement(db_engine: sa.Engine) -> None:
    """600 swaps (SQLite refuses a compound SELECT of more than 500 terms) in one statement."""
    import uuid

    from expsync.model import KeyChange
    from expsync.state.tables import experiment as experiment_table
    from expsync.state.tables import variant as variant_table
    from expsync.state.tables import version as version_table

    n, blob = 600, {"iv": "aXY=", "data": "ZGF0YQ==", "authTag": "dGFn"}
    eid, vids, bases = uuid.uuid4(), [uuid.uuid4() for _ in range(n)], [uuid.uuid4() for _ in range(n)]
    ops = [InsertVersion(experiment_key="e", experiment_id=eid, variant_key=f"v{i}", variant_id=v, label=f"v{i}",
                         base_version_id=b, upstream_before={"internal_id": "m"},
                         upstream_after={"internal_id": f"m-{i}", "extra_body": {"note": "ü"}},
                         key_change=KeyChange.UNCHANGED, api_key_ref=SecretRef("env", "K"))
           for i, (v, b) in enumerate(zip(vids, bases))]
    with db_engine.connect() as conn:
        with conn.begin():
            conn.execute(sa.insert(experiment_table).values(id=eid, public_model_id="p/many", name="many"))
            conn.execute(sa.insert(variant_table), [{"id": v, "experiment_id": eid, "label": f"v{i}", "weight": 1}
                                                    for i, v in enumerate(vids)])
            conn.execute(sa.insert(version_table), [{"id": b, "variant_id": v, "upstream": {"internal_id": "m"},
                                                     "encrypted_api_key": blob} for v, b in zip(vids, bases)])
        seen: list[str] = []
        sa.event.listen(conn, "before_cursor_execute", lambda *a: seen.append(a[2]))
        with conn.begin() as tx:
            [result] = execute(ops, conn, ApplyContext(actor="ci", secrets={}, byok_key=None))
            rows = conn.execute(sa.select(version_table.c.variant_id, version_table.c.upstream,
                                          version_table.c.encrypted_api_key)
                                .where(version_table.c.created_by == "ci")).all()
            tx.rollback()
    assert result.statements == 1 and len([s for s in seen if s.lstrip().upper().startswith("INSERT")]) == 1
    by_variant = {r.variant_id: r for r in rows}
    assert len(by_variant) == n
    assert all(by_variant[v].encrypted_api_key == blob for v in vids)
    assert by_variant[vids[7]].upstream == {"internal_id": "m-7", "extra_body": {"note": "ü"}}
