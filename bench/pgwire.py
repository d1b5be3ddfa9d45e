"""A counting TCP proxy for the Postgres wire protocol: what actually goes over the wire.

    with WireCounter() as w:                      # upstream 127.0.0.1:5432
        url = w.url("postgresql+psycopg://postgres@127.0.0.1:5432/db")
        ... run the client against url (in this process or a child) ...
    w.stats()   # {"connections", "round_trips", "executes", "queries", "syncs", "messages": {...}}

It forwards bytes unchanged and parses the frontend (client -> server) stream into messages:

* ``executes``: server-side statement executions requested: extended-protocol Execute
  (``E``) messages plus simple-protocol Query (``Q``) messages;
* ``round_trips``: request/response exchanges: the first request message of a connection,
  and every request message the client sends after the server completed an answer
  (ReadyForQuery, ``Z``, or the one-byte reply to an SSL/GSS request). A pipelined batch
  (many messages sent back to back, then read back) is one round trip however the client
  splits its writes. Connection set-up counts too: the startup packet, and an SSL/GSS
  request when the client makes one.
* ``messages``: frontend messages by type letter (``startup``, ``ssl``/``gss`` requests).

A burst holding only Terminate (``X``) or Flush (``H``) is not a round trip: nothing answers
either by itself. (psycopg's pipeline sends a Flush after the batch's Sync when results are still
unread; if the server has already answered, that Flush arrives after ReadyForQuery.)

Clients must not negotiate TLS through it: ``url()`` adds ``sslmode=disable`` and
``gssencmode=disable``, as ``../shared/bench/latency_proxy.py`` does.
"""

from __future__ import annotations

import socket
import struct
import threading
from collections import Counter
from typing import Any
from urllib.parse import urlsplit, urlunsplit

_SSL_REQUEST = 80877103
_GSS_REQUEST = 80877104
_CANCEL = 80877102
#: frontend messages the server sends nothing back for by themselves: Terminate, Flush
_UNANSWERED = frozenset("XH")


class _Conn:
    def __init__(self, owner: WireCounter) -> None:
        self.owner = owner
        self.buf = b""
        self.started = False
        self.opens = True  # the client speaks first: its first message opens a round trip
        self.byte_reply = False  # an SSL/GSS request is answered by one unframed byte
        self.down_buf = b""

    def up(self, data: bytes) -> None:
        o = self.owner
        with o.lock:
            self.buf += data
            while True:
                if not self.started:
                    if len(self.buf) < 8:
                        break
                    (n,) = struct.unpack("!I", self.buf[:4])
                    if len(self.buf) < n:
                        break
                    (code,) = struct.unpack("!I", self.buf[4:8])
                    kind = {_SSL_REQUEST: "ssl", _GSS_REQUEST: "gss", _CANCEL: "cancel"}.get(code, "startup")
                    o.messages[kind] += 1
                    self._opened(kind)
                    self.started = kind == "startup"
                    self.byte_reply = kind in ("ssl", "gss")
                    self.buf = self.buf[n:]
                    continue
                if len(self.buf) < 5:
                    break
                (n,) = struct.unpack("!I", self.buf[1:5])
                if len(self.buf) < n + 1:
                    break
                kind = chr(self.buf[0])
                o.messages[kind] += 1
                self._opened(kind)
                if kind in "QP" and o.log is not None:  # statement text: after the name (P) / at once (Q)
                    body = self.buf[5 : n + 1]
                    if kind == "P":
                        body = body[body.index(b"\0") + 1 :]
                    o.log.append(kind + " " + body.split(b"\0", 1)[0].decode(errors="replace"))
                self.buf = self.buf[n + 1 :]

    def _opened(self, kind: str) -> None:
        if self.opens and kind not in _UNANSWERED:
            self.owner.round_trips += 1
            self.opens = False

    def down(self, data: bytes) -> None:
        with self.owner.lock:
            if self.byte_reply and data:
                self.byte_reply = False
                self.opens = True
                data = data[1:]
            buf = self.down_buf + data if self.down_buf else data
            i, n = 0, len(buf)
            while n - i >= 5:
                size = int.from_bytes(buf[i + 1 : i + 5], "big")
                if n - i < size + 1:
                    break
                if buf[i] == 0x5A:  # 'Z' ReadyForQuery: the answer is complete
                    self.opens = True
                i += size + 1
            self.down_buf = buf[i:]


class WireCounter:
    """Listens on 127.0.0.1:``port``, forwards each connection to ``upstream`` and counts."""

    def __init__(self, upstream: tuple[str, int] = ("127.0.0.1", 5432), *, log: bool = False) -> None:
        self.upstream = upstream
        #: with ``log=True``: the text of every Query and Parse message, in order
        self.log: list[str] | None = [] if log else None
        self.lock = threading.Lock()
        self.connections = 0
        self.round_trips = 0
        self.messages: Counter[str] = Counter()
        self._socks: set[socket.socket] = set()
        self._stop = False
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port: int = self.sock.getsockname()[1]

    def url(self, base: str) -> str:
        """``base`` with host:port replaced by the proxy, and TLS/GSS negotiation disabled."""
        u = urlsplit(base)
        creds = u.netloc.rsplit("@", 1)[0] + "@" if "@" in u.netloc else ""
        query = u.query
        for k in ("sslmode=disable", "gssencmode=disable"):
            if k.split("=")[0] + "=" not in query:
                query = (query + "&" if query else "") + k
        return urlunsplit((u.scheme, f"{creds}127.0.0.1:{self.port}", u.path, query, u.fragment))

    def reset(self) -> None:
        with self.lock:
            self.connections = self.round_trips = 0
            self.messages = Counter()
            if self.log is not None:
                self.log.clear()

    def stats(self) -> dict[str, Any]:
        with self.lock:
            m = dict(self.messages)
            return {
                "connections": self.connections,
                "round_trips": self.round_trips,
                "executes": m.get("E", 0) + m.get("Q", 0),
                "queries": m.get("Q", 0),
                "syncs": m.get("S", 0),
                "messages": m,
            }

    def __enter__(self) -> WireCounter:
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._stop = True
        try:
            self.sock.close()
        except OSError:
            pass
        with self.lock:
            socks, self._socks = list(self._socks), set()
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def _accept(self) -> None:
        while not self._stop:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            try:
                s = socket.create_connection(self.upstream)
            except OSError:
                c.close()
                continue
            for x in (c, s):
                x.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = _Conn(self)
            with self.lock:
                self.connections += 1
                self._socks.update((c, s))
            threading.Thread(target=self._pump, args=(c, s, conn.up), daemon=True).start()
            threading.Thread(target=self._pump, args=(s, c, conn.down), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, seen: Any) -> None:
        try:
            while True:
                d = src.recv(65536)
                if not d:
                    break
                seen(d)  # count before forwarding: the reply cannot overtake the request
                dst.sendall(d)
        except OSError:
            pass
        for x in (src, dst):
            try:
                x.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
