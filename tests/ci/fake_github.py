"""A stand-in for the GitHub REST API's issue-comment endpoints, served by a real local HTTP
server (pytest-httpserver): comments are stored, pages follow GitHub's ``Link`` header, every
request is recorded with its headers, and failures can be queued per method."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

REPO = "acme/experiments"
TOKEN = "ghs_FAKE0123456789abcdefTOKEN"


@dataclass
class Seen:
    method: str
    path: str
    query: str
    authorization: str
    body: Any


@dataclass
class FakeGitHub:
    server: HTTPServer
    per_page: int = 100
    comments: list[dict[str, Any]] = field(default_factory=list)
    seen: list[Seen] = field(default_factory=list)
    #: (method, status, headers, json) answered instead of the real thing, first in first out
    failures: list[tuple[str, int, dict[str, str], dict[str, Any]]] = field(default_factory=list)
    next_id: int = 1000
    #: the person TOKEN belongs to (a personal access token); ``None``: an app's token such as
    #: GITHUB_TOKEN, for which ``GET /user`` is 403 and comments are written by a bot
    token_login: str | None = None
    #: this many POSTs store the comment and then answer 502, as a proxy that times out on GitHub does
    lost_answers: int = 0

    def install(self) -> FakeGitHub:
        self.server.expect_request(re.compile(r"^/repos/.*")).respond_with_handler(self._handle)
        self.server.expect_request("/user").respond_with_handler(self._user)
        return self

    @property
    def api_url(self) -> str:
        return self.server.url_for("").rstrip("/")

    def add_comment(self, body: str, *, user_type: str = "User", login: str = "someone") -> dict[str, Any]:
        self.next_id += 1
        c = {"id": self.next_id, "body": body, "user": {"login": login, "type": user_type},
             "html_url": f"https://github.example/{REPO}/pull/7#issuecomment-{self.next_id}"}
        self.comments.append(c)
        return c

    def _handle(self, request: Request) -> Response:
        body = json.loads(request.get_data() or b"null")
        self.seen.append(Seen(request.method, request.path, request.query_string.decode(),
                              request.headers.get("Authorization", ""), body))
        for i, (method, status, headers, payload) in enumerate(self.failures):
            if method == request.method:
                del self.failures[i]
                return Response(json.dumps(payload), status=status, headers=headers, content_type="application/json")
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return self._json({"message": "Bad credentials"}, 401)
        m = re.fullmatch(rf"/repos/{REPO}/issues/(\d+)/comments", request.path)
        if m and request.method == "GET":
            q = parse_qs(urlsplit(request.url).query)
            page = int(q.get("page", ["1"])[0])
            per = min(int(q.get("per_page", ["30"])[0]), self.per_page)
            chunk = self.comments[(page - 1) * per: page * per]
            headers = {}
            if page * per < len(self.comments):
                headers["Link"] = (f'<{self.api_url}{request.path}?per_page={per}&page={page + 1}>; rel="next", '
                                   f'<{self.api_url}{request.path}?per_page={per}&page=999>; rel="last"')
            return self._json(chunk, 200, headers)
        if m and request.method == "POST":
            c = (self.add_comment(body["body"], user_type="User", login=self.token_login) if self.token_login else
                 self.add_comment(body["body"], user_type="Bot", login="github-actions[bot]"))
            if self.lost_answers:
                self.lost_answers -= 1
                return self._json({"message": "Bad Gateway"}, 502)
            return self._json(c, 201)
        m = re.fullmatch(rf"/repos/{REPO}/issues/comments/(\d+)", request.path)
        if m and request.method == "PATCH":
            for c in self.comments:
                if c["id"] == int(m.group(1)):
                    c["body"] = body["body"]
                    return self._json(c, 200)
        return self._json({"message": "Not Found"}, 404)

    def _user(self, request: Request) -> Response:
        self.seen.append(Seen(request.method, request.path, "", request.headers.get("Authorization", ""), None))
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return self._json({"message": "Bad credentials"}, 401)
        if self.token_login is None:
            return self._json({"message": "Resource not accessible by integration"}, 403)
        return self._json({"login": self.token_login, "type": "User"}, 200)

    @staticmethod
    def _json(data: Any, status: int, headers: dict[str, str] | None = None) -> Response:
        return Response(json.dumps(data), status=status, headers=headers or {}, content_type="application/json")

    def writes(self) -> list[Seen]:
        return [s for s in self.seen if s.method in ("POST", "PATCH")]
