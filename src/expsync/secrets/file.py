"""``file:PATH``: the key is the content of a file (spec §3), e.g. a mounted Kubernetes or
Docker secret.

Relative paths are resolved against ``ctx.cwd`` (the directory expsync runs in, not the YAML
file's directory: that is what ``file:`` means everywhere else in a shell). Trailing line
breaks are stripped because editors and ``echo`` add them and an API key never ends in one;
nothing else is touched. Reads are capped: a reference to a huge file or a device
(``file:/dev/zero``) fails instead of exhausting memory.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from expsync.model import SecretRef
from expsync.secrets.policy import file_refusal
from expsync.secrets.base import (
    ACCESS_DENIED,
    REFUSED_FILE,
    EMPTY,
    NOT_FOUND,
    UNAVAILABLE,
    Failure,
    Outcome,
    ResolveContext,
    text_value,
)

#: AWS Secrets Manager's own limit; no API key comes close.
MAX_BYTES: Final = 64 * 1024


class FileResolver:
    """Reads ``file:PATH`` references relative to ``ctx.cwd``."""

    def resolve(self, refs: Sequence[SecretRef], ctx: ResolveContext) -> dict[SecretRef, Outcome]:
        return {ref: self._read(ref, ctx) for ref in refs}

    def _read(self, ref: SecretRef, ctx: ResolveContext) -> Outcome:
        path = ctx.cwd / ref.locator  # an absolute locator replaces cwd
        what = f"file {path}"
        why = file_refusal(ref.locator, ctx.cwd)
        if why is not None:
            return Failure(REFUSED_FILE, f"{what} is refused: {why}")
        try:
            raw = _read_regular(path, ref.locator, ctx.cwd)
        except _NotRegular as exc:
            return Failure(
                REFUSED_FILE, f"{what} is refused: {exc.args[0]}", hint="point file: at a regular file holding the key"
            )
        except FileNotFoundError:
            return Failure(NOT_FOUND, f"{what} does not exist")
        except PermissionError:
            return Failure(ACCESS_DENIED, f"{what} is not readable (permission denied)")
        except IsADirectoryError:
            return Failure(NOT_FOUND, f"{what} is a directory, not a file")
        except OSError as exc:
            # The errno name only: foreign exception text is never formatted into a reason.
            name = errno.errorcode.get(exc.errno or 0, "error")
            return Failure(UNAVAILABLE, f"{what} cannot be read ({name})", hint="check the path and permissions")
        if len(raw) > MAX_BYTES:
            return Failure(
                EMPTY,
                f"{what} is larger than {MAX_BYTES // 1024} KiB, not an api key",
                hint="point file: at a file that holds only the key",
            )
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            return Failure(EMPTY, f"{what} is not UTF-8 text", hint="store the key as UTF-8 text")
        value = text.rstrip("\r\n")
        ctx.register(value)
        return text_value(value, what)


class _NotRegular(Exception):
    pass


_OPEN_FLAGS = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOCTTY", 0)


def _read_regular(path: Path, locator: str, cwd: Path) -> bytes:
    """At most ``MAX_BYTES + 1`` bytes of ``path``, which must be a regular file once opened."""
    fd = os.open(path, _OPEN_FLAGS)
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise IsADirectoryError(errno.EISDIR, "is a directory")
        if not stat.S_ISREG(st.st_mode):
            raise _NotRegular(f"it is not a regular file ({_kind(st.st_mode)})")
        opened = _opened_path(fd)
        if opened is not None:
            # what was opened, after every symlink: a link swapped in after the first check
            # is caught here
            rel = os.path.relpath(opened, os.path.realpath(cwd)) if not locator.startswith("/") else opened
            why = file_refusal(rel, cwd)
            if why is not None:
                raise _NotRegular(why)
        os.set_blocking(fd, True)
        chunks: list[bytes] = []
        left = MAX_BYTES + 1
        while left > 0:
            chunk = os.read(fd, left)
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _opened_path(fd: int) -> str | None:
    try:
        target = os.readlink(f"/proc/self/fd/{fd}")
    except OSError:  # no /proc (macOS): the check before opening stands
        return None
    return target if target.startswith("/") else None


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISDIR(mode):
        return "a directory"
    return "not a regular file"
