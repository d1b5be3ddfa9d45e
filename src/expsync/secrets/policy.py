"""Which secret references a run may resolve at all: the allowlist and the built-in refusals.

A pull request edits ``experiments/*.yaml``, so a reference must never be able to reach for
whatever the CI job happens to hold. Two layers, both checked *before* anything is resolved:

1. **Refused always** (allowlist or not):

   - ``env:`` names in :data:`REFUSED_ENV`: expsync's own configuration and the well-known CI
     and cloud credentials (matched case-insensitively, ``*`` as a wildcard). This is the one
     list; ``docs/secrets.md`` prints it.
   - ``file:`` paths under :data:`REFUSED_DIRS` (``/proc``, ``/sys``, ``/dev``, ``/etc``), and
     relative paths that leave the working directory - both checked on the path as written
     *and* with symlinks resolved; paths through a credential store (:data:`REFUSED_COMPONENTS`:
     ``.git``, ``.aws``, ``.ssh``, ...) likewise. The file resolver additionally opens without blocking and
     refuses anything that is not a regular file (:mod:`expsync.secrets.file`).

   Violations are ``E409`` (protected variable) and ``E410`` (file path).

2. **The allowlist** ``EXPSYNC_SECRET_REFS``, set in the job's environment (never in the
   repository a pull request edits): glob patterns separated by commas or newlines, matched
   against the whole reference as written (``env:PARTNER_*_KEY``, ``aws-sm:partners/*``,
   ``vault:secret/partners/*``, ``file:/run/secrets/*``; ``file:`` paths are normalised first,
   so ``..`` cannot walk out of a pattern). A reference no pattern matches is ``E408``.
   ``*`` alone is the explicit "accept any reference" opt-out.

Without an allowlist, ``plan`` warns (``W401``) and ``apply`` in CI (``GITHUB_ACTIONS=true`` or
``CI=true``) refuses with ``E412`` (exit 4): :func:`ci_gate`.
"""

from __future__ import annotations

import os
import posixpath
import re
from collections.abc import Iterable, Mapping
from fnmatch import fnmatchcase
from pathlib import Path
from typing import TYPE_CHECKING, Final, Literal

from expsync.diagnostics import Diagnostic
from expsync.errors import ConfigError
from expsync.model import SecretRef
from expsync.records import dataclass

if TYPE_CHECKING:
    from expsync.secrets.base import SecretUse

#: The job-environment variable holding the allowlist.
ALLOWLIST_VAR: Final = "EXPSYNC_SECRET_REFS"

#: ``env:`` names never resolved, whatever the allowlist says (case-insensitive globs).
REFUSED_ENV: Final[tuple[str, ...]] = (
    # expsync's own configuration: the database URL, the encryption key, the allowlist itself
    "EXPSYNC_*",
    "BYOK_ENCRYPTION_KEY",
    # CI systems
    "GITHUB_TOKEN",
    "GH_TOKEN",
    "GH_ENTERPRISE_TOKEN",
    "GITHUB_ENTERPRISE_TOKEN",
    "ACTIONS_*",
    "RUNNER_*",
    "CI_JOB_TOKEN",
    "CI_JOB_JWT*",
    "CI_REGISTRY_PASSWORD",
    "CI_DEPLOY_PASSWORD",
    "BUILDKITE_AGENT_ACCESS_TOKEN",
    "CIRCLE_TOKEN",
    "SYSTEM_ACCESSTOKEN",
    # cloud and secret-store credentials (the stores expsync itself logs in to, among others)
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN",
    "VAULT_TOKEN",
    "VAULT_SECRET_ID",
    "VAULT_ROLE_ID",
    "BAO_TOKEN",
    "GOOGLE_APPLICATION_CREDENTIALS",
    "GOOGLE_CREDENTIALS",
    "GOOGLE_OAUTH_ACCESS_TOKEN",
    "CLOUDSDK_AUTH_ACCESS_TOKEN",
    "AZURE_CLIENT_SECRET",
    "AZURE_CLIENT_CERTIFICATE_PASSWORD",
    "AZURE_FEDERATED_TOKEN*",
    "ARM_CLIENT_SECRET",
    "ARM_OIDC_TOKEN",
    # database and cache clients' own password variables
    "PGPASSWORD",
    "REDISCLI_AUTH",
)

#: ``file:`` paths under these directories are never read (kernel and device files, system
#: configuration such as /etc/shadow).
REFUSED_DIRS: Final[tuple[str, ...]] = (
    "/proc", "/sys", "/dev", "/etc",
    # the platform's own service-account tokens (Kubernetes, EKS pod identity, Azure workload
    # identity): a pattern such as ``file:/run/secrets/*`` would otherwise match them
    "/run/secrets/kubernetes.io", "/var/run/secrets/kubernetes.io",
    "/run/secrets/eks.amazonaws.com", "/var/run/secrets/eks.amazonaws.com",
    "/var/run/secrets/azure", "/run/secrets/azure",
)

#: ``file:`` paths with one of these components are never read, anywhere: version-control and
#: tool credential stores (``actions/checkout`` writes the job's GITHUB_TOKEN into ``.git/config``;
#: ``~/.aws/credentials``, ``~/.docker/config.json``, ``~/.kube/config``, ``~/.config/gh/hosts.yml`` ...).
REFUSED_COMPONENTS: Final = frozenset({
    ".git", ".ssh", ".aws", ".azure", ".docker", ".kube", ".gnupg", ".netrc", ".git-credentials",
    ".pgpass", ".npmrc", ".pypirc", ".vault-token", ".config",
})

_REFUSED_ENV_RE: Final = re.compile(
    "|".join("(?:" + re.escape(p).replace(r"\*", ".*") + r")\Z" for p in REFUSED_ENV), re.IGNORECASE
)

ALLOWLIST_HINT: Final = (
    f"set {ALLOWLIST_VAR} in the job's environment to the references this repository may use, e.g. "
    f"{ALLOWLIST_VAR}='env:PARTNER_*_KEY,aws-sm:partners/*' ('*' accepts any reference)"
)


def is_refused_env(name: str) -> bool:
    """Whether ``env:NAME`` is one of the built-in refusals (:data:`REFUSED_ENV`)."""
    return _REFUSED_ENV_RE.fullmatch(name) is not None


@dataclass(frozen=True, slots=True)
class Allowlist:
    """The patterns of ``EXPSYNC_SECRET_REFS``."""

    patterns: tuple[str, ...]

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Allowlist | None:
        """The allowlist, or None when the variable is unset or blank. A pattern that names no
        known scheme could never match and is a configuration error (exit 3)."""
        raw = environ.get(ALLOWLIST_VAR)
        if raw is None or not raw.strip():
            return None
        patterns = tuple(p.strip() for p in re.split(r"[,\n]", raw) if p.strip())
        from expsync.secrets.refs import SCHEMES

        for p in patterns:
            scheme = p.partition(":")[0]
            if p != "*" and not (":" in p and any(fnmatchcase(s, scheme) for s in SCHEMES)):
                raise ConfigError(
                    f"{ALLOWLIST_VAR}: pattern {p!r} does not start with a reference scheme "
                    f"({', '.join(s + ':' for s in SCHEMES)}) or '*'"
                )
        return cls(patterns)

    def allows(self, ref: SecretRef) -> bool:
        text = _canonical(ref)
        return any(fnmatchcase(text, p) for p in self.patterns)

    def template(self) -> str | None:
        """A reference template ``import`` can fill in: the first ``env:`` (else ``aws-sm:``)
        pattern with exactly one ``*`` and no other wildcard, ``*`` becoming ``{KEY}``
        (``{key}`` for ``aws-sm:``)."""
        for scheme, placeholder in (("env:", "{KEY}"), ("aws-sm:", "{key}")):
            for p in self.patterns:
                if p.startswith(scheme) and p.count("*") == 1 and not any(c in p for c in "?[]"):
                    return p.replace("*", placeholder)
        return None


def _canonical(ref: SecretRef) -> str:
    """The reference as matched against the allowlist: ``file:`` paths normalised."""
    if ref.scheme != "file":
        return str(ref)
    return "file:" + posixpath.normpath(ref.locator)


def file_refusal(locator: str, cwd: Path) -> str | None:
    """Why ``file:LOCATOR`` may never be read, or None. Checks the path as written and with
    symlinks resolved (as far as they exist)."""
    written = Path(posixpath.normpath(locator if locator.startswith("/") else str(cwd / locator)))
    try:
        resolved = Path(os.path.realpath(cwd / locator))
    except (OSError, ValueError):
        return "its path cannot be resolved"
    for path in (written, resolved):
        for top in REFUSED_DIRS:
            if path == Path(top) or path.is_relative_to(top):
                return f"it points into {top}, which is never read"
        hit = next((c for c in path.parts if c in REFUSED_COMPONENTS), None)
        if hit is not None:
            return f"it points into {hit}, a credential store that is never read"
    if not locator.startswith("/"):
        base = Path(os.path.realpath(cwd))
        if not written.is_relative_to(Path(posixpath.normpath(str(cwd)))) or not resolved.is_relative_to(base):
            return "a relative path must stay inside the working directory (symlinks resolved)"
    return None


def refusal(ref: SecretRef, cwd: Path) -> tuple[str, str, str] | None:
    """``(code, reason, hint)`` when ``ref`` is refused whatever the allowlist says."""
    if ref.scheme == "env" and is_refused_env(ref.locator):
        return (
            "E409",
            f"{ref} is refused: {ref.locator} is expsync's own configuration or a CI/cloud credential",
            "reference a variable that holds only the partner key (see docs/secrets.md for the refused names)",
        )
    if ref.scheme == "file":
        why = file_refusal(ref.locator, cwd)
        if why is not None:
            return "E410", f"{ref} is refused: {why}", "point file: at a key file such as /run/secrets/NAME"
    return None


class Policy:
    """The built-in refusals plus the job's allowlist, for one run (verdicts cached per reference)."""

    def __init__(self, environ: Mapping[str, str], cwd: Path) -> None:
        self.allowlist = Allowlist.from_environ(environ)
        self.cwd = cwd
        self._verdicts: dict[SecretRef, tuple[str, str, str] | None] = {}

    def verdict(self, ref: SecretRef) -> tuple[str, str, str] | None:
        """``(code, reason, hint)`` when ``ref`` may not be resolved, else None."""
        if ref in self._verdicts:
            return self._verdicts[ref]
        verdict = refusal(ref, self.cwd)
        if verdict is None and self.allowlist is not None and not self.allowlist.allows(ref):
            verdict = (
                "E408",
                f"{ref} is not allowed by {ALLOWLIST_VAR}",
                f"use a reference matching one of {', '.join(self.allowlist.patterns)}, "
                f"or extend {ALLOWLIST_VAR} in the job's environment",
            )
        self._verdicts[ref] = verdict
        return verdict

    def diagnostics(self, uses: Iterable[SecretUse]) -> list[Diagnostic]:
        """One diagnostic per use of a refused reference."""
        out: list[Diagnostic] = []
        for use in uses:
            verdict = self.verdict(use.ref)
            if verdict is not None:
                code, reason, hint = verdict
                out.append(Diagnostic.make(code, reason, use.where, path=use.path, hint=hint, experiment=use.experiment))
        return out


def check(uses: Iterable[SecretUse | SecretRef], environ: Mapping[str, str], cwd: Path) -> list[Diagnostic]:
    """One diagnostic per use of a reference the policy refuses (nothing is resolved here).

    Raises :class:`~expsync.errors.ConfigError` for a malformed ``EXPSYNC_SECRET_REFS``.
    """
    from expsync.secrets.base import SecretUse

    return Policy(environ, cwd).diagnostics(u if isinstance(u, SecretUse) else SecretUse(u) for u in uses)


def import_template(explicit: str | None, environ: Mapping[str, str], cwd: Path) -> str | None:
    """The reference template ``import`` uses: ``explicit`` (``--key-ref-template``), else one
    derived from the allowlist, else None (``env:`` names of its own). A template must hold
    ``{KEY}`` or ``{key}`` and make references the policy accepts; otherwise ConfigError."""
    from expsync.secrets.refs import RefSyntaxError, parse_ref

    allowlist = Allowlist.from_environ(environ)
    template = explicit if explicit is not None else (allowlist.template() if allowlist else None)
    if template is None:
        return None
    if "{KEY}" not in template and "{key}" not in template:
        raise ConfigError("--key-ref-template must contain {KEY} or {key}, e.g. 'env:PARTNER_{KEY}_KEY'")
    sample = template.replace("{KEY}", "SAMPLE_EXPERIMENT").replace("{key}", "sample-experiment")
    try:
        ref = parse_ref(sample)
    except RefSyntaxError as e:
        raise ConfigError(f"--key-ref-template does not make a valid reference: {e}") from None
    verdict = Policy(environ, cwd).verdict(ref)
    if verdict is not None:
        raise ConfigError(f"--key-ref-template makes references the policy refuses ({verdict[0]}): {verdict[1]}")
    return template


def in_ci(environ: Mapping[str, str]) -> bool:
    return environ.get("GITHUB_ACTIONS", "").lower() == "true" or environ.get("CI", "").lower() in ("true", "1")


def ci_gate(environ: Mapping[str, str], command: Literal["plan", "apply"]) -> Diagnostic | None:
    """Without an allowlist: ``W401`` for a plan, ``E412`` for an apply in CI (exit 4)."""
    if Allowlist.from_environ(environ) is not None:
        return None
    if command == "apply" and in_ci(environ):
        return Diagnostic.make(
            "E412",
            f"apply in CI resolves secret references only with an allowlist: {ALLOWLIST_VAR} is not set",
            hint=ALLOWLIST_HINT,
        )
    return Diagnostic.make(
        "W401",
        f"{ALLOWLIST_VAR} is not set: any env:, file:, aws-sm: or vault: reference the YAML names is resolved",
        hint=ALLOWLIST_HINT,
    )


__all__ = [
    "ALLOWLIST_VAR",
    "Allowlist",
    "Policy",
    "REFUSED_COMPONENTS",
    "REFUSED_DIRS",
    "REFUSED_ENV",
    "check",
    "ci_gate",
    "file_refusal",
    "import_template",
    "in_ci",
    "is_refused_env",
    "refusal",
]
