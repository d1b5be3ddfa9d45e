"""A small Redis client for the cache refresh: one connection, a list of commands written at
once, the replies read back in order (RESP2).

Why not redis-py for everything: importing it loads about 60 modules (its asyncio client,
cluster, observability ...), about 70 ms of every ``plan`` or ``apply`` that has a Redis URL,
while the refresh needs DEL, SET and GET. This client takes the plain URLs only:
``redis://[[user]:password@]host[:port][/db]`` and ``unix://[[user]:password@]/path[?db=N]``.
:func:`parse` returns ``None`` for every other URL (TLS ``rediss://``, Redis Cluster, any
query option besides ``db``) and :func:`expsync.cache.refresh.connect` then uses redis-py,
which also decides whether such a URL is valid.

Authentication and the database number are sent first, in the same write as the commands.
Every error reply raises :class:`RespError` after all replies were read; connection problems
raise ``OSError`` (timeouts of 5 s, as the redis-py clients get).
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import parse_qsl, unquote, urlsplit

__all__ = ["Address", "RespClient", "RespError", "parse"]

TIMEOUT: Final = 5.0


class RespError(Exception):
    """The server answered a command with an error reply."""


@dataclass(frozen=True, slots=True)
class Address:
    host: str = ""
    port: int = 6379
    path: str = ""  # a unix socket
    db: int = 0
    username: str | None = None
    password: str | None = field(default=None, repr=False)  # never shown


def _db(text: str) -> int:
    return int(text)  # ValueError: not a number (redis-py refuses it too)


def parse(url: str) -> Address | None:
    """The address of a plain ``redis://`` or ``unix://`` URL; ``None`` for anything else.
    Raises ``ValueError`` for a malformed port or database number."""
    u = urlsplit(url)
    if u.scheme not in ("redis", "unix") or u.fragment:
        return None
    query = parse_qsl(u.query, keep_blank_values=True, strict_parsing=bool(u.query))
    if any(k != "db" for k, _ in query) or len(query) > 1:
        return None
    user = unquote(u.username) if u.username else None
    password = unquote(u.password) if u.password is not None else None
    if user and password is None:
        return None  # a user without a password: left to redis-py
    db = _db(query[0][1]) if query else 0
    if db < 0:
        return None
    if u.scheme == "unix":
        if not u.path or u.hostname or u.port:
            return None
        return Address(path=unquote(u.path), db=db, username=user, password=password)
    if not u.hostname:
        return None
    path = u.path.strip("/")
    if (path and query) or "/" in path:
        return None
    db = _db(path) if path else db
    if db < 0:
        return None
    return Address(host=unquote(u.hostname), port=u.port or 6379, db=db, username=user, password=password)


def _encode(args: Sequence[str | bytes]) -> bytes:
    parts = [b"*%d\r\n" % len(args)]
    for a in args:
        b = a.encode("utf-8") if isinstance(a, str) else a
        parts.append(b"$%d\r\n%s\r\n" % (len(b), b))
    return b"".join(parts)


class RespClient:
    """One connection to a plain Redis server; :meth:`call` sends commands together."""

    def __init__(self, address: Address) -> None:
        self.address = address
        self._sock: socket.socket | None = None
        self._file: Any = None

    def _connect(self) -> list[list[str | bytes]]:
        """Open the connection; return the commands that must go first (AUTH, SELECT)."""
        a = self.address
        if a.path:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(TIMEOUT)
            try:
                sock.connect(a.path)
            except OSError:
                sock.close()
                raise
        else:
            sock = socket.create_connection((a.host, a.port), timeout=TIMEOUT)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock, self._file = sock, sock.makefile("rb")
        first: list[list[str | bytes]] = []
        if a.password is not None:
            first.append(["AUTH", a.username, a.password] if a.username else ["AUTH", a.password])
        if a.db:
            first.append(["SELECT", str(a.db)])
        return first

    def call(self, commands: Sequence[Sequence[str | bytes]]) -> list[Any]:
        """Send ``commands`` in one write and return their replies, in order."""
        first = self._connect() if self._sock is None else []
        assert self._sock is not None
        every = [*first, *commands]
        try:
            self._sock.sendall(b"".join(_encode(c) for c in every))
            replies = [self._reply() for _ in every]
        except BaseException:
            self.close()  # replies may be left unread: the connection is not reused
            raise
        for r in replies:
            if isinstance(r, RespError):
                raise r
        return replies[len(first):]

    def _reply(self) -> Any:
        line = self._file.readline()
        if not line.endswith(b"\r\n"):
            raise ConnectionError("Redis closed the connection")
        kind, rest = line[:1], line[1:-2]
        if kind == b"+":
            return rest.decode("utf-8", "replace")
        if kind == b"-":
            return RespError(rest.decode("utf-8", "replace"))
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            data = self._file.read(n + 2)
            if len(data) != n + 2:
                raise ConnectionError("Redis closed the connection")
            return data[:-2]
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self._reply() for _ in range(n)]
        raise ConnectionError(f"unexpected reply from Redis ({kind!r})")

    def close(self) -> None:
        if self._sock is not None:
            self._file.close()
            self._sock.close()
            self._sock = self._file = None

    def __del__(self) -> None:
        self.close()
