"""`expsync show` renders a saved plan to the same bytes as `plan`; `expsync history` lists applies."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.ci.plans import SECRETS, foo, two
from tests.cli_helpers import run_cli
from tests.integration.apply_support import CORPUS_SECRETS, Repo, cli_env, experiment, generated_corpus, variant

FORMATS = ("text", "json", "markdown")


def assert_show_matches_plan(repo: Repo, env: dict, tmp_path: Path) -> str:
    saved = tmp_path / "saved.json"
    outputs = {}
    for fmt in FORMATS:
        r = run_cli(["plan", "--format", fmt, "--out", str(saved), repo.path], env=env)
        assert r.code == 0, r.all
        outputs[fmt] = r.out
    # no database, no secrets: an unreachable database URL and an empty environment
    offline = {k: None for k in env} | {"EXPSYNC_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"}
    for fmt in FORMATS:
        r = run_cli(["show", "--format", fmt, str(saved)], env=offline, cwd=tmp_path)
        assert r.code == 0, r.all
        assert r.out == outputs[fmt], fmt
    assert run_cli(["show", str(saved)], env=offline, cwd=tmp_path).out == outputs["text"]
    assert not (tmp_path / ".expsync").exists()
    return outputs["json"]


def test_show_renders_the_same_bytes_as_plan(tmp_path: Path, db_engine: sa.Engine) -> None:
    env = cli_env(db_engine, CORPUS_SECRETS)
    repo = Repo(tmp_path).put(*generated_corpus())
    assert_show_matches_plan(repo, env, tmp_path)  # creates and transitions

    assert run_cli(["apply", "--yes", repo.path], env=env).code == 0
    # now every kind of update: fields, weights, relabel, new versions, a removed draft variant,
    # a transition, an archive and a deleted draft
    d = repo.edit("gen-draft-three")
    d["name"], d["description"] = "renamed", None
    del d["description"]
    d["variants"][0]["weight"] = 7
    d["variants"][1]["label"] = "b-relabelled"
    d["variants"][1]["key"] = "b"
    d["variants"][0]["upstream"]["extra_body"] = {"temperature": 0.1}
    d["variants"] = d["variants"][:2]
    repo.put(d)
    a = repo.edit("gen-active-two")
    a["status"] = "paused"
    a["variants"][0]["upstream"]["internal_id"] = "m-control-v2"
    repo.put(a)
    c = repo.edit("gen-active-three")
    c["status"] = "completed"
    c["archived"] = True
    repo.put(c)
    repo.remove("gen-draft-single")
    out = json.loads(assert_show_matches_plan(repo, cli_env(db_engine, CORPUS_SECRETS | {"KEY_TWO": "sk-rotated"}),
                                              tmp_path))
    types = {o["type"] for o in out["operations"]}
    assert {"update_fields", "change_weight", "relabel_variant", "insert_version", "remove_variant", "transition",
            "set_archived", "delete_experiment", "record_managed"} <= types


def test_show_of_a_no_secrets_plan(tmp_path: Path, sqlite_engine: sa.Engine) -> None:
    repo = Repo(tmp_path).put(foo())
    env = cli_env(sqlite_engine, SECRETS)
    saved = tmp_path / "fork.json"
    r = run_cli(["plan", "--no-secrets", "--format", "markdown", "--out", str(saved), repo.path], env=env)
    assert r.code == 0, r.all
    shown = run_cli(["show", "--format", "markdown", str(saved)], env={})
    assert shown.code == 0 and shown.out == r.out and "not compared" in shown.out


@pytest.mark.parametrize("content", ["", "not json", "[]", '{"format_version": "2"}', '{"format_version": "1"}',
                                     "{" * 100_000])
def test_show_refuses_what_is_not_a_plan(tmp_path: Path, content: str) -> None:
    f = tmp_path / "x.json"
    f.write_text(content)
    r = run_cli(["show", str(f)], env={})
    assert r.code == 3, r.all
    assert "not a plan file written by `expsync plan --out`" in r.err and "Traceback" not in r.all
    r = run_cli(["show", str(tmp_path / "missing.json")], env={})
    assert r.code == 3 and "cannot read" in r.err


def test_history_lists_applies_newest_first(tmp_path: Path, db_engine: sa.Engine) -> None:
    env = cli_env(db_engine, SECRETS)
    r = run_cli(["history"], env=env)
    assert r.code == 0 and "No applies recorded yet." in r.out
    repo = Repo(tmp_path).put(foo(), experiment("bar", "partner/bar", "active", two("bar")))
    assert run_cli(["apply", "--yes", "--actor", "alice", "--revision", "a" * 40, repo.path], env=env).code == 0
    d = repo.edit("foo")
    d["name"] = "renamed"
    repo.put(d)
    assert run_cli(["apply", "--yes", "--actor", "bob", "--revision", "b" * 40, repo.path], env=env).code == 0
    assert run_cli(["apply", "--yes", "--actor", "carol", repo.path], env=env).code == 0
    # apply refuses such an actor today; a row written by another tool (or an older expsync) may hold one
    with db_engine.begin() as conn:
        conn.execute(sa.text("UPDATE expsync_audit SET actor = :hostile WHERE actor = 'bob'"),
                     {"hostile": "bob\x1b]0;owned\x07"})

    r = run_cli(["history", "--format", "json"], env=env)
    assert r.code == 0, r.all
    rows = json.loads(r.out)["history"]
    assert [x["actor"] for x in rows] == ["carol", "bob\x1b]0;owned\x07", "alice"]
    assert [x["outcome"] for x in rows] == ["no_changes", "applied", "applied"]
    assert rows[2]["counts"]["create"] == 2 and rows[2]["revision"] == "a" * 40
    assert rows[1]["counts"]["update"] == 1 and rows[1]["experiments"] == ["foo"]
    assert all(x["duration_seconds"] >= 0 and len(x["plan_digest"]) > 19 for x in rows)
    assert rows[2]["statements"] > 0

    r = run_cli(["history", "--limit", "2"], env=env)
    assert r.code == 0, r.all
    lines = r.out.splitlines()
    assert lines[0].startswith("started (UTC)") and len(lines) == 3
    assert "carol" in lines[1] and "no changes" in lines[1]
    assert "1 update" in lines[2] and "\x1b" not in r.out and "bob\\x1b]0;owned\\x07" in lines[2]
    assert "alice" not in r.out
    assert run_cli(["history", "--limit", "0"], env=env).code == 3


def test_history_text_escapes_every_invisible_character_the_escape_module_knows() -> None:
    """The history table uses the one escaping definition: line separators, the Arabic letter
    mark and Unicode tag characters (which hide text) are shown escaped too."""
    from datetime import datetime, timezone

    from expsync.escape import INVISIBLE
    from expsync.render.history import render_history_text
    from expsync.state.audit import AuditEntry

    actor = "eve\u2028\u061c\U000e0041\u00ad"
    when = datetime(2026, 1, 1, tzinfo=timezone.utc)
    entry = AuditEntry(id=1, started_at=when, finished_at=when, actor=actor, revision="r\u2029",
                       outcome="applied", plan_digest="sha256:x", statements=1, counts={}, experiments=())
    out = render_history_text([entry])
    assert INVISIBLE.search(out.replace("\n", "")) is None
    assert "eve\\u2028\\u061c\\U000e0041\\xad" in out
