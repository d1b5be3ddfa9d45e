"""secrets stage: turn ``api_key`` references into values, and keep the values out of output.

Spec §3 defines four reference forms, parsed by :mod:`expsync.secrets.refs`::

    env:NAME                       environment variable            (secrets.env)
    file:PATH                      file contents, trailing newline  (secrets.file)
    aws-sm:SECRET_ID[#FIELD]       AWS Secrets Manager              (secrets.aws, extra [aws])
    vault:MOUNT/PATH#FIELD         Vault / OpenBao KV v2            (secrets.vault, extra [vault])

:func:`resolve_all` is the one entry point. It first applies the reference policy of
:mod:`expsync.secrets.policy` (built-in refusals and the ``EXPSYNC_SECRET_REFS`` allowlist,
``E408``-``E410``: a refused reference is never resolved), then resolves each distinct reference once through
the :class:`Resolver` registered for its scheme in :data:`RESOLVERS` and returns
``(secrets, diagnostics)``; failures are ``E402``-``E406`` diagnostics, never exceptions.
Resolved values are :class:`~expsync.model.Secret` objects that refuse to print; a
:class:`Redactor` additionally masks every value fetched in logs, and emits GitHub
``::add-mask::`` commands. ``expsync plan --no-secrets`` (fork pull requests, which get no
secrets) skips this stage entirely and reports api keys as ``unknown``.

User documentation: ``docs/secrets.md``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from expsync.secrets.base import Failure, Outcome, ResolveContext, Resolver, SecretUse, uses_in
    from expsync.secrets.redact import Redactor
    from expsync.secrets.resolve import RESOLVERS, resolve_all

#: where each public name lives: loaded on first use, so importing a light submodule
#: (``expsync.secrets.refs``, the reference syntax the file format checks) does not load the
#: resolvers, the policy and the redactor (``validate`` never resolves a secret)
_LAZY = {
    "Failure": "base", "Outcome": "base", "ResolveContext": "base", "Resolver": "base",
    "Redactor": "redact",
    "SecretUse": "base", "uses_in": "base",
    "RESOLVERS": "resolve", "resolve_all": "resolve",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    globals()[name] = value
    return value
