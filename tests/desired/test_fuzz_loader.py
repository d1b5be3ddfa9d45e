"""Property: the loader and validator turn any hostile YAML into diagnostics with a position,
never an exception (big integers, non-finite numbers, tags, odd keys, invisible characters,
aliases, deep nesting, many documents). Bounded: a few hundred examples, in-process."""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from expsync.diagnostics import CODES
from expsync.desired.loader import LoadOptions, load_file
from tests.desired.test_refusals import GOOD

_SCALARS = st.sampled_from([
    "1", "-0", "1.5", "1.0e+400", "-1.0e+400", "1.5e-400", "1e400", "9" * 4301, "-" + "9" * 5000, "1" * 4300,
    "0x1F", "0o17", "1_000", "1:30", ".inf", ".nan", "yes", "off", "~", "null", "true", "''", '""',
    '"\\u202e"', '"\\x85"', '"\\e]52;c;eA==\\a"', '"\\0"', '"a\\nb"', "!!str 1", "!!int '1'", "!!float 1",
    "!!binary aGk=", "!python/object:os.system x", "!x y", "&a 1", "*a", "2024-01-01", "[]", "{}",
    "{~: 1}", "{1.5: 2}", "{true: x}", "{? [a]: 1}", "{<<: {a: 1}}", "[[[[[[[[[[1]]]]]]]]]]",
    "{a: 1, a: 2}", '"' + "x" * 10_000 + '"', "|\n  multi\n  line\n",
])
_FIELDS = ["name: Foo", "    weight: 1", "status: active", "      internal_id: foo-rc1",
           "public_model_id: partner/preview-foo", "key: foo", "    api_key: env:FOO_KEY", "- label: rc1"]


def _check(tmp: Path, text: str) -> None:
    f = tmp / "fuzz.yaml"
    f.write_bytes(text.encode("utf-8", "surrogatepass"))
    experiments, diags = load_file(f, LoadOptions())  # must not raise
    for d in diags:
        assert d.code in CODES
        assert d.source is not None and d.source.file and d.source.line >= 1, d
    assert experiments or diags


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow])
@given(edits=st.lists(st.tuples(st.sampled_from(_FIELDS), _SCALARS, st.booleans()), min_size=1, max_size=4),
       docs=st.integers(1, 3))
def test_hostile_values_in_any_field(tmp_path: Path, edits: list[tuple[str, str, bool]], docs: int) -> None:
    text = GOOD
    for field, value, as_extra in edits:
        if as_extra:
            text = text.replace("      internal_id: foo-rc1\n", f"      internal_id: foo-rc1\n      extra_body: {{k: {value}}}\n", 1)
        else:
            name = field.split(":")[0]
            text = text.replace(field, f"{name}: {value}", 1)
    _check(tmp_path, "---\n".join([text] * docs))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.sampled_from([*":-[]{}!&*|>'\"#%@`,?~\n \t\\", "a", "1", "e", "+", ".", "\u202e", "\x85",
                                 "\ufeff", "---\n", "!!", "9" * 4400, "1.0e+400"]), max_size=80).map("".join))
def test_random_yaml_text(tmp_path: Path, text: str) -> None:
    _check(tmp_path, text)
