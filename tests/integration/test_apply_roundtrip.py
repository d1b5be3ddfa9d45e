"""Round trip: apply a desired state, then `plan --detailed-exitcode` finds nothing to do, on
Postgres and SQLite; and again after every kind of edit an engineer makes to the YAML.

The corpus is every file of experiments/ (baz-2025-q3.yaml adopts a completed + archived row
by id pins, so that row is seeded first, as the admin UI wrote it) plus generated drafts and
actives covering 1-4 variants, weights and every upstream field. On Postgres each step is also
read back with the gateway's own reader (tests/integration/gateway.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tests.cli_helpers import Result, run_cli
from tests.integration.apply_support import (
    CORPUS_SECRETS,
    REPO,
    Repo,
    cli_env,
    generated_corpus,
    seed_history,
    upstream,
)
from tests.integration.gateway import gateway_routes


def apply_then_no_changes(repo: Repo, env: dict[str, Any]) -> Result:
    r = run_cli(["apply", "--yes", repo.path], env=env)
    assert r.code == 0, r.all
    assert "Applied in one transaction" in r.out, r.all
    p = run_cli(["plan", "--detailed-exitcode", repo.path], env=env)
    assert p.code == 0, p.all
    assert "No changes" in p.out
    return r


def assert_gateway_routes(engine: sa.Engine, repo: Repo, secrets: dict[str, str]) -> None:
    """Postgres: what the gateway would route is exactly the YAML (labels, weights, upstreams,
    decrypted keys; variants in id order, so compare as sets)."""
    if engine.dialect.name != "postgresql":
        return
    with engine.connect() as conn:
        for doc in repo.docs.values():
            routes = gateway_routes(conn, doc["public_model_id"])
            if doc["status"] not in ("active", "paused"):
                assert all(r["status"] in ("active", "paused") for r in routes)
                continue
            want = sorted((v["label"], v["weight"], repr(sorted(v["upstream"].items())),
                           secrets[v["api_key"].removeprefix("env:")]) for v in doc["variants"])
            got = sorted((r["label"], r["weight"], repr(sorted(r["upstream"].items())), r["api_key"]) for r in routes)
            assert got == want, doc["key"]
            assert {r["status"] for r in routes} == {doc["status"]}


@pytest.fixture
def corpus_repo(tmp_path: Path, db_engine: sa.Engine) -> Repo:
    repo = Repo(tmp_path)
    for f in sorted((REPO / "experiments").glob("*.yaml")):
        repo.copy_file(f)
    seed_history(db_engine, REPO / "experiments" / "baz-2025-q3.yaml", CORPUS_SECRETS)
    repo.put(*generated_corpus())
    return repo


def test_applied_corpus_plans_no_changes(db_engine: sa.Engine, corpus_repo: Repo) -> None:
    env = cli_env(db_engine, CORPUS_SECRETS)
    assert run_cli(["plan", "--detailed-exitcode", corpus_repo.path], env=env).code == 2
    apply_then_no_changes(corpus_repo, env)
    assert_gateway_routes(db_engine, corpus_repo, dict(CORPUS_SECRETS))
    again = run_cli(["apply", "--yes", corpus_repo.path], env=env)
    assert again.code == 0 and "No changes" in again.out, again.all


def test_every_kind_of_edit_round_trips(db_engine: sa.Engine, corpus_repo: Repo) -> None:
    secrets = dict(CORPUS_SECRETS)
    env = cli_env(db_engine, secrets)
    apply_then_no_changes(corpus_repo, env)

    # hot swap: a new checkpoint behind one variant, and a request tweak on another
    foo = corpus_repo.edit("foo-rc-bakeoff")
    foo["variants"][0]["upstream"]["internal_id"] = "foo-rc1-hotfix"
    three = corpus_repo.edit("gen-active-three")
    three["variants"][1]["upstream"]["extra_body"] = {"reasoning": {"effort": "low"}, "max_tokens": 512}
    del three["variants"][0]["upstream"]["add_cache_breakpoints"]
    corpus_repo.put(foo, three)
    apply_then_no_changes(corpus_repo, env)

    # key rotation: same reference, the secret store holds a new value
    secrets["KEY_TWO"] = "sk-two-rotated-0009"
    env = cli_env(db_engine, secrets)
    apply_then_no_changes(corpus_repo, env)

    # relabel (the variant key stays, so it keeps its slot) and a new name
    uni = corpus_repo.edit("gen-active-unicode")
    uni["variants"][0]["label"] = "über-v2"
    uni["name"] = "Modèle, renamed"
    corpus_repo.put(uni)
    apply_then_no_changes(corpus_repo, env)

    # pause, then resume
    three = corpus_repo.edit("gen-active-three")
    three["status"] = "paused"
    corpus_repo.put(three)
    apply_then_no_changes(corpus_repo, env)
    three["status"] = "active"
    corpus_repo.put(three)
    apply_then_no_changes(corpus_repo, env)

    # complete and archive in one step
    two = corpus_repo.edit("gen-active-two")
    two["status"] = "completed"
    two["archived"] = True
    corpus_repo.put(two)
    apply_then_no_changes(corpus_repo, env)

    # remove a draft's file: the draft is deleted
    corpus_repo.remove("gen-draft-single")
    apply_then_no_changes(corpus_repo, env)
    with db_engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM model_experiment WHERE public_model_id = "
                                    "'partner/gen-draft-single'")).scalar_one() == 0

    # draft-only edits (public id, weights, variants added and removed, unarchive), then activation
    draft = corpus_repo.edit("gen-draft-archived")
    draft["public_model_id"] = "partner/gen-draft-renamed"
    draft["archived"] = False
    draft["variants"][0]["weight"] = 4
    draft["variants"][1:] = [{"label": "z", "weight": 2, "upstream": upstream("m-z"), "api_key": "env:KEY_OTHER"}]
    corpus_repo.put(draft)
    apply_then_no_changes(corpus_repo, env)
    draft["status"] = "active"
    corpus_repo.put(draft)
    apply_then_no_changes(corpus_repo, env)

    # a completed + archived experiment whose file goes away is released, not deleted
    corpus_repo.remove("gen-active-two")
    apply_then_no_changes(corpus_repo, env)
    with db_engine.connect() as conn:
        assert conn.execute(sa.text("SELECT status, is_archived FROM model_experiment WHERE public_model_id = "
                                    "'partner/gen-active-two'")).one() == ("completed", True)

    # one plan, order-sensitive (spec §5.5): complete foo before its successor activates on the
    # same public id; unarchive a paused + archived experiment before re-activating it
    three = corpus_repo.edit("gen-active-three")
    three["status"], three["archived"] = "paused", True
    corpus_repo.put(three)
    apply_then_no_changes(corpus_repo, env)
    three["status"], three["archived"] = "active", False
    foo = corpus_repo.edit("foo-rc-bakeoff")
    foo["status"] = "completed"
    successor = corpus_repo.edit("foo-rc-bakeoff")
    successor["key"], successor["name"] = "foo-rc-bakeoff-2", "Foo RC2 vs RC3"
    successor["variants"][0]["upstream"]["internal_id"] = "foo-rc3"
    corpus_repo.put(three, foo, successor)
    apply_then_no_changes(corpus_repo, env)
    with db_engine.connect() as conn:
        assert sorted(conn.execute(sa.text("SELECT name, status FROM model_experiment WHERE public_model_id = "
                                           "'partner/preview-foo'")).all()) == [
            ("Foo RC1 vs RC2", "completed"), ("Foo RC2 vs RC3", "active")]

    assert_gateway_routes(db_engine, corpus_repo, secrets)


def test_swapping_two_labels_round_trips(db_engine: sa.Engine, tmp_path: Path) -> None:
    """(experiment_id, label) is unique at every statement; a swap must not trip over it."""
    from tests.integration.apply_support import experiment, variant

    repo = Repo(tmp_path)
    secrets = {"K": "sk-swap-000111"}
    env = cli_env(db_engine, secrets)
    doc = experiment("swap", "partner/swap", "active", [
        variant("left", upstream("m1"), "env:K", key="a"), variant("right", upstream("m2"), "env:K", key="b")])
    repo.put(doc)
    apply_then_no_changes(repo, env)
    doc = repo.edit("swap")
    doc["variants"][0]["label"], doc["variants"][1]["label"] = "right", "left"
    repo.put(doc)
    apply_then_no_changes(repo, env)
    with db_engine.connect() as conn:
        labels = conn.execute(sa.text("SELECT label FROM model_experiment_variant")).scalars().all()
    assert sorted(labels) == ["left", "right"]


def test_completed_experiment_needs_no_live_secret(db_engine: sa.Engine, tmp_path: Path) -> None:
    """Once completed, a partner key that is rotated or deleted must not block later plans."""
    from tests.integration.apply_support import experiment, variant

    repo = Repo(tmp_path)
    env = cli_env(db_engine, {"K": "sk-done-000111"})
    doc = experiment("done", "partner/done", "active", [variant("a", upstream("m1"), "env:K"),
                                                         variant("b", upstream("m2"), "env:K")])
    repo.put(doc)
    apply_then_no_changes(repo, env)
    doc = repo.edit("done")
    doc["status"], doc["archived"] = "completed", True
    repo.put(doc)
    apply_then_no_changes(repo, env)
    for secrets in ({"K": "sk-done-ROTATED-9"}, {}):
        r = run_cli(["plan", "--detailed-exitcode", repo.path], env=cli_env(db_engine, secrets))
        assert r.code == 0 and "No changes" in r.out, r.all
