"""Pydantic v2 models of one experiment document (spec §3) and the upstream JSON (spec §2.2).

These models are the single source of the YAML format: validation, the committed JSON Schema
(``schemas/experiment.schema.json``) and the README reference all come from them. They are
strict: unknown keys are refused at every depth, and no type coercion happens (``"1"`` is not
a weight). Field-specific refusals raise :class:`PydanticCustomError` whose *type* is an
``expsync_E...`` code, which :mod:`expsync.desired.loader` turns into a diagnostic.
"""

from __future__ import annotations

import re
import uuid
from typing import Annotated, Any, Final, Literal
from urllib.parse import parse_qsl, urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.json_schema import GenerateJsonSchema, WithJsonSchema
from pydantic_core import PydanticCustomError

from expsync.model import Status
from expsync.secrets.refs import RefSyntaxError, parse_ref

KEY_PATTERN: Final = r"^[a-z0-9][a-z0-9._-]{0,99}$"
PUBLIC_ID_PATTERN: Final = r"^[^A-Z\s]+$"
SECRET_REF_PATTERN: Final = r"^(env|file|aws-sm|vault):.+$"
_KEY_RE = re.compile(KEY_PATTERN)
#: C0/C1 controls and invisible format characters (zero-width space, bidi overrides, BOM ...):
#: they make ids that look alike but never match, and can rewrite a terminal showing a plan
_INVISIBLE = re.compile("[\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2060-\u2064\ufeff]")
_SECRET_PARAM = re.compile(r"key|token|secret|password|passwd|signature|^sig$|auth|credential")

_STRICT = ConfigDict(extra="forbid", strict=True, frozen=True)


def _custom(code: str, message: str) -> PydanticCustomError:
    return PydanticCustomError(f"expsync_{code}", message)


class OpencodeSettings(BaseModel):
    model_config = _STRICT
    ai_sdk_provider: Literal["anthropic", "openai", "openai-compatible", "openrouter", "alibaba", "mistral"] = Field(
        default=None  # type: ignore[arg-type]
    )


class OpenclawSettings(BaseModel):
    model_config = _STRICT
    api_adapter: Literal["openai-completions", "openai-responses", "anthropic-messages"] = Field(
        default=None  # type: ignore[arg-type]
    )


class Upstream(BaseModel):
    """``model_experiment_variant_version.upstream``. Never holds a secret (no api_key, no headers)."""

    model_config = _STRICT
    internal_id: Annotated[str, Field(min_length=1, description="model id sent upstream")]
    base_url: Annotated[str, Field(description="http(s) URL of the upstream API", json_schema_extra={"pattern": "^https?://"})]
    # Optional fields are absent rather than null: ``None`` defaults are never validated, so
    # an explicit ``null`` in YAML is refused as the wrong type instead of reaching the DB.
    opencode_settings: OpencodeSettings = Field(default=None)  # type: ignore[assignment]
    openclaw_settings: OpenclawSettings = Field(default=None)  # type: ignore[assignment]
    extra_body: dict[str, Any] = Field(default=None)  # type: ignore[arg-type]
    remove_from_body: list[str] = Field(default=None)  # type: ignore[arg-type]
    add_cache_breakpoints: bool = Field(default=None)  # type: ignore[assignment]
    inject_reasoning_into_content: bool = Field(default=None)  # type: ignore[assignment]

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, v: str) -> str:
        try:
            parts = urlsplit(v)
            host = parts.hostname
        except ValueError:
            raise _custom("E114", "base_url must be an absolute http:// or https:// URL") from None
        try:
            parts.port  # noqa: B018 - raises for a port outside 0-65535
        except ValueError:
            raise _custom("E114", "base_url has an invalid port") from None
        if parts.scheme not in ("http", "https") or not host or any(c.isspace() for c in v) or _INVISIBLE.search(v):
            raise _custom("E114", "base_url must be an absolute http:// or https:// URL")
        # the upstream JSON never holds a secret: no user:password@, no key/token query params
        if parts.username is not None or parts.password is not None:
            raise _custom("E114", "base_url must not carry credentials (user:password@); use api_key")
        names = {k.lower() for q in (parts.query, parts.fragment) for k, _ in parse_qsl(q, keep_blank_values=True)}
        if any(_SECRET_PARAM.search(n) for n in names):
            raise _custom("E114", "base_url must not carry a key or token in its query string; use api_key")
        return v


class Variant(BaseModel):
    model_config = _STRICT
    key: Annotated[str | None, Field(pattern=KEY_PATTERN, description="stable identity; defaults to the label")] = None
    id: Annotated[uuid.UUID | None, Field(strict=False, description="pinned database id (adoption)")] = None
    label: Annotated[str, Field(min_length=1, max_length=64)]
    weight: Annotated[int, Field(ge=1, le=2_147_483_647, description="positive integer (fits the integer column); share = weight / sum(weights)")]
    upstream: Upstream
    api_key: Annotated[
        str, Field(description="secret reference, never a literal key", json_schema_extra={"pattern": SECRET_REF_PATTERN})
    ]

    @field_validator("api_key")
    @classmethod
    def _secret_ref(cls, v: str) -> str:
        try:
            parse_ref(v)
        except RefSyntaxError as e:
            raise _custom("E401", str(e)) from None
        return v

    @field_validator("label")
    @classmethod
    def _visible_label(cls, v: str) -> str:
        if not v.strip() or _INVISIBLE.search(v):
            raise _custom("E113", "label must be visible text (no control characters, not only spaces)")
        return v

    @property
    def effective_key(self) -> str:
        if self.key is not None:
            return self.key
        return self.label


class Experiment(BaseModel):
    """One experiment document."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, title="expsync experiment")
    key: Annotated[str, Field(pattern=KEY_PATTERN, description="identity in git; unique across all files")]
    id: Annotated[uuid.UUID | None, Field(strict=False, description="pinned database id (adoption)")] = None
    public_model_id: Annotated[
        str, Field(description="public model id clients send", json_schema_extra={"pattern": PUBLIC_ID_PATTERN})
    ]
    name: Annotated[str, Field(min_length=1)]
    description: str | None = None
    # the values come from the one Status enum; inline in the JSON Schema (no $ref) for editors
    status: Annotated[
        Status,
        Field(strict=False),
        WithJsonSchema({"enum": [s.value for s in Status], "title": "Status", "type": "string"}),
    ] = Status.DRAFT
    archived: bool = False
    variants: list[Variant] = Field(default_factory=list)

    @field_validator("public_model_id")
    @classmethod
    def _routable(cls, v: str) -> str:
        # the gateway lowercases the requested id before lookup: an upper-case id never routes
        if not v or v != v.lower() or any(c.isspace() for c in v) or _INVISIBLE.search(v):
            raise _custom("E204", "public_model_id must be non-empty lower case without whitespace or control characters")
        return v


class _Draft07(GenerateJsonSchema):
    """Draft-07 flavour for yaml-language-server: ``definitions`` instead of ``$defs``."""

    def generate(self, schema: Any, mode: Any = "validation") -> Any:
        out = super().generate(schema, mode=mode)
        out["$schema"] = "http://json-schema.org/draft-07/schema#"
        _drop_null_defaults(out)
        return out


def _drop_null_defaults(node: Any) -> None:
    if isinstance(node, dict):
        if node.get("default", ...) is None:
            del node["default"]
        for v in node.values():
            _drop_null_defaults(v)
    elif isinstance(node, list):
        for v in node:
            _drop_null_defaults(v)


def json_schema() -> dict[str, Any]:
    schema = Experiment.model_json_schema(ref_template="#/definitions/{model}", schema_generator=_Draft07)
    if "$defs" in schema:
        schema["definitions"] = schema.pop("$defs")
    schema["$id"] = "https://expsync.dev/schemas/experiment.schema.json"
    return dict(sorted(schema.items()))
