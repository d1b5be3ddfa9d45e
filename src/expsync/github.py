"""The sticky pull-request comment: one comment per pull request and plan root, kept up to date.

:func:`upsert_comment` finds the comment by a hidden first line (:func:`marker_for`), walking
every page of the pull request's comments, among those expsync's own account wrote (a bot's, or
the token's person's: :func:`find_comment`), and updates it in place, or creates it. A plan
without changes updates it to say so; the comment is never deleted. Bodies are at most
:data:`MAX_BODY` characters (GitHub's limit).

:class:`Client` speaks the GitHub REST API with :mod:`urllib.request` only:

* 5xx answers, network errors and rate limits (429; 403 with ``Retry-After``, an exhausted
  ``X-RateLimit-Remaining`` or "secondary rate limit" in the message) are retried, at most
  ``attempts`` times, waiting ``Retry-After`` (capped at ``max_wait``) or ``backoff * 2**n``;
  after a 5xx or network error on a ``POST`` (it may have been done), :func:`upsert_comment`
  looks for the comment again before posting again;
* a plain 403 on a write (a fork pull request's read-only token) is :class:`ReadOnlyToken`,
  which :func:`upsert_comment` reports as a skipped comment rather than a failure;
* any other error is :class:`GitHubError` naming the method, the endpoint path and the status.
  The token is sent in a header only, never appears in a message, and is never sent to another
  origin than the configured API URL (pagination links and redirects are checked; only a read
  is redirected).

Configuration comes from the caller (``GITHUB_API_URL``, ``GITHUB_REPOSITORY``,
``GITHUB_EVENT_PATH``, ``GITHUB_TOKEN`` via :func:`target_from_environ`): nothing here reads
``os.environ`` itself.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import field
from email.message import Message
from http.client import HTTPMessage
from pathlib import Path
from typing import Any, Final, Literal

from expsync.errors import ConfigError, ExpsyncError
from expsync.records import dataclass

__all__ = [
    "MAX_BODY",
    "Client",
    "GitHubError",
    "Outcome",
    "ReadOnlyToken",
    "Target",
    "comment_body",
    "marker_for",
    "target_from_environ",
    "upsert_comment",
]

#: GitHub refuses issue comments longer than this many characters
MAX_BODY: Final = 65_536
#: at most this many pages of 100 comments are searched for the marker
MAX_PAGES: Final = 100
_DEFAULT_API: Final = "https://api.github.com"


class GitHubError(ExpsyncError):
    """The GitHub API answered with an error expsync cannot work around (exit 1). ``status``
    is the HTTP status of the last answer (``None``: no answer); ``outcome_unknown``: a 5xx or
    no answer, which does not say whether a write was done."""

    exit_code = 1

    def __init__(self, message: str, *, status: int | None = None, outcome_unknown: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.outcome_unknown = outcome_unknown


class ReadOnlyToken(Exception):
    """403 on a write without any sign of rate limiting: the token may not comment."""


@dataclass(frozen=True, slots=True)
class Target:
    """Where the comment goes. ``token`` is never part of ``repr``."""

    api_url: str
    repository: str
    pr: int
    token: str = field(repr=False)


def target_from_environ(environ: Mapping[str, str], *, pr: int | None = None) -> Target:
    """``GITHUB_API_URL`` (default api.github.com), ``GITHUB_REPOSITORY`` (owner/name), the pull
    request number (``pr``, else from the ``GITHUB_EVENT_PATH`` event) and ``GITHUB_TOKEN``."""
    api_url = (environ.get("GITHUB_API_URL") or _DEFAULT_API).rstrip("/")
    if urllib.parse.urlsplit(api_url).scheme not in ("http", "https"):
        raise ConfigError("GITHUB_API_URL must be an http(s) URL")
    repository = environ.get("GITHUB_REPOSITORY", "")
    if not re.fullmatch(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+", repository):
        raise ConfigError("GITHUB_REPOSITORY must be set to owner/name")
    token = environ.get("GITHUB_TOKEN", "")
    if not token:
        raise ConfigError("GITHUB_TOKEN is not set (in GitHub Actions: env: GITHUB_TOKEN: ${{ github.token }})")
    if pr is None:
        pr = _pr_from_event(environ.get("GITHUB_EVENT_PATH", ""))
    if pr is None or pr <= 0:
        raise ConfigError("no pull request number: run on a pull_request event or pass --pr N")
    return Target(api_url=api_url, repository=repository, pr=pr, token=token)


def _pr_from_event(path: str) -> int | None:
    if not path:
        return None
    try:
        event = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ConfigError(f"cannot read the event file GITHUB_EVENT_PATH ({type(e).__name__})") from None
    if not isinstance(event, dict):
        return None
    pull = event.get("pull_request")
    if isinstance(pull, dict) and isinstance(pull.get("number"), int):
        return int(pull["number"])
    issue = event.get("issue")
    if isinstance(issue, dict) and isinstance(issue.get("pull_request"), dict) and isinstance(issue.get("number"), int):
        return int(issue["number"])
    return None


def marker_for(root: str) -> str:
    """The hidden first line that identifies the comment of one plan root in a pull request."""
    digest = hashlib.sha256(root.encode("utf-8")).hexdigest()[:12]
    return f"<!-- expsync:comment root={digest} -->"


def comment_body(markdown: str, root: str) -> str:
    """Marker + rendered plan + a footer naming the plan root. Raises ``ValueError`` when the
    result would exceed :data:`MAX_BODY` (the markdown renderer stays under 60,000)."""
    shown = "".join(ch for ch in root if ch.isprintable() and ch not in "`<>|\\")[:200] or "."
    body = f"{marker_for(root)}\n{markdown.rstrip()}\n\n<sub>plan root `{shown}` · posted by expsync</sub>\n"
    if len(body) > MAX_BODY:
        raise ValueError(f"comment body of {len(body)} characters exceeds GitHub's {MAX_BODY}")
    return body


# -- HTTP -------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Response:
    status: int
    headers: Message
    data: Any


class _Redirects(urllib.request.HTTPRedirectHandler):
    """Follows a redirect of a read within the API only: urllib's own handler copies every
    header, the token's included, to any ``Location``, and turns a redirected ``POST`` into a
    ``GET`` without its body. A write that is redirected stays the 3xx error it is."""

    def __init__(self, check: Callable[[str], str]) -> None:
        self._check = check

    def redirect_request(self, req: urllib.request.Request, fp: Any, code: int, msg: str, headers: HTTPMessage,
                         newurl: str) -> urllib.request.Request | None:
        if req.get_method() != "GET":
            return None
        self._check(urllib.parse.urljoin(req.full_url, newurl))  # raises GitHubError for another origin
        return super().redirect_request(req, fp, code, msg, headers, newurl)


class Client:
    """A minimal GitHub REST client bound to one API origin and one token."""

    def __init__(self, api_url: str, token: str, *, attempts: int = 5, backoff: float = 1.0, max_wait: float = 60.0,
                 timeout: float = 30.0, sleep: Callable[[float], None] = time.sleep,
                 log: Callable[[str], None] = lambda _: None) -> None:
        self.api_url = api_url.rstrip("/")
        self._token = token
        self.attempts = max(1, attempts)
        self.backoff = max(0.0, backoff)
        self.max_wait = max(0.0, max_wait)
        self.timeout = timeout
        self._sleep = sleep
        self._log = log
        #: every request sent, as ``"METHOD /path"`` (retries included): tests count round trips
        self.sent: list[str] = []
        self._opener = urllib.request.build_opener(_Redirects(self._url))

    def __repr__(self) -> str:
        return f"Client({self.api_url!r})"

    def _url(self, path_or_url: str) -> str:
        if path_or_url.startswith("/"):
            return self.api_url + path_or_url
        own = urllib.parse.urlsplit(self.api_url)
        other = urllib.parse.urlsplit(path_or_url)
        if (other.scheme, other.netloc) != (own.scheme, own.netloc) or not other.path.startswith(own.path):
            raise GitHubError("GitHub API returned a link or redirect to another origin; not following it with the token")
        return path_or_url

    def request(self, method: str, path_or_url: str, body: Mapping[str, Any] | None = None, *,
                retry_unknown: bool = True) -> Response:
        """One API call, retried as the module says. ``retry_unknown=False`` (a ``POST``, which
        is not idempotent): a 5xx or network error is raised at once, ``outcome_unknown``, for
        the caller to look before writing again; rate limits are still retried."""
        url = self._url(path_or_url)
        endpoint = urllib.parse.urlsplit(url).path
        data = json.dumps(body).encode("utf-8") if body is not None else None
        for attempt in range(self.attempts):
            req = urllib.request.Request(url, data=data, method=method, headers={
                "Accept": "application/vnd.github+json",
                "Authorization": f"Bearer {self._token}",
                "X-GitHub-Api-Version": "2022-11-28",
                "User-Agent": "expsync",
                **({"Content-Type": "application/json"} if data is not None else {}),
            })
            self.sent.append(f"{method} {endpoint}")
            last = attempt + 1 == self.attempts
            try:
                with self._opener.open(req, timeout=self.timeout) as resp:
                    raw = resp.read()
                    return Response(resp.status, resp.headers, json.loads(raw) if raw.strip() else None)
            except urllib.error.HTTPError as e:
                raw = e.read()
                message = _message(raw)
                retry, wait = self._retry_policy(e.code, e.headers, message, attempt)
                unknown = e.code >= 500
                retry = retry and (retry_unknown or not unknown)
                if retry and not last:
                    self._log(f"GitHub API {method} {endpoint}: HTTP {e.code}; retrying in {wait:g}s "
                              f"(attempt {attempt + 2} of {self.attempts})")
                    self._sleep(wait)
                    continue
                if e.code == 403 and not retry and method != "GET":
                    raise ReadOnlyToken(f"GitHub API {method} {endpoint}: HTTP 403 {message}".rstrip()) from None
                detail = f" ({message})" if message else ""
                raise GitHubError(f"GitHub API {method} {endpoint} failed: HTTP {e.code} {e.reason}{detail}"
                                  + (f" after {self.attempts} attempts" if retry else ""), status=e.code,
                                  outcome_unknown=unknown) from None
            except (urllib.error.URLError, TimeoutError, ConnectionError) as e:
                reason = getattr(e, "reason", e)
                if not last and retry_unknown:
                    wait = self.backoff * (2 ** attempt)
                    self._log(f"GitHub API {method} {endpoint}: {type(reason).__name__}; retrying in {wait:g}s")
                    self._sleep(wait)
                    continue
                raise GitHubError(f"GitHub API {method} {endpoint} unreachable ({type(reason).__name__}) "
                                  f"after {attempt + 1} attempt(s)", outcome_unknown=True) from None
        raise AssertionError("unreachable")  # pragma: no cover

    def pause(self, attempt: int, what: str) -> None:
        """Wait before attempt ``attempt + 2`` of something larger than one request."""
        wait = min(self.backoff * (2 ** attempt), self.max_wait)
        self._log(f"{what}; retrying in {wait:g}s (attempt {attempt + 2} of {self.attempts})")
        self._sleep(wait)

    def _retry_policy(self, status: int, headers: Message, message: str, attempt: int) -> tuple[bool, float]:
        rate_limited = status == 429 or (status == 403 and (
            headers.get("Retry-After") is not None
            or headers.get("X-RateLimit-Remaining") == "0"
            or "rate limit" in message.lower()))
        if not (status >= 500 or rate_limited):
            return False, 0.0
        wait = self.backoff * (2 ** attempt)
        after = headers.get("Retry-After")
        if after is not None and after.strip().isdigit():
            wait = max(wait, float(after))
        elif headers.get("X-RateLimit-Remaining") == "0" and (headers.get("X-RateLimit-Reset") or "").isdigit():
            wait = max(wait, float(headers["X-RateLimit-Reset"]) - time.time())
        return True, min(max(wait, 0.0), self.max_wait)


def _message(raw: bytes) -> str:
    """GitHub's error ``message`` (printable, at most 200 characters), or ``""``."""
    try:
        data = json.loads(raw)
    except ValueError:
        return ""
    text = data.get("message") if isinstance(data, dict) else None
    if not isinstance(text, str):
        return ""
    return "".join(ch if ch.isprintable() else " " for ch in text)[:200]


def _next_link(headers: Message) -> str | None:
    for part in (headers.get("Link") or "").split(","):
        m = re.fullmatch(r'\s*<([^>]+)>\s*;\s*rel="next"\s*', part)
        if m:
            return m.group(1)
    return None


# -- the sticky comment ---------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Outcome:
    action: Literal["created", "updated", "unchanged", "skipped"]
    comment_id: int | None = None
    url: str | None = None
    notice: str = ""


def find_comment(client: Client, target: Target, marker: str) -> dict[str, Any] | None:
    """The pull request's comment whose first line is ``marker`` and that expsync's own account
    wrote, searching every page: a bot's (an app's token such as ``GITHUB_TOKEN``), else, with
    a person's token, that person's; the oldest first. A marker in anyone else's comment (the
    pull request's author can paste it) is ignored: expsync never writes its plan into a comment
    its author can edit afterwards."""
    url: str | None = f"/repos/{target.repository}/issues/{target.pr}/comments?per_page=100"
    found: list[dict[str, Any]] = []
    pages = 0
    while url and pages < MAX_PAGES:
        resp = client.request("GET", url)
        pages += 1
        for c in resp.data if isinstance(resp.data, list) else []:
            body = c.get("body") if isinstance(c, dict) else None
            if isinstance(body, str) and body.split("\n", 1)[0].strip() == marker:
                found.append(c)
        url = _next_link(resp.headers)
    bots = [c for c in found if _author(c).get("type") == "Bot"]
    if bots or not found:
        return bots[0] if bots else None
    me = token_login(client)  # asked only when a person's comment carries the marker
    return next((c for c in found if me is not None and _author(c).get("login") == me), None)


def token_login(client: Client) -> str | None:
    """The login of the person the token belongs to, or ``None`` for an app's token
    (``GITHUB_TOKEN``: ``GET /user`` is 403 "Resource not accessible by integration")."""
    try:
        resp = client.request("GET", "/user")
    except GitHubError as e:
        if e.status in (401, 403, 404):
            return None
        raise
    return _str(resp.data, "login")


def _author(comment: dict[str, Any]) -> dict[str, Any]:
    user = comment.get("user")
    return user if isinstance(user, dict) else {}


_FORK_NOTICE: Final = ("the token may not comment on this pull request (HTTP 403; a pull request from a fork gets "
                       "a read-only token): the plan is in the job log and step summary instead")


def upsert_comment(client: Client, target: Target, body: str, *, root: str) -> Outcome:
    """Create or update the sticky comment of ``root`` with ``body`` (from :func:`comment_body`)."""
    marker = marker_for(root)
    if not body.startswith(marker + "\n"):
        raise ValueError("body must start with the root's marker (use comment_body)")
    if len(body) > MAX_BODY:
        raise ValueError(f"comment body of {len(body)} characters exceeds GitHub's {MAX_BODY}")
    try:
        for attempt in range(client.attempts):
            existing = find_comment(client, target, marker)
            if existing is not None:
                cid = int(existing["id"])
                if existing.get("body") == body:
                    return Outcome("unchanged", cid, _str(existing, "html_url"))
                resp = client.request("PATCH", f"/repos/{target.repository}/issues/comments/{cid}", {"body": body})
                return Outcome("updated", cid, _str(resp.data, "html_url"))
            # a 5xx or lost answer to a POST may come after the comment was made: look again
            # before posting again, or a duplicate no later run updates would show a stale plan
            try:
                resp = client.request("POST", f"/repos/{target.repository}/issues/{target.pr}/comments",
                                      {"body": body}, retry_unknown=False)
            except GitHubError as e:
                if not e.outcome_unknown or attempt + 1 == client.attempts:
                    raise
                client.pause(attempt, f"{e} (the comment may exist now: looking for it again)")
                continue
            return Outcome("created", _int(resp.data, "id"), _str(resp.data, "html_url"))
    except ReadOnlyToken:
        return Outcome("skipped", notice=_FORK_NOTICE)
    raise AssertionError("unreachable")  # pragma: no cover


def _int(data: Any, key: str) -> int | None:
    v = data.get(key) if isinstance(data, dict) else None
    return v if isinstance(v, int) else None


def _str(data: Any, key: str) -> str | None:
    v = data.get(key) if isinstance(data, dict) else None
    return v if isinstance(v, str) else None
