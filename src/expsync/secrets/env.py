"""``env:NAME``: the key is the value of an environment variable (spec §3).

This is how CI usually hands over keys (GitHub Actions ``secrets.*`` mapped into ``env:``).
The variable is read from the ``environ`` mapping in the context, never from ``os.environ``
directly, so the caller controls exactly what is visible.
"""

from __future__ import annotations

from collections.abc import Sequence

from expsync.model import SecretRef
from expsync.secrets.base import NOT_FOUND, Failure, Outcome, ResolveContext, text_value


class EnvResolver:
    """Reads ``env:NAME`` references from ``ctx.environ``."""

    def resolve(self, refs: Sequence[SecretRef], ctx: ResolveContext) -> dict[SecretRef, Outcome]:
        out: dict[SecretRef, Outcome] = {}
        for ref in refs:
            value = ctx.environ.get(ref.locator)
            if value is None:
                out[ref] = Failure(
                    NOT_FOUND,
                    f"environment variable {ref.locator} is not set",
                    hint=f"export {ref.locator}, e.g. from a CI secret",
                )
                continue
            ctx.register(value)
            out[ref] = text_value(value, f"environment variable {ref.locator}")
        return out
