"""Canonical JSON and SHA-256 digests that bind a plan to its inputs (spec §5 item 7).

Canonical = sorted keys, no whitespace, UUIDs/datetimes/enums as strings, dataclasses as a
mapping with their class name. Equal inputs give equal digests in every process.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import hashlib
import json
import uuid
from collections.abc import Mapping
from typing import Any


def to_jsonable(obj: Any) -> Any:
    if isinstance(obj, enum.Enum):
        return obj.value
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    if isinstance(obj, uuid.UUID):
        return str(obj)
    if isinstance(obj, dt.datetime):
        return obj.astimezone(dt.timezone.utc).isoformat()
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        out = {"_type": type(obj).__name__}
        for f in dataclasses.fields(obj):
            if f.compare:
                out[f.name] = to_jsonable(getattr(obj, f.name))
        return out
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        items = [to_jsonable(v) for v in obj]
        return sorted(items, key=canonical) if isinstance(obj, (set, frozenset)) else items
    raise TypeError(f"not canonicalisable: {type(obj).__name__}")


def canonical(obj: Any) -> str:
    return json.dumps(to_jsonable(obj), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def digest(obj: Any) -> str:
    return "sha256:" + hashlib.sha256(canonical(obj).encode()).hexdigest()
