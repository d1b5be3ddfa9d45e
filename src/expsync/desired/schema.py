"""The schema of one experiment document (spec §3) per gateway profile, as a pydantic-core schema.

The document is described once, with :mod:`pydantic_core.core_schema` builders (pydantic v2's
validation engine, without pydantic's model classes): the fields every gateway profile shares
(:func:`_experiment_fields`, :func:`_variant_fields`) plus what differs per gateway era (the
upstream fields, the experiment's ``metadata``, reserved public-id prefixes), which comes from a
:class:`~expsync.profiles.GatewayProfile`'s field specs. From that one description come

- :func:`validator`: the :class:`~pydantic_core.SchemaValidator` of a profile, built once and
  only for the profile in use; it returns plain dicts (an optional object field that was not
  written is absent, never ``None``), which :mod:`expsync.desired.loader` turns into
  :class:`~expsync.model.DesiredExperiment` values;
- :func:`json_schema`: the committed JSON Schemas (``schemas/experiment-<profile>.schema.json``)
  and ``expsync schema`` (only they import :mod:`pydantic.json_schema`).

Building a validator from a core schema skips pydantic's model machinery (``pydantic.main``,
``GenerateSchema``), which used to cost more start-up than the rest of ``validate``.

The schema is strict: unknown keys are refused at every depth, ``null`` is never a value of an
optional field of an object, and no type coercion happens (``"1"`` is not a weight).
Field-specific refusals raise :class:`PydanticCustomError` whose *type* is an ``expsync_E...``
code, which :mod:`expsync.desired.loader` turns into a diagnostic.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Mapping
from typing import Any, Final
from urllib.parse import parse_qsl

from pydantic_core import CoreSchema, PydanticCustomError, PydanticKnownError, SchemaValidator
from pydantic_core import core_schema as cs

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
#: C0/C1 controls and invisible format characters (zero-width space, bidi overrides, BOM ...):
#: they make ids that look alike but never match, and can rewrite a terminal showing a plan
#: One definition, shared with output escaping (:data:`expsync.escape.INVISIBLE`).
_INVISIBLE = INVISIBLE
#: free text (description, extra_body string values) may also hold line breaks and tabs
_INVISIBLE_IN_PROSE = re.compile(f"(?![\t\n])[{INVISIBLE_CLASS}]")
#: what ``str.isspace`` calls whitespace (both use the same Unicode table), without a Python loop
_SPACE: Final = re.compile(r"\s")
#: the one key the gateway's JSON parsing drops silently (zod records/objects): refused everywhere
PROTO_KEY: Final = "__proto__"
#: strict everywhere (no coercion), unknown keys refused; the few lax parts say so themselves
_CONFIG: Final = cs.CoreConfig(strict=True, extra_fields_behavior="forbid")


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
#: header names (lower case) the gateway's fetch (undici) throws for on every request, and
#: content-length, which never matches the body the gateway rewrites; ``connection`` passes
#: only with one of :data:`_FETCH_CONNECTION` (what undici accepts)
_FETCH_REFUSED: Final = frozenset({"content-length", "expect", "keep-alive", "transfer-encoding", "upgrade"})
_FETCH_CONNECTION: Final = frozenset({"close", "keep-alive"})


def _header_record(value: dict[str, str]) -> dict[str, str]:
    _visible_json(value, prose=False)
    for k, v in value.items():
        if not _HEADER_NAME.fullmatch(k):
            raise PydanticCustomError(
                "expsync_E131", f"{k!r} is not an HTTP header name (letters, digits and !#$%&'*+-.^_`|~ only): the "
                "gateway would fail every request of this variant", {"subpath": f".{k}", "key": True})
        name = k.lower()
        if name in _FETCH_REFUSED or (name == "connection" and v.strip(" \t").lower() not in _FETCH_CONNECTION):
            raise PydanticCustomError(
                "expsync_E133", f"{k!r}{'' if name in _FETCH_REFUSED else f': {v!r}'} is a header the gateway's "
                "fetch refuses (or, for content-length, cannot match the body it rewrites): every request of this "
                "variant would fail", {"subpath": f".{k}", "key": True})
        # fetch's Headers hold ByteStrings: a character above U+00FF throws for every request
        bad = next((c for c in v if ord(c) > 0xFF), None)
        if bad is not None:
            raise PydanticCustomError(
                "expsync_E132", f"header value holds {bad!r} "
                f"(U+{ord(bad):04X}), above U+00FF: the gateway's fetch cannot send it and would fail every request "
                "of this variant", {"subpath": f".{k}", "key": False})
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


def _non_empty(v: str) -> str:
    # the error pydantic's ``min_length=1`` raises after a validator (kept: diagnostics say it)
    if not v:
        raise PydanticKnownError("too_short", {"field_type": "Value", "min_length": 1, "actual_length": 0})
    return v


def _finite(v: float) -> float:
    if not math.isfinite(v):
        raise PydanticKnownError("finite_number")
    return v


def utf16_len(s: str) -> int:
    """Length as the admin API (JavaScript) counts it: UTF-16 code units."""
    return len(s) if s.isascii() else len(s.encode("utf-16-le")) // 2


def _units(what: str) -> Callable[[str | None], str | None]:
    lo, hi = TEXT_LENGTHS[what]

    def check(v: str | None) -> str | None:
        if v is None:
            return v
        n = utf16_len(v)
        if not lo <= n <= hi:
            raise _custom("E143", f"{what} must be {lo}-{hi} UTF-16 code units long (as the admin API counts), got {n}")
        return v

    return check


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


def _secret_ref(v: str) -> str:
    _check_visible(v)  # names only the character, never the value
    try:
        parse_ref(v)
    except RefSyntaxError as e:
        raise _custom("E401", str(e)) from None
    return v


def _visible_label(v: str) -> str:
    _check_visible(v)
    if not v.strip():
        raise _custom("E113", "label must be visible text (not only spaces)")
    return v


def public_model_id_routable(v: str) -> str:
    """E204: the gateway lowercases the requested id before lookup, so an upper-case id never routes."""
    if not v or v != v.lower() or _SPACE.search(v) or _INVISIBLE.search(v):
        raise _custom("E204", "public_model_id must be non-empty lower case without whitespace or control characters")
    return v


def _ecma_escape(text: str) -> str:
    """Escape for an ECMAScript regex in a JSON Schema (Python's re.escape adds escapes like
    ``\\-`` that ECMAScript's unicode mode refuses)."""
    return re.sub(r"([.^$*+?()\[\]{}|\\])", r"\\\1", text)


def reserved_prefixes(prefixes: tuple[str, ...]) -> Callable[[str], str]:
    """E220: a ``public_model_id`` must not start with a prefix the profile reserves."""

    def check(v: str) -> str:
        hit = next((p for p in prefixes if v.startswith(p)), None)
        if hit is not None:
            raise _custom("E220", f"public_model_id must not start with a reserved prefix ({', '.join(prefixes)}): "
                                  f"{hit!r} belongs to the gateway's own models")
        return v

    return check


# --------------------------------------------------------------------------------------
# base_url: the gateway's check (JS trim, then WHATWG `new URL()`), then expsync's stricter one
# --------------------------------------------------------------------------------------


def gateway_parses_url(v: str) -> bool:
    """Whether the gateway's zod ``url()`` check accepts ``v`` (sheet §2 "URL check")."""
    return weburl.gateway_parses(v)


def check_base_url(v: str) -> str:
    problem = base_url_problem(v)
    if problem is not None:
        raise _custom("E114", problem)
    return v


@functools.lru_cache(maxsize=4096)
def base_url_problem(v: str) -> str | None:
    """Why ``v`` is not a base_url expsync accepts (the E114 message), or None. Memoised: the
    verdict depends on the text alone, and a folder repeats a few upstream URLs in every file."""
    if not gateway_parses_url(v):
        return ("base_url is not a URL the gateway can parse (WHATWG URL, as Node's `new URL()`): "
                "the gateway would answer 503 for the whole experiment")
    # expsync's stricter rules (intended): http(s) only, written out with //, nothing padded or
    # invisible, no credentials or secret-looking query parameters (the upstream is not secret)
    if not v.startswith(("http://", "https://")) or "\\" in v or _SPACE.search(v) or _INVISIBLE.search(v):
        return "base_url must be an absolute http:// or https:// URL without spaces or backslashes"
    url = weburl.parse(v)
    assert url is not None  # checked above
    if url.username or url.password:
        return "base_url must not carry credentials (user:password@); use api_key"
    names = {k.lower() for q in (url.search, url.hash) for k, _ in parse_qsl(q.lstrip("?#"), keep_blank_values=True)}
    if any(is_credential_name(n) for n in names):
        return "base_url must not carry a key or token in its query string; use api_key"
    return None


# --------------------------------------------------------------------------------------
# Core-schema building blocks
# --------------------------------------------------------------------------------------


def _after(*checks: Callable[[Any], Any], schema: CoreSchema, json: dict[str, Any] | None = None) -> CoreSchema:
    """``schema`` followed by ``checks`` in order (the first that raises is the error); ``json``
    is added to the JSON Schema of the result."""
    *first, last = checks
    for check in first:
        schema = cs.no_info_after_validator_function(check, schema)
    return cs.no_info_after_validator_function(last, schema, metadata={"pydantic_js_updates": json} if json else None)


def _field(schema: CoreSchema, *, required: bool = True, default: Any = None, description: str = "",
           extra: Mapping[str, Any] | None = None) -> cs.ModelField:
    """One field; an optional one gets ``default`` when absent (a None default is never
    validated, so an explicit null is still refused where the type is not nullable)."""
    if not required:
        schema = cs.with_default_schema(schema, default=default)
    metadata: dict[str, Any] = {}
    if description:
        metadata["pydantic_js_updates"] = {"description": description}
    if extra:
        metadata["pydantic_js_extra"] = dict(extra)
    return cs.model_field(schema, metadata=metadata)


def _written(value: tuple[dict[str, Any], Any, set[str]]) -> dict[str, Any]:
    """An object's fields as written (absent optional fields stay absent)."""
    fields, _, given = value
    return fields if len(given) == len(fields) else {k: v for k, v in fields.items() if k in given}


def _all_fields(value: tuple[dict[str, Any], Any, set[str]]) -> dict[str, Any]:
    """An object's fields, absent optional ones at their default."""
    return value[0]


def _object(fields: dict[str, cs.ModelField], name: str, *, title: str = "", description: str = "",
            ref: bool = True, result: Callable[[Any], dict[str, Any]] = _written) -> CoreSchema:
    """A strict object; ``name`` is what type errors call it ("... or instance of <name>") and
    its definition name in the JSON Schema (``ref``)."""
    js: dict[str, Any] = {"title": title or name, "additionalProperties": False}
    if description:
        js["description"] = description
    inner = cs.model_fields_schema(fields, model_name=name, extra_behavior="forbid",
                                   metadata={"pydantic_js_updates": js})
    return cs.no_info_after_validator_function(result, inner, ref=name if ref else None)


#: records: the JSON Schema refuses __proto__ keys too (the loader reports them as E142)
_RECORD_KEYS_JSON: Final = {"propertyNames": {"not": {"const": PROTO_KEY}}}


def _model_name(parts: tuple[str, ...]) -> str:
    return "".join(p.replace("_", " ").title().replace(" ", "") for p in parts)


def _value(spec: FieldSpec, parts: tuple[str, ...]) -> tuple[CoreSchema, Mapping[str, Any] | None]:
    """(core schema, JSON Schema extra) of one profile field spec."""
    kind = spec.kind
    if kind is Kind.TEXT:
        return _after(_text, _non_empty, schema=cs.str_schema(), json={"minLength": 1}), None
    if kind is Kind.URL:
        return _after(check_base_url, schema=cs.str_schema()), {"pattern": "^https?://"}
    if kind is Kind.BOOL:
        return cs.bool_schema(), None
    if kind is Kind.NUMBER:
        return _after(_finite, schema=cs.union_schema([cs.int_schema(), cs.float_schema()])), None
    if kind is Kind.ENUM:
        return cs.literal_schema(list(spec.values)), None
    if kind is Kind.TEXT_LIST:
        return cs.list_schema(_after(_text, schema=cs.str_schema())), None
    if kind is Kind.JSON_RECORD:
        return _after(_visible_json, schema=cs.dict_schema(cs.str_schema(), cs.any_schema())), _RECORD_KEYS_JSON
    if kind is Kind.TEXT_RECORD:
        return _after(_header_record, schema=cs.dict_schema(cs.str_schema(), cs.str_schema())), _RECORD_KEYS_JSON
    if kind is Kind.RECORD:
        assert spec.item is not None
        item, _ = _value(spec.item, parts)
        return _after(_record_keys, schema=cs.dict_schema(cs.str_schema(), item)), _RECORD_KEYS_JSON
    assert kind is Kind.OBJECT
    return _spec_object(spec.fields, parts, spec.description), None


def _spec_object(fields: Mapping[str, FieldSpec], parts: tuple[str, ...], description: str = "") -> CoreSchema:
    """A profile's object (upstream, metadata, their nested objects) from its field specs."""
    out: dict[str, cs.ModelField] = {}
    for name, spec in fields.items():
        schema, extra = _value(spec, (*parts, name))
        out[name] = _field(schema, required=spec.required, description=spec.description, extra=extra)
    return _object(out, _model_name(parts), description=description)


# --------------------------------------------------------------------------------------
# The document
# --------------------------------------------------------------------------------------


def _pinned_id() -> cs.ModelField:
    schema = cs.no_info_before_validator_function(_admin_uuid, cs.nullable_schema(cs.uuid_schema(strict=False)))
    return _field(schema, required=False, description="pinned database id (adoption)",
                  extra={"pattern": ADMIN_UUID_PATTERN})


def _variant_fields(profile: GatewayProfile) -> dict[str, cs.ModelField]:
    upstream = _spec_object(profile.upstream, ("upstream",),
                            "model_experiment_variant_version.upstream. Never holds a secret (no api_key).")
    return {
        "key": _field(cs.nullable_schema(cs.str_schema(pattern=KEY_PATTERN)), required=False,
                      description="stable identity; defaults to the label"),
        "id": _pinned_id(),
        "label": _field(_after(_units("label"), _visible_label, schema=cs.str_schema()), extra=_lengths("label")),
        "weight": _field(cs.int_schema(ge=1, le=2_147_483_647),
                         description="positive integer (fits the integer column); share = weight / sum(weights)"),
        "upstream": _field(upstream),
        "api_key": _field(_after(_secret_ref, schema=cs.str_schema()), description="secret reference, never a literal key",
                          extra={"pattern": SECRET_REF_PATTERN}),
    }


def _status_json(_schema: Any, _handler: Any) -> dict[str, Any]:
    # inline (no $ref) for editors; the values come from the one Status enum
    return {"enum": [s.value for s in Status], "title": "Status", "type": "string"}


def _public_model_id(profile: GatewayProfile) -> cs.ModelField:
    prefixes = profile.reserved_public_id_prefixes
    if not prefixes:
        return _field(_after(public_model_id_routable, schema=cs.str_schema()), description="public model id clients send",
                      extra={"pattern": PUBLIC_ID_PATTERN})
    return _field(_after(reserved_prefixes(prefixes), public_model_id_routable, schema=cs.str_schema()),
                  description="public model id clients send; must not start with " + ", ".join(prefixes),
                  extra={"pattern": PUBLIC_ID_PATTERN,
                         "not": {"pattern": "^(" + "|".join(map(_ecma_escape, prefixes)) + ")"}})


def _experiment_fields(profile: GatewayProfile) -> dict[str, cs.ModelField]:
    variant = _object(_variant_fields(profile), "Variant", result=_all_fields)
    # the one Status enum, lax like the uuid pins: YAML gives text, validation gives the enum member
    status = cs.enum_schema(Status, list(Status), sub_type="str", strict=False,
                            metadata={"pydantic_js_annotation_functions": [_status_json]})
    # lengths in UTF-16 code units, as the admin API counts (the JSON Schema's maxLength counts
    # code points: an editor hint, looser for characters outside the BMP)
    fields = {
        "key": _field(cs.str_schema(pattern=KEY_PATTERN), description="identity in git; unique across all files"),
        "id": _pinned_id(),
        "public_model_id": _public_model_id(profile),
        "name": _field(_after(_text, _units("name"), schema=cs.str_schema()), extra=_lengths("name")),
        "description": _field(_after(_units("description"), _prose, schema=cs.nullable_schema(cs.str_schema())),
                              required=False, extra=_lengths("description")),
        "status": _field(status, required=False, default=Status.DRAFT),
        "archived": _field(cs.bool_schema(), required=False, default=False),
        "variants": cs.model_field(cs.with_default_schema(cs.list_schema(variant), default_factory=list)),
    }
    if profile.metadata is not None:
        fields["metadata"] = _field(_spec_object(profile.metadata, ("metadata",),
                                                 "model_experiment.metadata (CustomLlmMetadata): read by the model "
                                                 "catalog, never by routing"), required=False)
    return fields


def core_schema(profile_name: str = NEWEST) -> CoreSchema:
    """The document's core schema for one gateway profile (validation and JSON Schema)."""
    profile = PROFILES[profile_name]
    return _object(_experiment_fields(profile), "Experiment", title=f"expsync experiment (gateway profile {profile.name})",
                   ref=False, result=_all_fields)


@functools.cache
def validator(profile_name: str = NEWEST) -> SchemaValidator:
    """The validator of one profile (built once, on first use). ``validate_python`` returns the
    document's fields as a dict (variants: dicts; upstream and metadata: as written) or raises
    :class:`pydantic_core.ValidationError`."""
    return SchemaValidator(core_schema(profile_name), _CONFIG)


# --------------------------------------------------------------------------------------
# JSON Schema (the `schema` command and the committed files)
# --------------------------------------------------------------------------------------


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
    """Draft-07 JSON Schema of the document (for yaml-language-server: ``definitions``, not ``$defs``)."""
    from pydantic.json_schema import GenerateJsonSchema

    schema = GenerateJsonSchema(ref_template="#/definitions/{model}").generate(core_schema(profile_name))
    schema["$schema"] = "http://json-schema.org/draft-07/schema#"
    _drop_null_defaults(schema)
    if "$defs" in schema:
        schema["definitions"] = schema.pop("$defs")
    schema["$id"] = f"https://expsync.dev/schemas/{schema_file_name(profile_name)}"
    return dict(sorted(schema.items()))
