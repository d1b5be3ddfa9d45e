"""A small Redis client for the cache refresh: one connection, a list of commands written at
once, the replies read back in order (RESP2).

Why not redis-py for everything: importing it loads about 60 modules (its asyncio client,
cluster, observability ...), about 70 ms of every ``plan`` or ``apply`` that has a Redis URL,
while the refresh needs DEL, SET and GET. This client takes the plain URLs only:
``redis://[[user]:password@]host[:port][/db]`` and ``unix://[[user]:password@]/path[?db=N]``.
:func:`parse` returns ``None`` for every other URL (TLS ``rediss://``, Redis Cluster, any
query option besides ``db``, any form it would not read exactly as redis-py does) and :func:`expsync.cache.refresh.connect` then uses redis-py,
which also decides whether such a URL is valid.

A new connection first sends AUTH and SELECT (when the URL has a password or a database
number) and checks their replies before any command is written: one more round trip, so that
a refused password or database runs nothing. The commands of a call then go in one write.
Every error reply raises :class:`RespError` after all replies were read; connection problems
raise ``OSError`` (timeouts of 5 s, as the redis-py clients get).
"""

from __future__ import annotations

import re
import socket
from collections.abc import Sequence
from dataclasses import field
from typing import Any, Final
from urllib.parse import unquote, urlsplit

from expsync.records import dataclass

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


#: the only query and path forms parsed here; any other goes to redis-py's ``parse_url``, which
#: ignores a blank or non-numeric database, percent-decodes the path, joins its segments ...
_QUERY_DB: Final = re.compile(r"db=([0-9]+)")
_PATH_DB: Final = re.compile(r"/([0-9]*)")


def parse(url: str) -> Address | None:
    """The address of a plain ``redis://`` or ``unix://`` URL, read exactly as redis-py reads
    it; ``None`` for any other URL, and for every form parsed here differently or not at all
    (redis-py then decides, including whether the URL is valid). Never raises."""
    try:
        u = urlsplit(url)
        port = u.port
    except ValueError:
        return None
    if u.scheme not in ("redis", "unix") or u.fragment:
        return None
    query = _QUERY_DB.fullmatch(u.query) if u.query else None
    if u.query and query is None:
        return None
    user = unquote(u.username) if u.username else None
    password = unquote(u.password) if u.password else None  # empty: no AUTH, as redis-py
    if user and password is None:
        return None  # a user without a password: left to redis-py
    db = int(query.group(1)) if query else 0
    if u.scheme == "unix":
        if not u.path or u.netloc.rpartition("@")[2]:
            return None
        return Address(path=unquote(u.path), db=db, username=user, password=password)
    path = _PATH_DB.fullmatch(u.path) if u.path else None
    if not u.hostname or (u.path and path is None) or (query and path and path.group(1)):
        return None
    if path and path.group(1):
        db = int(path.group(1))
    return Address(host=unquote(u.hostname), port=port or 6379, db=db, username=user, password=password)


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

    def _open(self) -> socket.socket:
        a = self.address
        if not a.path:
            sock = socket.create_connection((a.host, a.port), timeout=TIMEOUT)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return sock
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(TIMEOUT)
        try:
            sock.connect(a.path)
        except OSError:
            sock.close()
            raise
        return sock

    def _connect(self) -> None:
        """Open the connection and run AUTH and SELECT (one round trip, when the URL has them),
        their replies checked before any command is written: a refused password or database
        number must not let a DEL or a SET through (SELECT refused: they would hit db 0). On
        any failure the connection is closed, so the next :meth:`call` starts afresh."""
        a = self.address
        sock = self._open()
        self._sock, self._file = sock, sock.makefile("rb")
        first: list[list[str | bytes]] = []
        if a.password is not None:
            first.append(["AUTH", a.username, a.password] if a.username else ["AUTH", a.password])
        if a.db:
            first.append(["SELECT", str(a.db)])
        if first:
            try:
                self._exchange(first)
            except RespError:
                self.close()  # never reused: a call after this one authenticates again
                raise

    def _exchange(self, commands: Sequence[Sequence[str | bytes]]) -> list[Any]:
        """Write ``commands`` at once, read every reply, then raise the first error reply (the
        connection stays usable: every reply was read); closed on a connection failure."""
        assert self._sock is not None
        try:
            self._sock.sendall(b"".join(_encode(c) for c in commands))
            replies = [self._reply() for _ in commands]
        except BaseException:
            self.close()  # replies may be left unread: the connection is not reused
            raise
        for r in replies:
            if isinstance(r, RespError):
                raise r
        return replies

    def call(self, commands: Sequence[Sequence[str | bytes]]) -> list[Any]:
        """Send ``commands`` in one write (after the handshake, on a new connection) and return
        their replies, in order. An error reply raises, once all replies were read."""
        if self._sock is None:
            self._connect()
        return self._exchange(commands)

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
