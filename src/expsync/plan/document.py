"""An op as the plain JSON document a saved plan shows, and the ops digest computed over it.

``Digests.ops`` is the digest of these documents, so a saved plan file's ``operations`` array
alone is enough to recompute it: a file whose operations were edited while its digests were
kept is detected on load (:mod:`expsync.render.saved`), and an edit that also rewrites the
digest no longer matches apply's re-plan. The JSON format (:mod:`expsync.render.json`) writes
exactly these documents; a test keeps the two equal for every op type.

A document is ``{"type": <op class in snake_case>, "action": ..., <every compared field>}``
with UUIDs as strings, enums as their value, a secret reference as its text and nested
dataclasses as plain objects. Fields apply does not need from the file and no renderer shows
(:data:`NOT_SHOWN`: the ownership record's copy of the desired document, which the desired
digest binds already) are left out.
"""

from __future__ import annotations

import dataclasses
import enum
import re
import uuid
from collections.abc import Iterable, Mapping
from typing import Any, Final

from expsync.model import SecretRef
from expsync.plan.digest import digest_encoded, digest_items
from expsync.plan.ops import Op, RecordManaged, action_of

__all__ = ["NOT_SHOWN", "documents_digest", "encoded_documents_digest", "op_document", "ops_digest", "type_name"]

#: op class -> fields that are not part of the document (and so not of the ops digest)
NOT_SHOWN: Final[Mapping[type, frozenset[str]]] = {RecordManaged: frozenset({"last_applied"})}


def type_name(op_type: type) -> str:
    """``InsertVersion`` -> ``insert_version`` (the JSON format's ``type``)."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", op_type.__name__).lower()


#: JSON scalars, returned as they are (exact types: an enum that is also a str is not one)
_SCALARS: Final = frozenset({str, int, float, bool, type(None)})
#: op class -> (its type name, the compared fields its document shows)
_SHAPES: dict[type, tuple[str, tuple[str, ...]]] = {}


def _shape(op_type: type) -> tuple[str, tuple[str, ...]]:
    skip = NOT_SHOWN.get(op_type, frozenset())
    shape = _SHAPES[op_type] = (type_name(op_type),
                                tuple(f.name for f in dataclasses.fields(op_type) if f.compare and f.name not in skip))
    return shape


def _plain(value: Any) -> Any:
    t = type(value)
    if t in _SCALARS:
        return value
    if t is dict:  # a JSON object (upstreams, their diffs): keys are already text
        return {k if type(k) is str else str(k): v if type(v) in _SCALARS else _plain(v) for k, v in value.items()}
    if isinstance(value, SecretRef):
        return str(value)
    if isinstance(value, enum.Enum):
        return _plain(value.value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value) if f.compare}
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def op_document(op: Op) -> dict[str, Any]:
    name, fields = _SHAPES.get(type(op)) or _shape(type(op))
    doc: dict[str, Any] = {"type": name, "action": action_of(op).value}
    for f in fields:
        doc[f] = _plain(getattr(op, f))
    return doc


def ops_digest(ops: Iterable[Op]) -> str:
    """The plan's ``digests.ops``: equal to :func:`documents_digest` of the saved documents."""
    return digest_items(op_document(op) for op in ops)


def documents_digest(documents: Iterable[Mapping[str, Any]]) -> str:
    """The ops digest recomputed from operation documents as a saved plan holds them."""
    return digest_items(documents)


def encoded_documents_digest(encodings: Iterable[bytes]) -> str:
    """:func:`documents_digest` of documents already encoded (:func:`expsync.plan.digest.encode`,
    in order), for a caller that compares the encodings too."""
    return digest_encoded(encodings)
