"""A tiny real RESP2 server on 127.0.0.1 for what the real Redis cannot show: the commands each
connection received, grouped in rounds (a round: the commands the server read before it
answered them; the client sends its next write only after those answers, so rounds are the
round trips). It answers AUTH (one password, or none configured), SELECT (databases 0-15),
DEL, SET and GET from a dict, and NOAUTH before a good AUTH, as Redis does."""

from __future__ import annotations

import socket
import threading
from types import TracebackType


def _command(buf: bytes, at: int) -> tuple[list[str], int] | None:
    """The command starting at ``at`` and the offset after it; ``None`` while incomplete."""
    end = buf.find(b"\r\n", at)
    if end < 0:
        return None
    n, at, args = int(buf[at + 1:end]), end + 2, []
    for _ in range(n):
        end = buf.find(b"\r\n", at)
        if end < 0:
            return None
        size = int(buf[at + 1:end])
        if len(buf) < end + 2 + size + 2:
            return None
        args.append(buf[end + 2:end + 2 + size].decode("utf-8"))
        at = end + 2 + size + 2
    return args, at


class RespServer:
    def __init__(self, password: str | None = None) -> None:
        self.password = password
        self.store: dict[str, str] = {}
        self.connections: list[list[list[list[str]]]] = []  # per connection, per round, commands
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._sock.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> RespServer:
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._sock.close()
        self._thread.join(5)

    def rounds(self) -> list[list[list[str]]]:
        return [r for c in self.connections for r in c]

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            with conn:
                self._handle(conn)

    def _handle(self, conn: socket.socket) -> None:
        rounds: list[list[list[str]]] = []
        self.connections.append(rounds)
        state = {"authed": self.password is None}
        buf = b""
        while data := conn.recv(1 << 20):
            buf += data
            commands, at = [], 0
            while (got := _command(buf, at)) is not None:
                command, at = got
                commands.append(command)
            buf = buf[at:]
            if commands:
                rounds.append(commands)
                conn.sendall(b"".join(self._answer(c, state) for c in commands))

    def _answer(self, c: list[str], state: dict[str, bool]) -> bytes:
        name = c[0].upper()
        if name == "AUTH":
            if self.password is None:
                return b"-ERR AUTH <password> called without any password configured for the default user\r\n"
            state["authed"] = c[-1] == self.password
            return b"+OK\r\n" if state["authed"] else b"-WRONGPASS invalid username-password pair\r\n"
        if not state["authed"]:
            return b"-NOAUTH Authentication required.\r\n"
        if name == "SELECT":
            return b"+OK\r\n" if 0 <= int(c[1]) < 16 else b"-ERR DB index is out of range\r\n"
        if name == "DEL":
            return b":%d\r\n" % sum(self.store.pop(k, None) is not None for k in c[1:])
        if name == "SET":
            self.store[c[1]] = c[2]
            return b"+OK\r\n"
        value = self.store.get(c[1])
        return b"$-1\r\n" if value is None else b"$%d\r\n%s\r\n" % (len(value.encode()), value.encode())
