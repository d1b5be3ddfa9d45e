"""Pydantic v2 models of one experiment document (spec §3) per gateway profile.

The common part of the format is :class:`Experiment` and :class:`Variant`; what differs per
gateway era (the upstream fields, the experiment's ``metadata``, reserved public-id prefixes)
comes from a :class:`~expsync.profiles.GatewayProfile` through :func:`experiment_model`, which
builds (once per profile) the full model from the profile's field specs. Validation, the
committed JSON Schemas (``schemas/experiment-<profile>.schema.json``) and the README reference
all come from these models.

They are strict: unknown keys are refused at every depth, ``null`` is never a value of an
optional field, and no type coercion happens (``"1"`` is not a weight). Field-specific refusals
raise :class:`PydanticCustomError` whose *type* is an ``expsync_E...`` code, which
:mod:`expsync.desired.loader` turns into a diagnostic.
"""

from __future__ import annotations

import functools
import re
import uuid
from typing import Annotated, Any, Final, Literal

from pydantic import AfterValidator, Strict, BaseModel, BeforeValidator, ConfigDict, Field, create_model, field_validator
from pydantic.json_schema import GenerateJsonSchema, WithJsonSchema
from pydantic_core import PydanticCustomError
from urllib.parse import parse_qsl

from expsync import weburl
from expsync.credentials import is_credential_name
from expsync.escape import INVISIBLE, INVISIBLE_CLASS, visible
from expsync.model import JsonValue, Status
from expsync.profiles import NEWEST, PROFILES, TEXT_LENGTHS, FieldSpec, GatewayProfile, Kind
from expsync.secrets.refs import RefSyntaxError, parse_ref

KEY_PATTERN: Final = r"^[a-z0-9][a-z0-9._-]{0,99}$"
PUBLIC_ID_PATTERN: Final = r"^[^A-Z\s]+$"
SECRET_REF_PATTERN: Final = r"^(env|file|aws-sm|vault):.+$"
#: ids the admin API can address (zod 4 ``z.string().uuid()``): versions 1-8, RFC variant, any case
ADMIN_UUID_PATTERN: Final = (
    r"^([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[1-8][0-9a-fA-F]{3}-[89abAB][0-9a-fA-F]{3}-[0-9a-fA-F]{12}"
    r"|00000000-0000-0000-0000-000000000000|[fF]{8}-[fF]{4}-[fF]{4}-[fF]{4}-[fF]{12})$"
)
_ADMIN_UUID_RE = re.compile(ADMIN_UUID_PATTERN)
_KEY_RE = re.compile(KEY_PATTERN)
#: C0/C1 controls and invisible format characters (zero-width space, bidi overrides, BOM ...):
#: they make ids that look alike but never match, and can rewrite a terminal showing a plan
#: One definition, shared with output escaping (:data:`expsync.escape.INVISIBLE`).
_INVISIBLE = INVISIBLE
#: free text (description, extra_body string values) may also hold line breaks and tabs
_INVISIBLE_IN_PROSE = re.compile(f"(?![\t\n])[{INVISIBLE_CLASS}]")
#: the one key the gateway's JSON parsing drops silently (zod records/objects): refused everywhere
PROTO_KEY: Final = "__proto__"

# defer_build: the base documents and the nested object models are only parts of the one model
# :func:`experiment_model` builds per profile (its validator includes them); building a
# validator for each of them at import would cost start-up for nothing
_STRICT = ConfigDict(extra="forbid", strict=True, frozen=True, defer_build=True)


def _custom(code: str, message: str) -> PydanticCustomError:
    return PydanticCustomError(f"expsync_{code}", message)


def _check_visible(v: str, *, prose: bool = False, subpath: str = "", key: bool = False) -> None:
    """Refuse (E120) the characters ids refuse; ``prose`` also allows line breaks and tabs.
    ``subpath`` (inside a JSON value) is added to the diagnostic's path by the loader, which
    points at the mapping key itself when ``key``."""
    if v.isascii() and v.isprintable():  # the common case, without a regex
        return
    m = (_INVISIBLE_IN_PROSE if prose else _INVISIBLE).search(v)
    if m:
        raise PydanticCustomError(
            "expsync_E120", f"invisible or control character {visible(m.group())} at offset {m.start()}",
            {"subpath": subpath, "key": key},
        )


def _visible_json(value: Any, subpath: str = "", *, prose: bool = True) -> Any:
    """Every key and string inside a JSON value (extra_body): keys single-line, strings prose
    (``prose=False``: single-line strings too, e.g. header values)."""
    if isinstance(value, str):
        _check_visible(value, prose=prose, subpath=subpath)
    elif isinstance(value, dict):
        for k, v in value.items():
            child = f"{subpath}.{k}"
            _check_visible(k, subpath=child, key=True)
            _visible_json(v, child, prose=prose)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _visible_json(v, f"{subpath}[{i}]", prose=prose)
    return value


#: an HTTP field name (RFC 9110 ``token``): anything else makes every request of the variant
#: fail in the gateway's fetch ("invalid header name"), although its admin API stores it
_HEADER_NAME: Final = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


def _header_record(value: dict[str, str]) -> dict[str, str]:
    _visible_json(value, prose=False)
    for k in value:
        if not _HEADER_NAME.fullmatch(k):
            raise PydanticCustomError(
                "expsync_E131", f"{k!r} is not an HTTP header name (letters, digits and !#$%&'*+-.^_`|~ only): the "
                "gateway would fail every request of this variant", {"subpath": f".{k}", "key": True})
    return value


def _text(v: str) -> str:
    _check_visible(v)
    return v


def _prose(v: str | None) -> str | None:
    if v is not None:
        _check_visible(v, prose=True)
    return v


def _record_keys(v: dict[str, Any]) -> dict[str, Any]:
    for k in v:
        _check_visible(k, subpath=f".{k}", key=True)
    return v


#: one-line text shown to reviewers (names, labels, model ids sent upstream)
Text = Annotated[str, AfterValidator(_text)]


def utf16_len(s: str) -> int:
    """Length as the admin API (JavaScript) counts it: UTF-16 code units."""
    return len(s.encode("utf-16-le")) // 2


def _units(what: str) -> AfterValidator:
    lo, hi = TEXT_LENGTHS[what]

    def check(v: str | None) -> str | None:
        if v is None:
            return v
        n = utf16_len(v)
        if not lo <= n <= hi:
            raise _custom("E143", f"{what} must be {lo}-{hi} UTF-16 code units long (as the admin API counts), got {n}")
        return v

    return AfterValidator(check)


def _lengths(what: str) -> dict[str, JsonValue]:
    """The JSON Schema's length hint (it counts code points: an editor hint, looser than the
    UTF-16 check for characters outside the BMP)."""
    lo, hi = TEXT_LENGTHS[what]
    return {"minLength": lo, "maxLength": hi} if lo else {"maxLength": hi}


def _admin_uuid(v: object) -> object:
    # the admin UI addresses rows by id through `z.string().uuid()`: a pin it cannot match
    # would make a row only expsync can edit
    if isinstance(v, str) and not _ADMIN_UUID_RE.fullmatch(v):
        raise _custom("E144", "id must be a UUID the admin API accepts: 8-4-4-4-12 hex digits, version 1-8, "
                              "variant 8/9/a/b (or the nil/max UUID)")
    return v


PinnedId = Annotated[
    Annotated[uuid.UUID, Strict(False)] | None,
    BeforeValidator(_admin_uuid),
    Field(description="pinned database id (adoption)", json_schema_extra={"pattern": ADMIN_UUID_PATTERN}),
]


# --------------------------------------------------------------------------------------
# base_url: the gateway's check (JS trim, then WHATWG `new URL()`), then expsync's stricter one
# --------------------------------------------------------------------------------------


def gateway_parses_url(v: str) -> bool:
    """Whether the gateway's zod ``url()`` check accepts ``v`` (sheet §2 "URL check")."""
    return weburl.gateway_parses(v)


def check_base_url(v: str) -> str:
    if not gateway_parses_url(v):
        raise _custom("E114", "base_url is not a URL the gateway can parse (WHATWG URL, as Node's `new URL()`): "
                              "the gateway would answer 503 for the whole experiment")
    # expsync's stricter rules (intended): http(s) only, written out with //, nothing padded or
    # invisible, no credentials or secret-looking query parameters (the upstream is not secret)
    if not v.startswith(("http://", "https://")) or "\\" in v or any(c.isspace() for c in v) or _INVISIBLE.search(v):
        raise _custom("E114", "base_url must be an absolute http:// or https:// URL without spaces or backslashes")
    url = weburl.parse(v)
    assert url is not None  # checked above
    if url.username or url.password:
        raise _custom("E114", "base_url must not carry credentials (user:password@); use api_key")
    names = {k.lower() for q in (url.search, url.hash) for k, _ in parse_qsl(q.lstrip("?#"), keep_blank_values=True)}
    if any(is_credential_name(n) for n in names):
        raise _custom("E114", "base_url must not carry a key or token in its query string; use api_key")
    return v


# --------------------------------------------------------------------------------------
# Profile field specs -> pydantic types
# --------------------------------------------------------------------------------------


def _model_name(parts: tuple[str, ...]) -> str:
    return "".join(p.replace("_", " ").title().replace(" ", "") for p in parts)


def _annotation(spec: FieldSpec, parts: tuple[str, ...]) -> Any:
    kind = spec.kind
    if kind is Kind.TEXT:
        return Annotated[Text, Field(min_length=1, description=spec.description or None)]
    if kind is Kind.URL:
        return Annotated[str, AfterValidator(check_base_url),
                         Field(description=spec.description or None, json_schema_extra={"pattern": "^https?://"})]
    if kind is Kind.BOOL:
        return Annotated[bool, Field(description=spec.description or None)]
    if kind is Kind.NUMBER:
        return Annotated[int | float, Field(allow_inf_nan=False, description=spec.description or None)]
    if kind is Kind.ENUM:
        return Annotated[Literal[spec.values], Field(description=spec.description or None)]
    if kind is Kind.TEXT_LIST:
        return Annotated[list[Text], Field(description=spec.description or None)]
    # records: the JSON Schema refuses __proto__ keys too (the loader reports them as E142)
    extra: dict[str, Any] = {"propertyNames": {"not": {"const": PROTO_KEY}}}
    if kind is Kind.JSON_RECORD:
        return Annotated[dict[str, Any], AfterValidator(_visible_json),
                         Field(description=spec.description or None, json_schema_extra=extra)]
    if kind is Kind.TEXT_RECORD:
        return Annotated[dict[str, str], AfterValidator(_header_record),
                         Field(description=spec.description or None, json_schema_extra=extra)]
    if kind is Kind.RECORD:
        assert spec.item is not None
        return Annotated[dict[str, _annotation(spec.item, parts)],  # type: ignore[misc]
                         AfterValidator(_record_keys),
                         Field(description=spec.description or None, json_schema_extra=extra)]
    assert kind is Kind.OBJECT
    return _object_model(spec.fields, parts, spec.description)


def _object_model(fields: Any, parts: tuple[str, ...], description: str = "") -> type[BaseModel]:
    defs: dict[str, Any] = {}
    for name, spec in fields.items():
        ann = _annotation(spec, (*parts, name))
        # optional fields are absent rather than null: a None default is never validated, so
        # an explicit null is refused as the wrong type instead of reaching the database
        defs[name] = (ann, ...) if spec.required else (ann, Field(default=None))
    model: type[BaseModel] = create_model(
        _model_name(parts), __config__=ConfigDict(**_STRICT, title=_model_name(parts)), __doc__=description or None, **defs
    )
    return model


# --------------------------------------------------------------------------------------
# The document
# --------------------------------------------------------------------------------------


class Variant(BaseModel):
    model_config = _STRICT
    key: Annotated[str | None, Field(pattern=KEY_PATTERN, description="stable identity; defaults to the label")] = None
    id: PinnedId = None
    label: Annotated[str, Field(json_schema_extra=_lengths("label")), _units("label")]
    weight: Annotated[int, Field(ge=1, le=2_147_483_647, description="positive integer (fits the integer column); share = weight / sum(weights)")]
    #: replaced per gateway profile by :func:`experiment_model`
    upstream: Any
    api_key: Annotated[
        str, Field(description="secret reference, never a literal key", json_schema_extra={"pattern": SECRET_REF_PATTERN})
    ]

    @field_validator("api_key")
    @classmethod
    def _secret_ref(cls, v: str) -> str:
        _check_visible(v)  # names only the character, never the value
        try:
            parse_ref(v)
        except RefSyntaxError as e:
            raise _custom("E401", str(e)) from None
        return v

    @field_validator("label")
    @classmethod
    def _visible_label(cls, v: str) -> str:
        _check_visible(v)
        if not v.strip():
            raise _custom("E113", "label must be visible text (not only spaces)")
        return v

    @property
    def effective_key(self) -> str:
        if self.key is not None:
            return self.key
        return self.label

    def upstream_json(self) -> dict[str, Any]:
        up = self.upstream
        assert isinstance(up, BaseModel)
        return up.model_dump(mode="json", exclude_unset=True)


class Experiment(BaseModel):
    """One experiment document (the fields every gateway profile shares)."""

    model_config = ConfigDict(**_STRICT, title="expsync experiment")
    key: Annotated[str, Field(pattern=KEY_PATTERN, description="identity in git; unique across all files")]
    id: PinnedId = None
    public_model_id: Annotated[
        str, Field(description="public model id clients send", json_schema_extra={"pattern": PUBLIC_ID_PATTERN})
    ]
    # lengths in UTF-16 code units, as the admin API counts (the JSON Schema's maxLength counts
    # code points: an editor hint, looser for characters outside the BMP)
    name: Annotated[Text, Field(json_schema_extra=_lengths("name")), _units("name")]
    description: Annotated[str | None, Field(json_schema_extra=_lengths("description")), _units("description"),
                           AfterValidator(_prose)] = None
    # the values come from the one Status enum; inline in the JSON Schema (no $ref) for editors
    status: Annotated[
        Status,
        Field(strict=False),
        WithJsonSchema({"enum": [s.value for s in Status], "title": "Status", "type": "string"}),
    ] = Status.DRAFT
    archived: bool = False
    #: replaced per gateway profile by :func:`experiment_model`
    variants: list[Variant] = Field(default_factory=list)

    @field_validator("public_model_id")
    @classmethod
    def _routable(cls, v: str) -> str:
        # the gateway lowercases the requested id before lookup: an upper-case id never routes
        if not v or v != v.lower() or any(c.isspace() for c in v) or _INVISIBLE.search(v):
            raise _custom("E204", "public_model_id must be non-empty lower case without whitespace or control characters")
        return v

    def metadata_json(self) -> dict[str, Any] | None:
        """The experiment's ``metadata`` as JSON, or None when absent (or the profile has none)."""
        md = getattr(self, "metadata", None)
        return md.model_dump(mode="json", exclude_unset=True) if isinstance(md, BaseModel) else None


def _ecma_escape(text: str) -> str:
    """Escape for an ECMAScript regex in a JSON Schema (Python's re.escape adds escapes like
    ``\\-`` that ECMAScript's unicode mode refuses)."""
    return re.sub(r"([.^$*+?()\[\]{}|\\])", r"\\\1", text)


def _reserved_prefixes(prefixes: tuple[str, ...]) -> AfterValidator:
    def check(v: str) -> str:
        hit = next((p for p in prefixes if v.startswith(p)), None)
        if hit is not None:
            raise _custom("E220", f"public_model_id must not start with a reserved prefix ({', '.join(prefixes)}): "
                                  f"{hit!r} belongs to the gateway's own models")
        return v

    return AfterValidator(check)


@functools.cache
def experiment_model(profile_name: str = NEWEST) -> type[Experiment]:
    """The document model for one gateway profile (built from its field specs, once)."""
    profile: GatewayProfile = PROFILES[profile_name]
    upstream = _object_model(profile.upstream, ("upstream",),
                             "model_experiment_variant_version.upstream. Never holds a secret (no api_key).")
    variant = create_model(
        "Variant", __base__=Variant, upstream=(upstream, ...))
    fields: dict[str, Any] = {"variants": (list[variant], Field(default_factory=list))}
    if profile.reserved_public_id_prefixes:
        prefixes = profile.reserved_public_id_prefixes
        fields["public_model_id"] = (
            Annotated[str, _reserved_prefixes(prefixes), Field(
                description="public model id clients send; must not start with " + ", ".join(prefixes),
                json_schema_extra={"pattern": PUBLIC_ID_PATTERN,
                                   "not": {"pattern": "^(" + "|".join(map(_ecma_escape, prefixes)) + ")"}})],
            ...,
        )
    if profile.metadata is not None:
        fields["metadata"] = (_object_model(profile.metadata, ("metadata",),
                                            "model_experiment.metadata (CustomLlmMetadata): read by the model catalog, "
                                            "never by routing"), Field(default=None))
    model: type[Experiment] = create_model(
        "Experiment", __base__=Experiment, __config__=None, **fields)
    model.model_config["title"] = f"expsync experiment (gateway profile {profile.name})"
    model.model_config["defer_build"] = False
    model.model_rebuild(force=True)
    return model


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


def schema_file_name(profile_name: str) -> str:
    return f"experiment-{profile_name}.schema.json"


def json_schema(profile_name: str = NEWEST) -> dict[str, Any]:
    schema = experiment_model(profile_name).model_json_schema(
        ref_template="#/definitions/{model}", schema_generator=_Draft07)
    if "$defs" in schema:
        schema["definitions"] = schema.pop("$defs")
    schema["$id"] = f"https://expsync.dev/schemas/{schema_file_name(profile_name)}"
    return dict(sorted(schema.items()))
