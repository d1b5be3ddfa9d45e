"""What every secret resolver shares: the :class:`Resolver` protocol and its value types.

A resolver gets *all* the distinct references of its scheme in one call, so that a store with a
batch API (AWS ``BatchGetSecretValue``) or a per-path read (Vault) fetches each secret once. It
returns one :data:`Outcome` per reference and never raises for a reference that cannot be
resolved: a :class:`Failure` is a value, turned into diagnostics by
:func:`expsync.secrets.resolve.resolve_all`.

A :class:`Failure` reason is printed verbatim. It says *which* reference failed and *why* in
words, never any part of a value - not even a value's length or first characters - and never
a store's raw error text (a store error message can quote request data).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import field
from pathlib import Path
from typing import TYPE_CHECKING, Final, Protocol, TypeAlias

from expsync.model import Secret, SecretRef
from expsync.records import dataclass

if TYPE_CHECKING:
    from expsync.diagnostics import SourceRange
    from expsync.model import DesiredState

#: Codes a resolver may fail with (spec §4 ``E4xx``).
NOT_FOUND: Final = "E402"
ACCESS_DENIED: Final = "E403"
FIELD_MISSING: Final = "E404"
EMPTY: Final = "E405"
UNAVAILABLE: Final = "E406"
#: a ``file:`` path the policy never reads (system directory, outside the working directory,
#: not a regular file): see :mod:`expsync.secrets.policy`
REFUSED_FILE: Final = "E410"


def _ignore(_value: str) -> None:
    return None


@dataclass(frozen=True, slots=True)
class ResolveContext:
    """Everything a resolver may read from the outside world, passed in explicitly.

    ``environ`` replaces ``os.environ`` so tests (and the CLI) decide what a resolver sees.
    ``register`` is called with every secret-bearing string a resolver handles (resolved
    values, raw JSON documents, credentials it obtained such as a Vault login token) *as soon
    as it has it*, so a redactor can mask it even in output produced before resolution ends.
    """

    environ: Mapping[str, str]
    cwd: Path
    register: Callable[[str], None] = field(default=_ignore)


@dataclass(frozen=True, slots=True)
class Failure:
    """Why one reference could not be resolved. ``reason`` never contains any part of a value."""

    code: str
    reason: str
    hint: str | None = None  # None: the code's default hint from diagnostics.CODES


Outcome: TypeAlias = Secret | Failure


class Resolver(Protocol):
    """Resolves the references of one scheme (``env``, ``file``, ``aws-sm``, ``vault``)."""

    def resolve(self, refs: Sequence[SecretRef], ctx: ResolveContext) -> dict[SecretRef, Outcome]:
        """Return an outcome for every ref in ``refs`` (distinct, all of this scheme). Never raises
        for a per-reference problem; a store that cannot be reached fails every ref with E406."""
        ...


def all_failed(refs: Sequence[SecretRef], failure: Failure) -> dict[SecretRef, Outcome]:
    """The same failure for every ref: the store as a whole is unusable."""
    return {ref: failure for ref in refs}


def text_value(value: str, what: str) -> Outcome:
    """Accept ``value`` as the key unless it is empty or only whitespace (no usable key)."""
    if not value.strip():
        return Failure(EMPTY, f"{what} is empty")
    try:
        value.encode("utf-8")  # e.g. an environment variable holding undecodable bytes
    except UnicodeEncodeError:
        return Failure(EMPTY, f"{what} is not valid UTF-8 text")
    return Secret(value)


def pick_field(ref: SecretRef, document: str, what: str) -> Outcome:
    """Select ``ref.field`` from a JSON-object document (AWS ``#FIELD``); the field must be a string.

    The reasons name the field and the document's *shape* only. ``json`` error messages are not
    used because they quote the offending text.
    """
    assert ref.field is not None
    import json  # only for a reference with a #field

    try:
        parsed = json.loads(document)
    except ValueError:
        return Failure(FIELD_MISSING, f"{what} is not JSON, so it has no field {ref.field!r}")
    if not isinstance(parsed, dict):
        return Failure(FIELD_MISSING, f"{what} is not a JSON object, so it has no field {ref.field!r}")
    return field_value(ref, parsed, what)


def field_value(ref: SecretRef, data: Mapping[str, object], what: str) -> Outcome:
    """The string value of ``ref.field`` in an already-parsed object (JSON secret, Vault data)."""
    assert ref.field is not None
    if ref.field not in data:
        return Failure(FIELD_MISSING, f"{what} has no field {ref.field!r}")
    value = data[ref.field]
    if not isinstance(value, str):
        return Failure(
            FIELD_MISSING,
            f"field {ref.field!r} of {what} is a JSON {_json_type(value)}, not a string",
            hint="store the api key as a JSON string",
        )
    return text_value(value, f"field {ref.field!r} of {what}")


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, list):
        return "array"
    return "object"


@dataclass(frozen=True, slots=True)
class SecretUse:
    """One place a reference is used; only decides where a diagnostic points.

    ``source`` defaults to ``ref.source``; give it when the ref carries none.
    """

    ref: SecretRef
    path: str = ""
    experiment: str = ""
    source: SourceRange | None = None

    @property
    def where(self) -> SourceRange | None:
        return self.source or self.ref.source


def uses_in(desired: DesiredState) -> Iterator[SecretUse]:
    """Every ``api_key`` use in the desired state, with its path and source."""
    for exp in desired.experiments.values():
        for i, variant in enumerate(exp.variants):
            path = f"variants[{i}].api_key"
            yield SecretUse(variant.api_key, path, exp.key, variant.api_key.source or exp.source(path))
