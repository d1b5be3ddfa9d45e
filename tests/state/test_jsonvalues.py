"""JSON columns are decoded by orjson when it gives exactly what :mod:`json` gives, and by
:mod:`json` otherwise (integers beyond 64 bits, long numbers, NaN): equal values either way,
counted by which decoder ran."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from expsync.errors import InvalidInput
from expsync.state import jsonvalues
from expsync.state.jsonvalues import load_json

UPSTREAM = ('{"base_url": "https://api.partner.example/v1", "internal_id": "m-1", "extra_body": {"temperature":'
            ' 0.7, "top_p": 1, "seed": 123456789012345678, "n": -0.0, "stop": ["\\n", "\\u00e9\\ud83d\\ude00"],'
            ' "nested": {"a": [1, 2.5e-7, true, false, null]}}}')
KEY = '{"iv": "AQEBAQEBAQEBAQEB", "data": "BYqkw/XMmCPg5u8=", "authTag": "c7u4OyVc28JaLeeSWVzpWA=="}'
LONG = [
    '{"seed": 1180591620717411303424}',  # 2**70: orjson would make it a float
    '{"seed": -18446744073709551616}',
    '{"seed": 9223372036854775808}',  # 19 digits
    '{"x": 0.' + "0" * 400 + '15}',  # how Postgres prints 1.5e-401
    '{"x": 1' + "0" * 400 + '}',  # ... and 1e400
    '{"x": 1' + "0" * 400 + '.0}',  # a float beyond a double: infinity, as json reads it
    '{"id": "12345678901234567890"}',  # a long run of digits in a string: still the same value
]
REFUSED_BY_ORJSON = ['{"x": NaN}', '{"x": Infinity}', '{"x": 1e400}', "[" * 2000 + "]" * 2000]


class _CountingJson:
    """The json module, counting its loads calls."""

    def __init__(self) -> None:
        self.calls = 0

    def loads(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        return json.loads(*args, **kwargs)


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> _CountingJson:
    spy = _CountingJson()
    monkeypatch.setattr(jsonvalues, "json", spy)
    return spy


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a):
        return math.isnan(b)
    return type(a) is type(b) and a == b and (not isinstance(a, float) or math.copysign(1, a) == math.copysign(1, b))


def _deep_same(a: Any, b: Any) -> bool:
    if isinstance(a, dict):
        return isinstance(b, dict) and list(a) == list(b) and all(_deep_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(_deep_same(x, y) for x, y in zip(a, b, strict=True))
    return _same(a, b)


@pytest.mark.parametrize("text", [UPSTREAM, KEY, "null", "[]", '{"a": {"a": 1}, "a": 2}', '"\\u0000"'])
@pytest.mark.parametrize("kind", [bytes, str])  # psycopg hands bytes, SQLAlchemy's SQLite JSON hands text
def test_ordinary_documents_are_decoded_by_orjson_to_the_same_values(text: str, kind: type, counted: _CountingJson) -> None:
    data = text.encode() if kind is bytes else text
    assert _deep_same(load_json(data), json.loads(text))
    assert counted.calls == 0


@pytest.mark.parametrize("text", LONG + REFUSED_BY_ORJSON)
def test_long_numbers_and_what_orjson_refuses_go_to_json(text: str, counted: _CountingJson) -> None:
    try:
        expected: Any = json.loads(text)
    except RecursionError as e:  # nesting json cannot decode either: the same error as before
        expected = e
    if isinstance(expected, RecursionError):
        with pytest.raises(RecursionError):
            load_json(text.encode())
    else:
        assert _deep_same(load_json(text.encode()), expected)
    assert counted.calls == 1


def test_integers_beyond_64_bits_stay_exact() -> None:
    assert load_json(b'{"seed": 1180591620717411303424}')["seed"] == 2**70


def test_an_integer_beyond_the_int_string_limit_is_invalid_input() -> None:
    with pytest.raises(InvalidInput, match="JSON integer of 5001 digits"):
        load_json(b'{"seed": 1' + b"0" * 5000 + b"}")
