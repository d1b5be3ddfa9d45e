"""Canonical JSON and SHA-256 digests that bind a plan to its inputs (spec §5 item 7).

Canonical = sorted keys, no whitespace, UTF-8, UUIDs/enums as their string value, datetimes as
RFC 3339 in UTC, dataclasses as a mapping of their compared fields plus ``"_type"`` (the class
name), sets as sorted arrays. Equal inputs give equal digests in every process.

Encoding is done by orjson in one pass over the whole value. Python runs once per dataclass
instance and datetime (:func:`_plain`, with the field list of each class computed once), never
per dict, list, string or UUID: the JSON payloads inside (upstreams, last-applied documents)
are handed to the encoder as they are. Anything the encoder does not know (a dataclass or a
set nested inside a plain dict, a non-dict mapping) goes through :func:`_default`, which gives
the same encoding as the fast path. A value holding an integer beyond 64 bits, which orjson
refuses, is encoded by the standard library's json instead.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import hashlib
import json
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

import orjson

_UTC: Final = dt.timezone.utc
_OPTIONS: Final = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATACLASS \
    | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_SUBCLASS
#: values the encoder writes itself, left as they are by _plain (str/int subclasses such as
#: StrEnum go through _default with OPT_PASSTHROUGH_SUBCLASS, which gives their value)
_NATIVE: Final = frozenset({str, int, float, bool, type(None), dict, uuid.UUID})
#: dataclass type -> (class name, compared field names)
_FIELDS: dict[type, tuple[str, tuple[str, ...]]] = {}


def _fields_of(cls: type) -> tuple[str, tuple[str, ...]]:
    spec = (cls.__name__, tuple(f.name for f in dataclasses.fields(cls) if f.compare))
    _FIELDS[cls] = spec
    return spec


def _plain(obj: Any) -> Any:
    """``obj`` with dataclasses, tuples, enums and datetimes turned into what the encoder
    writes canonically; plain dicts and scalars are returned as they are."""
    t = type(obj)
    if t in _NATIVE:
        return obj
    spec = _FIELDS.get(t)
    if spec is not None:
        out: dict[str, Any] = {"_type": spec[0]}
        for f in spec[1]:
            v = getattr(obj, f)
            out[f] = v if type(v) in _NATIVE else _plain(v)
        return out
    if t is tuple or t is list:
        return [v if type(v) in _NATIVE else _plain(v) for v in obj]
    if t is dt.datetime:
        return (obj if obj.tzinfo is _UTC else obj.astimezone(_UTC)).isoformat()
    if isinstance(obj, enum.Enum):
        return _plain(obj.value)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        _fields_of(t)
        return _plain(obj)
    if isinstance(obj, dt.datetime):  # a subclass
        return obj.astimezone(_UTC).isoformat()
    return _default(obj)


def _default(obj: Any) -> Any:
    """The encoder's hook for what it does not write itself (rare: see the module docstring)."""
    if isinstance(obj, (enum.Enum, dt.datetime)) or dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return _plain(obj)
    if isinstance(obj, uuid.UUID):  # only the json fallback asks
        return str(obj)
    if isinstance(obj, str):  # str subclass that is not an enum
        return str(obj)
    if isinstance(obj, int) and not isinstance(obj, bool):
        return int(obj)
    if isinstance(obj, Mapping):
        return {str(k): v for k, v in obj.items()}
    if isinstance(obj, (set, frozenset)):
        return sorted((_plain(v) for v in obj), key=canonical)
    if isinstance(obj, (tuple, list)):
        return list(obj)
    raise TypeError(f"not canonicalisable: {type(obj).__name__}")


def _encode(obj: Any) -> bytes:
    plain = _plain(obj)
    try:
        return orjson.dumps(plain, default=_default, option=_OPTIONS)
    except orjson.JSONEncodeError:
        # integers beyond 64 bits (valid YAML and jsonb): the standard library encodes them
        # exactly; a value that needs this always takes this path, so digests stay stable
        return json.dumps(plain, default=_default, sort_keys=True, separators=(",", ":"),
                          ensure_ascii=False).encode()


def canonical(obj: Any) -> str:
    return _encode(obj).decode()


def digest(obj: Any) -> str:
    return "sha256:" + hashlib.sha256(_encode(obj)).hexdigest()


def encode(obj: Any) -> bytes:
    """The canonical encoding of ``obj`` (what :func:`canonical` decodes, what digests hash)."""
    return _encode(obj)


def digest_items(items: Iterable[Any]) -> str:
    """Digest of a sequence, one canonical item at a time: the same value for the same items
    without holding the whole state's JSON in memory at once."""
    return digest_encoded(_encode(item) for item in items)


def digest_encoded(encodings: Iterable[bytes]) -> str:
    """:func:`digest_items` of items already encoded (:func:`encode`), in order."""
    h = hashlib.sha256()
    update: Callable[[bytes], None] = h.update
    for chunk in encodings:
        update(chunk)
        update(b"\n")
    return "sha256:" + h.hexdigest()
