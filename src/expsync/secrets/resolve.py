"""Resolve every secret reference of a run at once: ``resolve_all``.

The caller passes each *use* of a reference - a bare :class:`~expsync.model.SecretRef`, or a
:class:`~expsync.secrets.base.SecretUse` that also says where it is used (``variants[1].api_key`` of experiment
``foo``). :func:`~expsync.secrets.base.uses_in` builds the uses of a whole :class:`~expsync.model.DesiredState`, so
the usual call is::

    secrets, diags = resolve_all(uses_in(desired), environ=os.environ, cwd=Path.cwd(),
                                 redactor=redactor)

Equal references (``SecretRef`` equality ignores ``source``) are resolved once, by the
resolver registered for their scheme in :data:`RESOLVERS`; each resolver gets all its refs in
one call so it can batch. A reference that fails yields one diagnostic **per use**, each with
that use's ``file:line:col``, path and experiment, so every YAML line that needs fixing is
shown. Nothing is raised for a reference that cannot be resolved: the result holds the secrets
that could be resolved, the diagnostics explain the rest (spec §4: all problems at once).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping

from pathlib import Path
from typing import Final

from expsync.diagnostics import Diagnostic
from expsync.model import Secret, SecretRef
from expsync.secrets import policy
from expsync.secrets.aws import AwsResolver
from expsync.secrets.base import UNAVAILABLE, Failure, Outcome, ResolveContext, Resolver, SecretUse, uses_in
from expsync.secrets.env import EnvResolver
from expsync.secrets.file import FileResolver
from expsync.secrets.redact import Redactor
from expsync.secrets.vault import VaultResolver

log = logging.getLogger(__name__)

#: One resolver per scheme of :data:`expsync.secrets.refs.SCHEMES` (a test keeps them equal).
RESOLVERS: Final[Mapping[str, Resolver]] = {
    "env": EnvResolver(),
    "file": FileResolver(),
    "aws-sm": AwsResolver(),
    "vault": VaultResolver(),
}


def resolve_all(
    refs: Iterable[SecretRef | SecretUse],
    *,
    environ: Mapping[str, str],
    cwd: Path,
    redactor: Redactor | None = None,
    resolvers: Mapping[str, Resolver] = RESOLVERS,
) -> tuple[dict[SecretRef, Secret], list[Diagnostic]]:
    """Resolve each distinct reference once; return the secrets and one diagnostic per failed use.

    References the policy refuses (:class:`~expsync.secrets.policy.Policy`: built-in refusals,
    the ``EXPSYNC_SECRET_REFS`` allowlist read from ``environ``) are reported and never resolved.

    ``environ`` and ``cwd`` are the only view of the outside world the resolvers get (no
    ``os.environ`` reads below the CLI). Every value fetched is registered with ``redactor``
    as soon as it is known. ``resolvers`` is for tests and embedders; it defaults to
    :data:`RESOLVERS`.
    """
    uses = [u if isinstance(u, SecretUse) else SecretUse(u) for u in refs]
    # the policy first: a refused reference is reported, never resolved
    rules = policy.Policy(environ, cwd)
    refused = rules.diagnostics(uses)
    occurrences: dict[SecretRef, list[SecretUse]] = {}
    for use in uses:
        if rules.verdict(use.ref) is None:
            occurrences.setdefault(use.ref, []).append(use)
    by_scheme: dict[str, list[SecretRef]] = {}
    for ref in occurrences:
        by_scheme.setdefault(ref.scheme, []).append(ref)

    # `is not None`: an empty Redactor must still receive the store credentials registered first
    ctx = ResolveContext(environ=environ, cwd=cwd, register=redactor.add if redactor is not None else _ignore)
    outcomes: dict[SecretRef, Outcome] = {}
    for scheme, group in by_scheme.items():
        outcomes.update(_resolve_scheme(resolvers, scheme, group, ctx))

    secrets: dict[SecretRef, Secret] = {}
    diagnostics: list[Diagnostic] = list(refused)
    for ref, ref_uses in occurrences.items():
        outcome = outcomes.get(ref) or Failure(UNAVAILABLE, "the resolver returned no result")
        if isinstance(outcome, Secret):
            if redactor is not None:
                redactor.add(outcome)
            secrets[ref] = outcome
            continue
        for use in ref_uses:
            diagnostics.append(
                Diagnostic.make(
                    outcome.code,
                    f"cannot resolve {ref}: {outcome.reason}",
                    use.where,
                    path=use.path,
                    hint=outcome.hint,
                    experiment=use.experiment,
                )
            )
    return secrets, diagnostics


def _resolve_scheme(
    resolvers: Mapping[str, Resolver], scheme: str, refs: list[SecretRef], ctx: ResolveContext
) -> dict[SecretRef, Outcome]:
    resolver = resolvers.get(scheme)
    if resolver is None:
        return {ref: Failure("E401", f"unknown reference scheme {scheme!r}") for ref in refs}
    try:
        return resolver.resolve(refs, ctx)
    except Exception as exc:
        # A store client failing in a way we did not anticipate must not abort the run (all
        # problems are reported at once). Only the exception type is shown or logged, never its
        # text or traceback: foreign messages can quote a response that holds the secret.
        log.debug("resolver for %s: unexpected %s", scheme, type(exc).__name__)
        return {
            ref: Failure(UNAVAILABLE, f"the {scheme} resolver failed unexpectedly ({type(exc).__name__})")
            for ref in refs
        }


def _ignore(_value: str) -> None:
    return None
