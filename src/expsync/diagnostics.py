"""Diagnostics: problems found in the user's input, collected as values and printed together.

Every diagnostic has a stable code from :data:`CODES` (documented in the README; a test keeps
the two in sync). Groups follow spec §4: ``E1xx`` syntax and schema, ``E2xx`` semantics,
``E3xx`` state machine and edit rules, ``E4xx`` secrets, ``E5xx`` drift and ownership.
``W`` codes are warnings: shown, never blocking.

A diagnostic message must never contain a secret value: only references (``env:NAME``) and
reasons.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import field
from typing import Final

from expsync.records import dataclass


class Severity(enum.StrEnum):
    ERROR = "error"  # blocks validate/plan/apply
    WARNING = "warning"  # shown, does not change the exit code


@dataclass(frozen=True, slots=True, order=True)
class SourceRange:
    """Where a YAML node starts: ``file`` as given on the command line, 1-based line/col."""

    file: str
    line: int = 0
    col: int = 0

    def __str__(self) -> str:
        if self.line <= 0:
            return self.file
        return f"{self.file}:{self.line}:{self.col}"


@dataclass(frozen=True, slots=True)
class CodeInfo:
    title: str
    hint: str
    severity: Severity = Severity.ERROR


CODES: Final[dict[str, CodeInfo]] = {
    # E1xx: syntax and schema
    "E100": CodeInfo("file cannot be read", "check the path and permissions"),
    "E101": CodeInfo("YAML syntax error", "fix the YAML syntax at the position shown"),
    "E102": CodeInfo("duplicate mapping key", "remove one of the two entries"),
    "E103": CodeInfo("YAML anchors and aliases are not allowed", "write the value out in full"),
    "E104": CodeInfo("YAML merge keys (<<) are not allowed", "write the keys out in full"),
    "E105": CodeInfo("YAML tag", "remove the tag (even !!str); only plain YAML values are allowed"),
    "E106": CodeInfo("file too large", "split the file or raise the limit with --max-file-size"),
    "E107": CodeInfo("file is not valid UTF-8 text", "save the file as UTF-8"),
    "E108": CodeInfo("empty document", "remove the empty document or fill it in"),
    "E109": CodeInfo("document is not a mapping", "each YAML document must be one experiment mapping"),
    "E110": CodeInfo("unknown field", "remove the field or fix its spelling"),
    "E111": CodeInfo("missing required field", "add the field"),
    "E112": CodeInfo("wrong type", "use a value of the type shown"),
    "E113": CodeInfo("invalid value", "use one of the allowed values"),
    "E114": CodeInfo("invalid URL", "base_url must be an absolute http:// or https:// URL"),
    "E115": CodeInfo("invalid key", "keys match [a-z0-9][a-z0-9._-]{0,99}"),
    "E116": CodeInfo("document too deeply nested or too large", "simplify the document"),
    "E120": CodeInfo("invisible or control character in text", "remove it; the message shows it escaped (e.g. \\u202e)"),
    "E121": CodeInfo("mapping key is not a string", "quote the key"),
    "E122": CodeInfo("number out of range", "write a finite number of at most 4300 digits, or quote it as text"),
    "E123": CodeInfo("too many variants", "an experiment has at most 100 variants"),
    "E124": CodeInfo("more problems in this file", "fix the ones shown; all of them are counted"),
    # E14x: gateway profile (what the configured gateway era accepts)
    "E130": CodeInfo("database row the gateway cannot read", "fix or remove the row in the gateway's admin UI"),
    "E131": CodeInfo("not an HTTP header name", "use a header name of letters, digits and -"),
    "E132": CodeInfo("header value the gateway cannot send", "use Latin-1 text (no character above U+00FF) in extra_headers values"),
    "E133": CodeInfo("header the gateway's fetch refuses", "remove it: fetch sets connection, content-length and transfer-encoding itself"),
    "E140": CodeInfo("field moved in this gateway profile", "follow the hint: the field lives elsewhere in this profile"),
    "E141": CodeInfo("field belongs to another gateway profile", "configure the profile your gateway runs, or remove the field"),
    "E142": CodeInfo("the key __proto__ is not allowed", "the gateway's JSON parser drops __proto__ silently: rename or remove it"),
    "E143": CodeInfo("text length outside the admin API's limits", "name 1-200, description up to 2000, label 1-64 UTF-16 code units"),
    "E144": CodeInfo("id pin is not a UUID the admin API accepts", "use a lower-case RFC 4122 UUID of version 1-8 (as the database shows it)"),
    # E2xx: semantics across the whole desired state
    "E201": CodeInfo("duplicate experiment key", "experiment keys are unique across all files"),
    "E202": CodeInfo("duplicate variant key", "variant keys (default: the label) are unique within an experiment"),
    "E203": CodeInfo("duplicate variant label", "variant labels are unique within an experiment"),
    "E204": CodeInfo("invalid public_model_id", "the gateway lowercases model ids: use lower case, no whitespace"),
    "E205": CodeInfo("active experiment cannot be archived", "set archived: false, or pause/complete first"),
    "E206": CodeInfo("too few variants to route", "an active or paused experiment needs at least 1 variant"),
    "E207": CodeInfo("public_model_id routed by two experiments", "only one experiment per public_model_id may be active or paused"),
    "E208": CodeInfo("duplicate id pin", "each id: pin must be unique"),
    "E209": CodeInfo("weight must be a positive integer", "use an integer >= 1"),
    "E220": CodeInfo("public_model_id uses a reserved prefix", "the gateway reserves kilo/, kilocode/ and kilo-internal/ for its own models"),
    "E221": CodeInfo("metadata cannot change on a completed experiment", "leave metadata as the database has it (the admin API refuses it too)"),
    # E3xx: state machine and edit rules
    "E301": CodeInfo("illegal status transition", "use one of the legal transitions listed"),
    "E302": CodeInfo("field cannot change in this status", "create a new experiment"),
    "E303": CodeInfo("variants are frozen after activation", "create a new experiment"),
    "E304": CodeInfo("variant label cannot change in this status", "labels are frozen once completed"),
    "E305": CodeInfo("new upstream version not allowed in this status", "a completed experiment is immutable"),
    "E306": CodeInfo("active experiment cannot be archived", "pause or complete it first"),
    "E307": CodeInfo("experiment cannot be deleted in this status", "complete and archive it, then remove the file"),
    "E308": CodeInfo("activation guard: no variant, or a weight below 1", "add variants while the experiment is a draft"),
    "E309": CodeInfo("activation guard: a variant's latest version is not effective yet", "wait until its version is effective"),
    "E310": CodeInfo("activation guard: public_model_id is routed by another experiment", "complete or pause-and-complete the other experiment first"),
    "E311": CodeInfo("new experiments start as draft or active", "create it as draft or active, then change status"),
    "E312": CodeInfo("weights sum above 2^32", "the gateway buckets with a uint32: scale the weights down (the same ratios route the same)"),
    "E313": CodeInfo("new version under a pending future-dated version", "make upstream and api_key what the pending version holds, or plan again once it is effective"),
    "W301": CodeInfo("one variant: all traffic goes to it", "fine for a single-model rollout; add variants to compare", Severity.WARNING),
    # E4xx: secrets
    "E401": CodeInfo("invalid secret reference", "use env:NAME, file:PATH, aws-sm:ID[#FIELD] or vault:MOUNT/PATH#FIELD"),
    "E402": CodeInfo("secret not found", "create the secret or fix the reference"),
    "E403": CodeInfo("access to the secret denied", "grant read access to the credentials in use"),
    "E404": CodeInfo("field missing in secret", "add the field or fix the #FIELD part"),
    "E405": CodeInfo("secret is empty or not text", "store a non-empty UTF-8 text value"),
    "E406": CodeInfo("secret store unavailable", "install the extra or check the store's address and credentials"),
    "E407": CodeInfo("stored api key cannot be decrypted", "check BYOK_ENCRYPTION_KEY"),
    "E408": CodeInfo("secret reference not allowed by EXPSYNC_SECRET_REFS", "use an allowed reference or extend the allowlist in the job's environment"),
    "E409": CodeInfo("reference to expsync's configuration or a CI/cloud credential", "reference a variable that holds only the partner key"),
    "E410": CodeInfo("file: reference refused", "point file: at a regular key file inside the working directory or e.g. /run/secrets"),
    "E411": CodeInfo("credential in the upstream JSON", "put the key in api_key (a secret reference), never in upstream"),
    "E412": CodeInfo("no secret-reference allowlist in CI", "set EXPSYNC_SECRET_REFS in the job's environment ('*' accepts any reference)"),
    "W401": CodeInfo("no secret-reference allowlist", "set EXPSYNC_SECRET_REFS in the job's environment", Severity.WARNING),
    # E5xx: drift and ownership
    "E501": CodeInfo("protective change made outside git", "set the status/archived in YAML to what the database has"),
    "E502": CodeInfo("managed experiment removed from git", "only drafts (deleted) and completed+archived (unmanaged) may be removed"),
    "E503": CodeInfo("experiment owned by another key", "each database row is managed by one key"),
    "E504": CodeInfo("plan removes every managed experiment", "check the experiments folder; pass --allow-empty if this is intended"),
    # E507-E509: apply of a saved or confirmed plan (exit 5, printed with the error)
    "E507": CodeInfo("saved plan file was edited", "re-run plan --out and review the new file"),
    "E508": CodeInfo("api key value changed since the plan", "re-run plan --out with the current secret values"),
    "E509": CodeInfo("rows changed by another writer after the re-plan", "re-run plan; nothing was applied"),
    "W501": CodeInfo("changed outside git; the plan reverts it", "update the YAML to keep the change", Severity.WARNING),
    "W502": CodeInfo("a future-dated version is pending", "it supersedes older versions when it takes effect", Severity.WARNING),
    "W503": CodeInfo("api key comparison skipped", "keys are reported as unknown", Severity.WARNING),
}


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """One problem. ``path`` is the location inside the document (``variants[1].weight``)."""

    code: str
    message: str
    source: SourceRange | None = None
    path: str = ""
    hint: str = ""
    experiment: str = ""
    severity: Severity = field(default=Severity.ERROR)

    @classmethod
    def make(
        cls,
        code: str,
        message: str,
        source: SourceRange | None = None,
        *,
        path: str = "",
        hint: str | None = None,
        experiment: str = "",
    ) -> Diagnostic:
        info = CODES[code]  # KeyError on an undocumented code is a bug, by design
        return cls(
            code=code,
            message=message,
            source=source,
            path=path,
            hint=info.hint if hint is None else hint,
            experiment=experiment,
            severity=info.severity,
        )

    @property
    def is_error(self) -> bool:
        return self.severity is Severity.ERROR

    def sort_key(self) -> tuple[str, int, int, str, str]:
        s = self.source
        return (s.file if s else "", s.line if s else 0, s.col if s else 0, self.code, self.path)

    def format(self) -> str:
        """``file:line:col: path: message [CODE]`` and a hint line; user text escaped
        (:func:`expsync.escape.terminal`), so a file name cannot add a line of its own."""
        from expsync.escape import terminal  # imported when used: the ground floor imports no expsync module

        where = f"{terminal(str(self.source))}: " if self.source else ""
        path = f"{terminal(self.path)}: " if self.path else ""
        hint = f"\n    hint: {terminal(self.hint)}" if self.hint else ""
        return f"{where}{path}{terminal(self.message)} [{self.code}]{hint}"

    def as_dict(self) -> dict[str, object]:
        s = self.source
        return {
            "code": self.code,
            "severity": str(self.severity),
            "file": s.file if s else None,
            "line": s.line if s and s.line else None,
            "col": s.col if s and s.col else None,
            "path": self.path,
            "experiment": self.experiment or None,
            "message": self.message,
            "hint": self.hint,
        }


def sort_diagnostics(diags: Iterable[Diagnostic]) -> list[Diagnostic]:
    return sorted(diags, key=Diagnostic.sort_key)


def has_errors(diags: Sequence[Diagnostic]) -> bool:
    return any(d.is_error for d in diags)
