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
from collections.abc import Iterable, Mapping
from typing import Any


def _default(obj: Any) -> Any:
    """json's hook for what it cannot encode itself; dicts, lists, str (and StrEnum) are
    encoded by the C encoder, which is what keeps digests of 5,000 experiments cheap."""
    if isinstance(obj, enum.Enum):
        return obj.value
    if isinstance(obj, uuid.UUID):
        return str(obj)
    if isinstance(obj, dt.datetime):
        return obj.astimezone(dt.timezone.utc).isoformat()
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        out = {"_type": type(obj).__name__}
        for f in dataclasses.fields(obj):
            if f.compare:
                out[f.name] = getattr(obj, f.name)
        return out
    if isinstance(obj, Mapping):
        return {str(k): v for k, v in obj.items()}
    if isinstance(obj, (set, frozenset)):
        return sorted(obj, key=canonical)
    raise TypeError(f"not canonicalisable: {type(obj).__name__}")


def canonical(obj: Any) -> str:
    return json.dumps(obj, default=_default, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def digest(obj: Any) -> str:
    return "sha256:" + hashlib.sha256(canonical(obj).encode()).hexdigest()


def digest_items(items: Iterable[Any]) -> str:
    """Digest of a sequence, one canonical item at a time: the same value for the same items
    without holding the whole state's JSON in memory at once."""
    h = hashlib.sha256()
    for item in items:
        h.update(canonical(item).encode())
        h.update(b"\n")
    return "sha256:" + h.hexdigest()
