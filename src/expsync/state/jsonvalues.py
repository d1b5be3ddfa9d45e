"""JSON column values (``jsonb`` on Postgres, JSON text on SQLite) as Python values.

A plan decodes a JSON document per version row (upstream, encrypted key) and per managed
record: orjson does it several times faster than :mod:`json`, and gives the same values for
every document whose numbers have fewer than 19 digits in a row. A longer run of digits
anywhere in the document (an integer beyond 64 bits, which orjson would turn into a float; a
tiny or huge number Postgres prints in full) sends it to :mod:`json` instead, as does anything
orjson refuses (``NaN``, a number beyond a double, nesting deeper than 1,024): :mod:`json`
keeps integers exact and decides what such documents mean, exactly as before orjson was used.
"""

from __future__ import annotations

import json
from typing import Any, Final

import orjson

from expsync.errors import InvalidInput

__all__ = ["MAX_INT_DIGITS", "load_json"]

#: Python's int-string limit, fixed (as the YAML loader does) so the interpreter setting does not matter
MAX_INT_DIGITS: Final = 4300

#: 19 digits: every integer of 18 fits in 64 bits, and orjson and json round shorter floats alike.
#: Found by mapping every digit to "0" and looking for 19 zeros (several times faster than a regex).
_LONG_DIGITS: Final = "0" * 19
_LONG_DIGITS_BYTES: Final = b"0" * 19
_DIGITS_TO_ZERO_TEXT: Final = str.maketrans("123456789", "000000000")
_DIGITS_TO_ZERO_BYTES: Final = bytes.maketrans(b"123456789", b"000000000")


def _bounded_int(text: str) -> int:
    digits = len(text.lstrip("-"))
    if digits > MAX_INT_DIGITS:
        raise InvalidInput(f"the database holds a JSON integer of {digits} digits (at most {MAX_INT_DIGITS}) in "
                           "a jsonb column; expsync cannot compare it: fix that row through the admin UI")
    return int(text)


def load_json(data: bytes | str) -> Any:
    """A JSON column as Python values; a huge integer (another writer's) is a clear error
    (exit 3), not a ``ValueError`` from Python's int-string limit."""
    if isinstance(data, str):
        short = _LONG_DIGITS not in data.translate(_DIGITS_TO_ZERO_TEXT)
    else:
        short = _LONG_DIGITS_BYTES not in data.translate(_DIGITS_TO_ZERO_BYTES)
    if short:
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            pass  # json decides: its own value (NaN, infinity) or its own error
    return json.loads(data, parse_int=_bounded_int)
