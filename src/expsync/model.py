"""Frozen value types shared by the pipeline stages.

``Desired*`` comes from YAML (spec §3), ``Actual*`` from the database (spec §2.1). Neither
holds a secret value: desired api keys are :class:`SecretRef` (a reference), actual keys are
ciphertext JSON. Resolved plaintext lives only in :class:`Secret`, which refuses to print.
"""

from __future__ import annotations

import enum
import hashlib
import uuid
from collections.abc import Mapping
from dataclasses import field as dc_field
from datetime import datetime
from typing import Final, TypeAlias

from expsync.diagnostics import SourceRange
from expsync.records import dataclass

JsonValue: TypeAlias = "None | bool | int | float | str | list[JsonValue] | dict[str, JsonValue]"
JsonObject: TypeAlias = "dict[str, JsonValue]"


#: Namespace for deterministic ids (spec §3): uuid5(NAMESPACE, experiment key) for experiments,
#: uuid5(experiment id, variant key) for variants. Never change it: ids in live databases depend on it.
EXPSYNC_NAMESPACE: Final = uuid.UUID("6f1b7e0c-3c55-5d8a-9a43-2d1f4c7e8a10")


#: RFC 4122 version 5: the version nibble and the variant bits a SHA-1 digest is masked with
_UUID5_CLEAR: Final = ~((0xF000 << 64) | (0xC000 << 48)) & ((1 << 128) - 1)
_UUID5_SET: Final = (5 << 76) | (0x8000 << 48)


def uuid5(namespace: uuid.UUID, name: str) -> uuid.UUID:
    """``uuid.uuid5(namespace, name)``, built from the digest as one int (half the cost of the
    standard library's, which every desired experiment and variant pays)."""
    return _uuid5(namespace.bytes, name)


def _uuid5(namespace: bytes, name: str) -> uuid.UUID:
    digest = hashlib.sha1(namespace + name.encode("utf-8"), usedforsecurity=False).digest()
    return uuid.UUID(int=(int.from_bytes(digest[:16], "big") & _UUID5_CLEAR) | _UUID5_SET)


_NAMESPACE_BYTES: Final = EXPSYNC_NAMESPACE.bytes


def experiment_id_for(key: str) -> uuid.UUID:
    return _uuid5(_NAMESPACE_BYTES, key)


def variant_id_for(experiment_id: uuid.UUID, variant_key: str) -> uuid.UUID:
    return _uuid5(experiment_id.bytes, variant_key)


class Status(enum.StrEnum):
    """Experiment statuses. What each allows (transitions, edits, routing) is in :mod:`expsync.rules`."""

    DRAFT = "draft"  # invisible to routing; everything editable
    ACTIVE = "active"  # traffic is bucketed onto variants by weight
    PAUSED = "paused"  # requests to the public id are refused (4xx), no fall-through
    COMPLETED = "completed"  # terminal; invisible to routing



class Secret:
    """A resolved secret value. ``str()``/``repr()`` never reveal it; use :meth:`reveal`."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('**redacted**')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:  # pragma: no cover - guard against accidental use
        raise TypeError("compare secrets with hmac.compare_digest on reveal()")

    __hash__ = None  # type: ignore[assignment]

    def __reduce__(self) -> str | tuple[object, ...]:
        raise TypeError("Secret values cannot be pickled")


@dataclass(frozen=True, slots=True)
class SecretRef:
    """A parsed ``api_key`` reference (spec §3): ``scheme:locator[#field]``. Never a value."""

    scheme: str  # env | file | aws-sm | vault
    locator: str  # NAME, PATH, SECRET_ID, MOUNT/PATH
    field: str | None = None
    source: SourceRange | None = dc_field(default=None, compare=False)

    def __str__(self) -> str:
        return f"{self.scheme}:{self.locator}" + (f"#{self.field}" if self.field else "")


class KeyChange(enum.StrEnum):
    """Whether a variant's api key differs from its current version's (spec §5 item 3)."""

    UNCHANGED = "unchanged"
    ROTATED = "rotated"
    UNKNOWN = "unknown"  # not compared (--no-secrets, or nothing to decrypt)
    NEW = "new"  # first version of a new variant: nothing to compare with


@dataclass(frozen=True, slots=True)
class DesiredVariant:
    key: str
    label: str
    weight: int
    upstream: JsonObject
    api_key: SecretRef
    id: uuid.UUID | None = None  # pinned id (adoption); else deterministic


@dataclass(frozen=True, slots=True)
class DesiredExperiment:
    key: str
    public_model_id: str
    name: str
    description: str | None
    status: Status
    archived: bool
    variants: tuple[DesiredVariant, ...]
    id: uuid.UUID | None = None  # pinned id (adoption); else deterministic
    #: ``model_experiment.metadata`` (gateway profiles that have it); None: absent, stored as NULL
    metadata: JsonObject | None = None
    #: path within the document ("status", "variants[1].weight") -> where it is in the file
    sources: Mapping[str, SourceRange] = dc_field(default_factory=dict, compare=False, hash=False)
    # derived once (uuid5 is not free at 5,000 experiments): resolved id, variant key -> id
    _rid: uuid.UUID = dc_field(init=False, compare=False, repr=False)
    _vids: Mapping[str, uuid.UUID] = dc_field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        rid = self.id or experiment_id_for(self.key)
        object.__setattr__(self, "_rid", rid)
        ns = rid.bytes  # once for all variants (``variant_id_for`` per variant)
        object.__setattr__(self, "_vids", {v.key: v.id or _uuid5(ns, v.key) for v in self.variants})

    @property
    def resolved_id(self) -> uuid.UUID:
        return self._rid

    def variant_id(self, v: DesiredVariant) -> uuid.UUID:
        vid = self._vids.get(v.key)
        return vid if vid is not None and (v.id is None or v.id == vid) else (v.id or variant_id_for(self._rid, v.key))

    def source(self, path: str) -> SourceRange | None:
        """The closest recorded source for ``path`` (falls back to parents, then the document)."""
        p = path
        while p:
            if p in self.sources:
                return self.sources[p]
            cut = max(p.rfind("."), p.rfind("["))
            p = p[:cut] if cut > 0 else ""
        return self.sources.get("")


@dataclass(frozen=True, slots=True)
class DesiredState:
    """Experiments by key, in file order."""

    experiments: Mapping[str, DesiredExperiment]


@dataclass(frozen=True, slots=True)
class ActualVersion:
    id: uuid.UUID
    variant_id: uuid.UUID
    upstream: JsonObject
    encrypted_api_key: JsonObject
    effective_at: datetime
    created_by: str | None = None
    created_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class ActualVariant:
    id: uuid.UUID
    experiment_id: uuid.UUID
    label: str
    weight: int
    #: latest version with effective_at <= now (by effective_at DESC, id DESC); None if none
    current: ActualVersion | None
    #: latest version overall when it is future-dated (effective_at > now); else None
    pending: ActualVersion | None = None


@dataclass(frozen=True, slots=True)
class ActualExperiment:
    id: uuid.UUID
    public_model_id: str
    name: str
    description: str | None
    status: Status
    is_archived: bool
    created_at: datetime | None = None
    updated_at: datetime | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    created_by_user_id: str | None = None
    #: variants in id order (the gateway's bucketing walk order)
    variants: tuple[ActualVariant, ...] = ()
    #: ``model_experiment.metadata``; None when NULL or when the database has no such column
    metadata: JsonObject | None = None


@dataclass(frozen=True, slots=True)
class ManagedRecord:
    """What expsync last applied for one key (table ``expsync_managed``). No secret material."""

    key: str
    experiment_id: uuid.UUID
    #: canonical JSON of the last applied desired experiment (api keys as references only)
    last_applied: JsonObject
    applied_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class ActualState:
    """What the database holds that matters for one plan (spec §5 item 2).

    ``experiments`` holds every row relevant to the desired state: rows with a desired or
    managed id, and every row that is active/paused on any desired public id (the routing rule
    counts unmanaged rows too).
    """

    experiments: Mapping[uuid.UUID, ActualExperiment]
    managed: Mapping[str, ManagedRecord] = dc_field(default_factory=dict)


#: Redis keys the gateway reads (spec §2.4); a configurable prefix goes in front of both.
MEMBERSHIP_KEY: Final = "ai-gateway.model-experiments:experimented-public-ids"
PER_ID_KEY_PREFIX: Final = "ai-gateway.model-experiments:by-public-id:"


def per_id_key(public_model_id: str, prefix: str = "") -> str:
    return f"{prefix}{PER_ID_KEY_PREFIX}{public_model_id}"


def membership_key(prefix: str = "") -> str:
    return f"{prefix}{MEMBERSHIP_KEY}"
