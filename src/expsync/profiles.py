"""Gateway profiles: what one version of the gateway accepts, as data.

A profile names a gateway era (``2026-05``, ``2026-06``; sheet: shared/spec/gateway-profiles.md)
and says, for that era, which upstream fields exist with which types and enums, whether an
experiment carries a ``metadata`` object (and its shape), which public-id prefixes are reserved,
and how strictly the gateway parses. Stages consult a :class:`GatewayProfile` value; none of them
compares profile names.

The field specs are a tiny type language (:class:`Kind`) that :mod:`expsync.desired.schema`
turns into a pydantic-core schema (validation) and JSON Schemas. Nothing here is nullable: the
gateway refuses ``null`` for every optional field, so an optional field is either absent or of
its type.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import field
from types import MappingProxyType
from typing import Final

from expsync.records import dataclass

__all__ = [
    "FieldSpec",
    "GatewayProfile",
    "Kind",
    "NEWEST",
    "PROFILES",
    "ProfileChoice",
    "get_profile",
]


class Kind(enum.StrEnum):
    TEXT = "text"  # string, >= 1 UTF-16 code unit
    URL = "url"  # string the gateway's `new URL()` parses (plus expsync's stricter rules)
    BOOL = "bool"
    NUMBER = "number"  # any JSON number (1.5 and -3 pass, as in the gateway)
    ENUM = "enum"  # one of `values`
    TEXT_LIST = "text_list"  # list of strings ("" allowed)
    JSON_RECORD = "json_record"  # string -> any JSON value
    TEXT_RECORD = "text_record"  # string -> string
    OBJECT = "object"  # strict object with `fields`
    RECORD = "record"  # string -> `item`


def _frozen(d: dict[str, FieldSpec]) -> Mapping[str, FieldSpec]:
    return MappingProxyType(d)


@dataclass(frozen=True, slots=True)
class FieldSpec:
    kind: Kind
    required: bool = False
    values: tuple[str, ...] = ()  # ENUM
    fields: Mapping[str, FieldSpec] = field(default_factory=lambda: _frozen({}))  # OBJECT
    item: FieldSpec | None = None  # RECORD
    description: str = ""


def _enum(*values: str, description: str = "") -> FieldSpec:
    return FieldSpec(Kind.ENUM, values=values, description=description)


def _obj(description: str = "", **fields: FieldSpec) -> FieldSpec:
    return FieldSpec(Kind.OBJECT, fields=_frozen(fields), description=description)


#: The admin API's text lengths (sheet §3), the same in every profile: field -> (min, max) in
#: UTF-16 code units, as zod counts them.
TEXT_LENGTHS: Final[Mapping[str, tuple[int, int]]] = MappingProxyType({
    "name": (1, 200),
    "description": (0, 2000),
    "label": (1, 64),
})


# Valid at every gateway commit of both eras (sheet §2).
_COMMON_UPSTREAM: Final = {
    "internal_id": FieldSpec(Kind.TEXT, required=True, description="model id sent upstream"),
    "base_url": FieldSpec(Kind.URL, required=True, description="http(s) URL of the upstream API"),
    "extra_body": FieldSpec(Kind.JSON_RECORD, description="merged (shallowly) into the request body"),
    "remove_from_body": FieldSpec(Kind.TEXT_LIST, description="top-level body keys removed before the merge"),
    "add_cache_breakpoints": FieldSpec(Kind.BOOL),
    "inject_reasoning_into_content": FieldSpec(Kind.BOOL),
}

_PROVIDERS_2026_05: Final = ("anthropic", "openai", "openai-compatible", "openrouter", "alibaba")

UPSTREAM_2026_05: Final = _frozen({
    "internal_id": _COMMON_UPSTREAM["internal_id"],
    "base_url": _COMMON_UPSTREAM["base_url"],
    "opencode_settings": _obj(ai_sdk_provider=_enum(*_PROVIDERS_2026_05)),
    "openclaw_settings": _obj(api_adapter=_enum("openai-completions", "openai-responses", "anthropic-messages")),
    **{k: v for k, v in _COMMON_UPSTREAM.items() if k not in ("internal_id", "base_url")},
})

UPSTREAM_2026_06: Final = _frozen({
    **_COMMON_UPSTREAM,
    "extra_headers": FieldSpec(Kind.TEXT_RECORD, description="headers added to the upstream request"),
    "remove_cache_breakpoints": FieldSpec(Kind.BOOL),
})

#: ``CustomLlmMetadata`` (sheet §1), the type of ``model_experiment.metadata`` in 2026-06.
METADATA_2026_06: Final = _frozen({
    "context_length": FieldSpec(Kind.NUMBER, required=True, description="shown by the model catalog"),
    "max_completion_tokens": FieldSpec(Kind.NUMBER, required=True, description="shown by the model catalog"),
    "supports_image_input": FieldSpec(Kind.BOOL),
    "opencode_settings": _obj(
        ai_sdk_provider=_enum(*_PROVIDERS_2026_05, "mistral"),
        family=_enum("claude", "gpt", "gemini", "llama", "mistral"),
        prompt=_enum("codex", "gemini", "beast", "anthropic", "trinity", "anthropic_without_todo", "ling", "gpt55"),
        variants=FieldSpec(
            Kind.RECORD,
            item=_obj(
                verbosity=_enum("low", "medium", "high", "xhigh", "max"),
                reasoning=_obj(
                    enabled=FieldSpec(Kind.BOOL),
                    effort=_enum("none", "minimal", "low", "medium", "high", "xhigh"),
                ),
            ),
        ),
    ),
})


@dataclass(frozen=True, slots=True)
class GatewayProfile:
    """One gateway era's data contract. Every stage reads it; none branches on ``name``."""

    name: str
    #: admin API / routing commits the profile was taken from
    gateway_commits: str
    #: upstream jsonb fields (top level strict in expsync: unknown keys are refused)
    upstream: Mapping[str, FieldSpec]
    #: upstream fields this era keeps elsewhere -> the hint shown when a YAML still has them
    moved_upstream_fields: Mapping[str, str]
    #: shape of ``model_experiment.metadata``; ``None``: the column does not exist in this era
    metadata: Mapping[str, FieldSpec] | None
    #: ``public_model_id`` may not start with these (case-sensitive raw prefix)
    reserved_public_id_prefixes: tuple[str, ...]
    #: routing refuses (503) an upstream with unknown keys; False: routing drops them
    routing_strict: bool

    @property
    def has_metadata(self) -> bool:
        return self.metadata is not None

    def as_routed(self, upstream: Mapping[str, object]) -> dict[str, object] | None:
        """``upstream`` as this era's routing sees it, or None when that is ``upstream`` itself.

        A non-strict era's routing drops keys it does not know (2026-06 ignores a stored
        ``opencode_settings``), so they are no difference worth a new version or drift; a
        strict era's routing refuses them, so they stay and count."""
        if self.routing_strict or all(k in self.upstream for k in upstream):
            return None
        return {k: v for k, v in upstream.items() if k in self.upstream}

    def upstream_fields_only_in(self, other: GatewayProfile) -> tuple[str, ...]:
        """Upstream fields this profile has and ``other`` lacks (for "needs profile X" hints)."""
        return tuple(k for k in self.upstream if k not in other.upstream)


_MOVE_HINT: Final = (
    "gateway profile 2026-06 has no {field} in upstreams (the admin API rejects it, routing ignores it, "
    "a key rotation drops it): remove it from every variant's upstream{extra}"
)

PROFILES: Final[Mapping[str, GatewayProfile]] = MappingProxyType({
    "2026-05": GatewayProfile(
        name="2026-05",
        gateway_commits="admin 8987e211c, routing 3d67d315a",
        upstream=UPSTREAM_2026_05,
        moved_upstream_fields=MappingProxyType({}),
        metadata=None,
        reserved_public_id_prefixes=(),
        routing_strict=True,
    ),
    "2026-06": GatewayProfile(
        name="2026-06",
        gateway_commits="admin and routing b18f315bc",
        upstream=UPSTREAM_2026_06,
        moved_upstream_fields=MappingProxyType({
            "opencode_settings": _MOVE_HINT.format(
                field="opencode_settings",
                extra=" and put it once in the experiment's metadata.opencode_settings "
                "(metadata also needs context_length and max_completion_tokens)",
            ),
            "openclaw_settings": _MOVE_HINT.format(field="openclaw_settings", extra=""),
        }),
        metadata=METADATA_2026_06,
        reserved_public_id_prefixes=("kilo/", "kilocode/", "kilo-internal/"),
        routing_strict=False,
    ),
})

#: what offline commands use when nothing chooses a profile
NEWEST: Final = "2026-06"


class ProfileChoice(enum.StrEnum):
    """How the profile of a run was chosen (said on stderr when it was not explicit)."""

    FLAG = "--gateway-profile"
    ENV = "EXPSYNC_GATEWAY_PROFILE"
    CONFIG = "configuration file"
    DETECTED = "detected from the database"
    DEFAULT = "default (newest)"

    @property
    def explicit(self) -> bool:
        return self in (ProfileChoice.FLAG, ProfileChoice.ENV, ProfileChoice.CONFIG)


def get_profile(name: str) -> GatewayProfile:
    """The profile called ``name``; :class:`KeyError` naming the known ones otherwise."""
    try:
        return PROFILES[name]
    except KeyError:
        raise KeyError(f"unknown gateway profile {name!r}: use one of {', '.join(PROFILES)}") from None
