"""The sticky pull-request comment against a real local HTTP server standing in for GitHub."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import sqlalchemy as sa

from expsync.github import MAX_BODY, Client, GitHubError, Target, comment_body, marker_for, upsert_comment
from tests.ci.fake_github import REPO, TOKEN, FakeGitHub
from tests.ci.plans import SECRETS, foo, save_plan
from tests.cli_helpers import Result, run_cli


def gh_env(github: FakeGitHub, tmp_path: Path, **extra: str | None) -> dict[str, str | None]:
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"action": "synchronize", "number": 7, "pull_request": {"number": 7}}))
    env: dict[str, str | None] = {"GITHUB_API_URL": github.api_url, "GITHUB_REPOSITORY": REPO,
                                  "GITHUB_EVENT_PATH": str(event), "GITHUB_TOKEN": TOKEN,
                                  "EXPSYNC_GITHUB_BACKOFF": "0.001", "GITHUB_ACTIONS": None}
    return env | extra


def comment(plan: Path, env: dict[str, str | None], *args: str) -> Result:
    r = run_cli(["--debug", "comment", "--plan", str(plan), *args], env=env)
    assert TOKEN not in r.all
    return r


def test_creates_then_updates_the_same_comment(tmp_path: Path, sqlite_engine: sa.Engine, github: FakeGitHub) -> None:
    env = gh_env(github, tmp_path)
    first = save_plan(tmp_path, sqlite_engine, foo("First name"))
    r = comment(first, env)
    assert r.code == 0, r.all
    assert "comment created" in r.out
    (c,) = github.comments
    assert c["body"].startswith(marker_for("experiments") + "\n<!-- expsync:plan -->\n### expsync plan")
    assert "First name" in c["body"] and len(c["body"]) <= MAX_BODY

    second = save_plan(tmp_path, sqlite_engine, foo("Second name"), name="plan2.json")
    r = comment(second, env)
    assert r.code == 0 and "comment updated" in r.out, r.all
    assert len(github.comments) == 1 and github.comments[0]["id"] == c["id"]
    assert "Second name" in github.comments[0]["body"] and "First name" not in github.comments[0]["body"]
    assert [w.method for w in github.writes()] == ["POST", "PATCH"]
    # the token travels in the Authorization header only
    assert all(s.authorization == f"Bearer {TOKEN}" for s in github.seen)
    assert not any(TOKEN in s.path or TOKEN in s.query for s in github.seen)

    # the same plan again: nothing to write
    r = comment(second, env)
    assert r.code == 0 and "comment unchanged" in r.out
    assert len(github.writes()) == 2


def test_no_changes_updates_instead_of_deleting(tmp_path: Path, sqlite_engine: sa.Engine, github: FakeGitHub) -> None:
    env = gh_env(github, tmp_path)
    old = github.add_comment(comment_body("<!-- expsync:plan -->\nold plan with changes", "experiments"),
                             user_type="Bot")
    empty = tmp_path / "empty"
    empty.mkdir()
    r = run_cli(["plan", "--out", str(tmp_path / "none.json"), str(empty)], env={
        "EXPSYNC_DATABASE_URL": sqlite_engine.url.render_as_string(hide_password=False)})
    assert r.code == 0, r.all
    assert comment(tmp_path / "none.json", env).code == 0
    assert len(github.comments) == 1 and github.comments[0]["id"] == old["id"]
    assert "No changes" in github.comments[0]["body"]
    assert not any(s.method == "DELETE" for s in github.seen)


def test_finds_its_comment_on_a_later_page(tmp_path: Path, sqlite_engine: sa.Engine, github: FakeGitHub) -> None:
    for i in range(230):
        github.add_comment(f"comment {i}")
    ours = github.add_comment(comment_body("<!-- expsync:plan -->\nold", "experiments"), user_type="Bot")
    github.add_comment("a later comment")
    r = comment(save_plan(tmp_path, sqlite_engine, foo()), gh_env(github, tmp_path))
    assert r.code == 0 and "comment updated" in r.out, r.all
    gets = [s for s in github.seen if s.method == "GET"]
    assert len(gets) == 3  # 100 + 100 + 32 comments
    assert [w.method for w in github.writes()] == ["PATCH"]
    assert github.writes()[0].path.endswith(f"/issues/comments/{ours['id']}")


def test_one_comment_per_plan_root(tmp_path: Path, sqlite_engine: sa.Engine, github: FakeGitHub) -> None:
    env = gh_env(github, tmp_path)
    plan = save_plan(tmp_path, sqlite_engine, foo())
    assert comment(plan, env, "--root", "experiments/team-a").code == 0
    assert comment(plan, env, "--root", "experiments/team-b").code == 0
    assert comment(plan, env, "--root", "experiments/team-a").code == 0
    assert len(github.comments) == 2
    assert {c["body"].splitlines()[0] for c in github.comments} == {marker_for("experiments/team-a"),
                                                                    marker_for("experiments/team-b")}


def test_a_marker_in_someone_elses_comment_loses_to_the_bots(tmp_path: Path, sqlite_engine: sa.Engine,
                                                             github: FakeGitHub) -> None:
    marker_body = comment_body("<!-- expsync:plan -->\nfake", "experiments")
    human = github.add_comment(marker_body, user_type="User")
    bot = github.add_comment(marker_body, user_type="Bot")
    assert comment(save_plan(tmp_path, sqlite_engine, foo()), gh_env(github, tmp_path)).code == 0
    assert github.writes()[0].path.endswith(f"/comments/{bot['id']}")
    assert human["body"] == marker_body


def test_a_marker_pasted_by_the_pull_requests_author_is_never_taken(tmp_path: Path, sqlite_engine: sa.Engine,
                                                                   github: FakeGitHub) -> None:
    """Before the bot's first comment, the author posts one starting with the marker: the plan
    must not go into a comment its author can edit into a fake plan afterwards."""
    pasted = comment_body("<!-- expsync:plan -->\n:white_check_mark: **No changes.**", "experiments")
    theirs = github.add_comment(pasted, user_type="User", login="pr-author")
    r = comment(save_plan(tmp_path, sqlite_engine, foo()), gh_env(github, tmp_path))
    assert r.code == 0 and "comment created" in r.out, r.all
    assert theirs["body"] == pasted
    assert [w.method for w in github.writes()] == ["POST"]
    assert github.comments[-1]["user"]["type"] == "Bot" and "Foo bake-off" in github.comments[-1]["body"]
    # the next run finds the bot's comment, and still leaves theirs alone
    r = comment(save_plan(tmp_path, sqlite_engine, foo("Renamed"), name="plan2.json"), gh_env(github, tmp_path))
    assert r.code == 0 and "comment updated" in r.out, r.all
    assert github.writes()[-1].path.endswith(f"/comments/{github.comments[-1]['id']}") and theirs["body"] == pasted


def test_a_personal_token_updates_only_its_own_comment(tmp_path: Path, sqlite_engine: sa.Engine,
                                                       github: FakeGitHub) -> None:
    github.token_login = "release-bot-user"
    marker_body = comment_body("<!-- expsync:plan -->\nold", "experiments")
    theirs = github.add_comment(marker_body, user_type="User", login="pr-author")
    ours = github.add_comment(marker_body, user_type="User", login="release-bot-user")
    r = comment(save_plan(tmp_path, sqlite_engine, foo()), gh_env(github, tmp_path))
    assert r.code == 0 and "comment updated" in r.out, r.all
    assert [w.path for w in github.writes()] == [f"/repos/{REPO}/issues/comments/{ours['id']}"]
    assert theirs["body"] == marker_body and "Foo bake-off" in ours["body"]


def test_fork_read_only_token_is_a_notice(tmp_path: Path, sqlite_engine: sa.Engine, github: FakeGitHub) -> None:
    github.failures.append(("POST", 403, {}, {"message": "Resource not accessible by integration"}))
    r = comment(save_plan(tmp_path, sqlite_engine, foo()), gh_env(github, tmp_path, GITHUB_ACTIONS="true"))
    assert r.code == 0, r.all
    assert "::notice title=expsync comment::" in r.err and "read-only token" in r.err
    assert github.comments == []
    assert len(github.writes()) == 1  # a plain 403 is not retried


def test_server_errors_are_retried_then_succeed(tmp_path: Path, sqlite_engine: sa.Engine, github: FakeGitHub) -> None:
    github.failures += [("GET", 502, {}, {"message": "Bad Gateway"}), ("GET", 503, {}, {}),
                        ("POST", 500, {}, {"message": "oops"})]
    r = comment(save_plan(tmp_path, sqlite_engine, foo()), gh_env(github, tmp_path))
    assert r.code == 0 and "comment created" in r.out, r.all
    assert [s.method for s in github.seen] == ["GET", "GET", "GET", "POST", "GET", "POST"]  # looks before re-posting
    assert r.err.count("retrying") == 3
    assert len(github.comments) == 1


def test_a_lost_answer_to_a_create_does_not_make_a_second_comment(tmp_path: Path, sqlite_engine: sa.Engine,
                                                                  github: FakeGitHub) -> None:
    """A 5xx to POST does not say nothing was written: a second POST would leave a duplicate that
    no later run updates, showing a stale plan. It looks again before creating."""
    github.lost_answers = 1
    r = comment(save_plan(tmp_path, sqlite_engine, foo()), gh_env(github, tmp_path))
    assert r.code == 0, r.all
    assert len(github.comments) == 1 and "Foo bake-off" in github.comments[0]["body"]
    assert [s.method for s in github.seen] == ["GET", "POST", "GET"]


def test_secondary_rate_limit_is_retried(tmp_path: Path, sqlite_engine: sa.Engine, github: FakeGitHub) -> None:
    github.failures.append(("POST", 403, {"Retry-After": "0"},
                            {"message": "You have exceeded a secondary rate limit. Please wait a few minutes."}))
    github.failures.append(("POST", 429, {}, {"message": "Too many requests"}))
    r = comment(save_plan(tmp_path, sqlite_engine, foo()), gh_env(github, tmp_path))
    assert r.code == 0 and "comment created" in r.out, r.all
    assert [s.method for s in github.writes()] == ["POST", "POST", "POST"]


def test_retries_are_bounded(tmp_path: Path, sqlite_engine: sa.Engine, github: FakeGitHub) -> None:
    github.failures += [("GET", 502, {}, {"message": "Bad Gateway"})] * 10
    r = comment(save_plan(tmp_path, sqlite_engine, foo()), gh_env(github, tmp_path))
    assert r.code == 1
    assert f"GitHub API GET /repos/{REPO}/issues/7/comments failed: HTTP 502" in r.err
    assert "after 5 attempts" in r.err
    assert len(github.seen) == 5 and "Traceback" not in r.all


def test_other_errors_name_status_and_endpoint(tmp_path: Path, sqlite_engine: sa.Engine, github: FakeGitHub) -> None:
    github.failures.append(("POST", 422, {}, {"message": "Validation Failed"}))
    r = comment(save_plan(tmp_path, sqlite_engine, foo()), gh_env(github, tmp_path))
    assert r.code == 1
    assert f"GitHub API POST /repos/{REPO}/issues/7/comments failed: HTTP 422" in r.err
    assert "Validation Failed" in r.err
    assert len(github.seen) == 2


def test_bad_token_is_an_error_without_the_token(tmp_path: Path, sqlite_engine: sa.Engine,
                                                 github: FakeGitHub) -> None:
    r = comment(save_plan(tmp_path, sqlite_engine, foo()), gh_env(github, tmp_path, GITHUB_TOKEN="ghs_wrongWRONGwrong"))
    assert r.code == 1 and "HTTP 401" in r.err
    assert "ghs_wrongWRONGwrong" not in r.all


def test_pr_number_and_configuration(tmp_path: Path, sqlite_engine: sa.Engine, github: FakeGitHub) -> None:
    plan = save_plan(tmp_path, sqlite_engine, foo())
    env = gh_env(github, tmp_path, GITHUB_EVENT_PATH=None)
    r = comment(plan, env)
    assert r.code == 3 and "--pr" in r.err
    r = comment(plan, env, "--pr", "12")
    assert r.code == 0, r.all
    assert github.writes()[0].path == f"/repos/{REPO}/issues/12/comments"
    assert comment(plan, gh_env(github, tmp_path, GITHUB_TOKEN=None)).code == 3
    assert comment(plan, gh_env(github, tmp_path, GITHUB_REPOSITORY="no-slash")).code == 3
    assert comment(plan, gh_env(github, tmp_path, EXPSYNC_GITHUB_BACKOFF="soon")).code == 3
    bad = tmp_path / "bad.json"
    bad.write_text('{"format_version": "1"}')
    r = comment(bad, gh_env(github, tmp_path))
    assert r.code == 3 and "not a plan file" in r.err


def test_pull_request_text_is_escaped_in_the_comment(tmp_path: Path, sqlite_engine: sa.Engine,
                                                    github: FakeGitHub) -> None:
    hostile = "@everyone <img src=x onerror=alert(1)> [click](https://evil.example) | ![x](y)"
    r = comment(save_plan(tmp_path, sqlite_engine, foo(name=hostile)), gh_env(github, tmp_path))
    assert r.code == 0, r.all
    body = github.comments[0]["body"]
    assert body.count("onerror") >= 1  # it is shown...
    # ...but only inside code spans (literal text in GitHub markdown) or backslash-escaped
    outside = re.sub(r"(`+) ?(.+?) ?\1", "", body)
    outside = re.sub(r"\\.", "", outside)
    assert "<img" not in outside and "@everyone" not in outside and "[click](" not in outside
    assert "onerror" not in outside


def test_no_secret_value_in_the_comment(tmp_path: Path, sqlite_engine: sa.Engine, github: FakeGitHub) -> None:
    r = comment(save_plan(tmp_path, sqlite_engine, foo()), gh_env(github, tmp_path, **SECRETS))
    assert r.code == 0
    body = github.comments[0]["body"]
    assert "env:PARTNER_A_KEY" in body
    assert not any(v in body for v in SECRETS.values())


def test_links_to_another_origin_are_not_followed(github: FakeGitHub) -> None:
    github.failures.append(("GET", 200, {"Link": '<https://attacker.example/steal?page=2>; rel="next"'}, {}))
    client = Client(github.api_url, TOKEN, backoff=0)
    with pytest.raises(GitHubError, match="another origin"):
        upsert_comment(client, Target(github.api_url, REPO, 7, TOKEN), comment_body("x", "r"), root="r")
    assert "attacker" not in repr(client) and TOKEN not in repr(Target(github.api_url, REPO, 7, TOKEN))


def test_body_limit() -> None:
    assert len(comment_body("x" * 60_000, "experiments")) <= MAX_BODY
    with pytest.raises(ValueError, match="65536"):
        comment_body("x" * MAX_BODY, "experiments")
