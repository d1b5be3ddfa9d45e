"""Showing a URL safely: :func:`mask_url` is the one function every printed URL goes through.

A database or Redis URL can carry credentials in two places: the userinfo
(``postgresql://user:PASSWORD@host/db``, ``redis://:PASSWORD@host``) and the query string
(libpq's ``?password=...`` and ``?sslpassword=...``, or a ``?token=...``). :func:`mask_url`
replaces each such value with ``***`` and leaves the rest readable (scheme, user, host, port,
database, harmless parameters such as ``sslmode``), so an error message still says *which*
server could not be reached. :func:`url_secrets` lists the raw credential values of a URL, for
scrubbing them out of foreign error text (a driver's message) and registering them with the
run's redactor.

Which query parameters are credentials is decided by
:func:`expsync.credentials.is_credential_name`, the same definition that refuses keys in
``base_url``. Pure standard library.
"""

from __future__ import annotations

import re
from typing import Final
from urllib.parse import unquote, urlsplit

from expsync.credentials import is_credential_name

MASK: Final = "***"

#: ``scheme://userinfo@`` - the userinfo ends at the *last* ``@`` before the path.
_AUTHORITY = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^/?#]*)@")
_PARAM = re.compile(r"(?P<sep>^|[?&;#])(?P<name>[^=&;#?]*)=(?P<value>[^&;#]*)")


def mask_url(url: str) -> str:
    """``url`` with the userinfo password and every credential-named query or fragment
    parameter replaced by ``***``. Never raises; a URL it cannot parse is masked textually."""
    text = str(url)
    m = _AUTHORITY.search(text)  # a prefix: the pattern is anchored with ^
    if m:
        user, colon, _password = m.group("userinfo").partition(":")
        userinfo = f"{user}:{MASK}" if colon else user
        text = m.group("scheme") + userinfo + "@" + text[m.end():]
    elif _odd_userinfo(text):
        # a password holding an unescaped "/", "?" or "#": mask everything up to the last "@"
        scheme, _, rest = text.partition("://")
        text = f"{scheme}://{MASK}@{rest.rpartition('@')[2]}"
    head, qmark, rest = text.partition("?")
    if not qmark:
        head, hashmark, frag = text.partition("#")
        return head + hashmark + _mask_params(frag, first=True) if hashmark else text
    return head + qmark + _mask_params(rest, first=True)


def _odd_userinfo(text: str) -> bool:
    _scheme, sep, rest = text.partition("://")
    return bool(sep) and "@" in rest


def _mask_params(query: str, *, first: bool) -> str:
    def repl(m: re.Match[str]) -> str:
        name = unquote(m.group("name"))
        if is_credential_name(name) and m.group("value"):
            return f"{m.group('sep')}{m.group('name')}={MASK}"
        return m.group(0)

    return _PARAM.sub(repl, query)


def url_secrets(url: str) -> list[str]:
    """The credential values a URL carries (password, credential query parameters), raw and
    percent-decoded: what must never appear in output."""
    out: list[str] = []
    text = str(url)
    m = _AUTHORITY.search(text)  # a prefix: the pattern is anchored with ^
    if m:
        _user, colon, password = m.group("userinfo").partition(":")
        if colon and password:
            out += [password, unquote(password)]
    elif _odd_userinfo(text):
        userinfo = text.partition("://")[2].rpartition("@")[0]
        password = userinfo.partition(":")[2]
        if password:
            out += [password, unquote(password)]
    try:
        parts = urlsplit(text)
        query = "&".join(p for p in (parts.query, parts.fragment) if p)
    except ValueError:
        query = text.partition("?")[2]
    for pm in _PARAM.finditer(query):
        if is_credential_name(unquote(pm.group("name"))) and pm.group("value"):
            out += [pm.group("value"), unquote(pm.group("value"))]
    return list(dict.fromkeys(v for v in out if v))


def origin(url: str) -> str | None:
    """``scheme://host:port`` of ``url`` only (no userinfo, path or query), or None when it has
    no host: how a secret store's address is named in a message."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        return None
    if not host:
        return None
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:  # a malformed port: the host only
        port = ""
    return f"{parts.scheme}://{host}{port}"


def scrub(text: str, url: str) -> str:
    """``text`` (e.g. a driver's error message) with every credential of ``url`` masked."""
    for value in sorted(url_secrets(url), key=len, reverse=True):
        text = text.replace(value, MASK)
    return text


__all__ = ["MASK", "mask_url", "origin", "scrub", "url_secrets"]
