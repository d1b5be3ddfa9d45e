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

from expsync.secrets.base import Failure, Outcome, ResolveContext, Resolver
from expsync.secrets.redact import Redactor
from expsync.secrets.resolve import RESOLVERS, SecretUse, resolve_all, uses_in

__all__ = [
    "RESOLVERS",
    "Failure",
    "Outcome",
    "Redactor",
    "ResolveContext",
    "Resolver",
    "SecretUse",
    "resolve_all",
    "uses_in",
]
