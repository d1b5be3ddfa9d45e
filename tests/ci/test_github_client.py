"""The GitHub client's retry policy and configuration, against a real local HTTP server (or a
closed port); waits are recorded, never slept, so the assertions are on counts and values."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from expsync.errors import ConfigError
from expsync.github import Client, GitHubError, Target, comment_body, target_from_environ, upsert_comment
from tests.ci.fake_github import REPO, TOKEN, FakeGitHub

PATH = f"/repos/{REPO}/issues/7/comments?per_page=100"


def client(api_url: str, waits: list[float], **kw: float) -> Client:
    return Client(api_url, TOKEN, sleep=waits.append, **kw)  # type: ignore[arg-type]


def test_backoff_doubles_and_is_bounded(github: FakeGitHub) -> None:
    github.failures += [("GET", 503, {}, {})] * 3
    waits: list[float] = []
    c = client(github.api_url, waits, backoff=0.5)
    assert c.request("GET", PATH).status == 200
    assert waits == [0.5, 1.0, 2.0]
    assert c.sent == [f"GET /repos/{REPO}/issues/7/comments"] * 4


def test_retry_after_is_honoured_up_to_max_wait(github: FakeGitHub) -> None:
    github.failures += [("GET", 429, {"Retry-After": "7"}, {}), ("GET", 403, {"Retry-After": "3600"},
                                                                 {"message": "secondary rate limit"})]
    waits: list[float] = []
    assert client(github.api_url, waits, backoff=0.001, max_wait=30).request("GET", PATH).status == 200
    assert waits == [7.0, 30.0]


def test_network_errors_are_retried_then_reported() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends: connection refused
    waits: list[float] = []
    c = client(f"http://127.0.0.1:{port}", waits, backoff=0.25, attempts=3)
    with pytest.raises(GitHubError, match=r"GET /repos/acme/experiments/issues/7/comments unreachable .* after 3"):
        c.request("GET", PATH)
    assert waits == [0.25, 0.5] and len(c.sent) == 3


def test_a_plain_403_on_read_is_an_error_not_a_retry(github: FakeGitHub) -> None:
    github.failures.append(("GET", 403, {}, {"message": "Must have admin rights"}))
    waits: list[float] = []
    with pytest.raises(GitHubError, match="HTTP 403") as e:
        client(github.api_url, waits).request("GET", PATH)
    assert waits == [] and TOKEN not in str(e.value)


def test_target_from_the_environment(tmp_path: Path) -> None:
    base = {"GITHUB_REPOSITORY": REPO, "GITHUB_TOKEN": TOKEN}
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"issue": {"number": 9, "pull_request": {"url": "x"}}}))
    t = target_from_environ(base | {"GITHUB_EVENT_PATH": str(event)})
    assert (t.api_url, t.repository, t.pr) == ("https://api.github.com", REPO, 9)
    assert TOKEN not in repr(t)
    event.write_text(json.dumps({"issue": {"number": 9}}))  # an issue, not a pull request
    with pytest.raises(ConfigError, match="--pr"):
        target_from_environ(base | {"GITHUB_EVENT_PATH": str(event)})
    event.write_text("{not json")
    with pytest.raises(ConfigError, match="GITHUB_EVENT_PATH"):
        target_from_environ(base | {"GITHUB_EVENT_PATH": str(event)})
    with pytest.raises(ConfigError, match="http"):
        target_from_environ(base | {"GITHUB_API_URL": "file:///etc/passwd"}, pr=1)
    t = target_from_environ(base | {"GITHUB_API_URL": "https://ghe.example/api/v3/"}, pr=3)
    assert t.api_url == "https://ghe.example/api/v3" and t.pr == 3


def test_a_redirect_to_another_origin_is_not_followed_with_the_token(github: FakeGitHub) -> None:
    """urllib's redirect handler copies every header, Authorization included, to whatever
    ``Location`` names: the token must reach no origin but the configured API's."""
    seen: list[str] = []

    def steal(request: Request) -> Response:
        seen.append(request.headers.get("Authorization", ""))
        return Response("[]", content_type="application/json")

    with HTTPServer(host="127.0.0.1", port=0) as other:  # another port: another origin
        other.expect_request("/steal").respond_with_handler(steal)
        github.failures.append(("GET", 302, {"Location": other.url_for("/steal")}, {}))
        with pytest.raises(GitHubError, match="another origin"):
            client(github.api_url, []).request("GET", PATH)
    assert seen == []


def test_a_write_is_never_turned_into_a_read_by_a_redirect(github: FakeGitHub) -> None:
    """urllib follows a 301/302 of a POST as a GET without the body: the comment list came back
    and was reported as a created comment."""
    github.failures.append(("POST", 301, {"Location": github.api_url + f"/repos/{REPO}/issues/7/comments"}, {}))
    with pytest.raises(GitHubError, match="HTTP 301"):
        upsert_comment(client(github.api_url, []), Target(github.api_url, REPO, 7, TOKEN),
                       comment_body("x", "r"), root="r")
    assert github.comments == [] and [s.method for s in github.seen] == ["GET", "POST"]


def test_a_redirect_within_the_api_is_followed(github: FakeGitHub) -> None:
    """GitHub answers 301 for a renamed repository, to the same API origin."""
    github.failures.append(("GET", 301, {"Location": github.api_url + f"/repos/{REPO}/issues/7/comments?per_page=100"},
                            {}))
    assert client(github.api_url, []).request("GET", PATH).status == 200
    assert [s.method for s in github.seen] == ["GET", "GET"]
