"""Equality of JSON values as the gateway sees them: the one rule every comparison of
upstreams, metadata, ownership records and drift fields in the planner uses."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final, cast

import orjson


def json_equal(a: object, b: object) -> bool:
    """Whether two JSON values are the same document for the gateway: the one equality every
    comparison of upstreams, metadata, ownership records and drift fields uses.

    Python's ``==`` says ``True == 1 == 1.0``; JavaScript (the gateway) says ``true !== 1``. So
    a boolean equals only a boolean, ``null`` only ``null``, objects and arrays are compared
    member by member (arrays in order, objects by key, key order ignored) - also inside tuples
    and dicts that hold such values (the drift fields of a row). Numbers are equal when their
    values are: the gateway reads jsonb with ``JSON.parse`` and sends ``JSON.stringify``, so
    ``1`` and ``1.0`` reach the upstream alike (gateway-profiles.md §8), and jsonb itself prints
    an exponent float as an integer (``1e+16`` is read back as ``10000000000000000``): an
    int/float distinction would report a change apply could never make stick.

    Two values whose canonical texts (orjson, keys sorted) are equal are equal: the common case
    of a plan without changes costs two encodings in C. Otherwise ``a == b`` decides, and when
    it holds a walk (:func:`_same_kinds`) looks for a boolean where the other side has a number.
    The text shortcut is exact: ``1``, ``1.0`` and ``true`` print differently, distinct floats
    print distinctly; only ``null`` is also what NaN and infinity print, so a text holding it
    is also compared with ``==``."""
    try:
        text = _dumps(a, option=_CANONICAL)
        if text == _dumps(b, option=_CANONICAL) and (b"null" not in text or a == b):
            return True
    except orjson.JSONEncodeError:
        pass  # an integer beyond 64 bits, nesting beyond orjson's limit, a datetime: the walk decides
    return a == b and _same_kinds(a, b)


_dumps: Final = orjson.dumps
#: sorted keys (jsonb reorders them); UUID keys (the drift fields by variant id) as text; a
#: dataclass or datetime is not encoded (it raises, and ``==`` decides)
_CANONICAL: Final = (orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATACLASS
                     | orjson.OPT_PASSTHROUGH_DATETIME)


def _same_kinds(a: object, b: object) -> bool:
    """``a == b`` holds: whether no boolean sits where the other value has a number."""
    if isinstance(a, Mapping):
        other = cast(Mapping[object, object], b)  # (a == b: a mapping with the same keys)
        return all(_same_kinds(v, other[k]) for k, v in a.items())
    if isinstance(a, (list, tuple)):
        return all(map(_same_kinds, a, cast(Sequence[object], b)))
    return (a.__class__ is bool) is (b.__class__ is bool)


__all__ = ["json_equal"]
