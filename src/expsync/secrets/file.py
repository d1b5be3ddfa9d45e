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
from collections.abc import Sequence
from typing import Final

from expsync.model import SecretRef
from expsync.secrets.base import (
    ACCESS_DENIED,
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
        try:
            with path.open("rb") as fh:
                raw = fh.read(MAX_BYTES + 1)
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
