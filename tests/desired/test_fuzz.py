"""Property: whatever bytes are fed to validate, it ends in exit 0 or 3, never a crash."""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.cli_helpers import run_cli
from tests.desired.test_refusals import GOOD

_fragments = st.sampled_from(
    [": ", "- ", "\n", "  ", "&a ", "*a", "<<: ", "!!python/object ", "{", "}", "[", "]", "'", '"', "#", "---\n",
     "key", "weight", "variants", "upstream", "null", "~", "1", "-1", "1.5", "true", "\t", "\x00", "\xff", "é", "%YAML 1.1\n"]
)


def _run(tmp: Path, data: bytes) -> None:
    f = tmp / "fuzz.yaml"
    f.write_bytes(data)
    r = run_cli(["validate", "--format", "json", str(f)])
    assert r.code in (0, 3), r.all
    assert "Traceback" not in r.all


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=400))
def test_random_bytes(tmp_path: Path, data: bytes) -> None:
    _run(tmp_path, data)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pos=st.integers(0, len(GOOD)), cut=st.integers(0, 20), insert=st.lists(_fragments, max_size=5))
def test_mutated_yaml(tmp_path: Path, pos: int, cut: int, insert: list[str]) -> None:
    text = GOOD[:pos] + "".join(insert) + GOOD[pos + cut :]
    _run(tmp_path, text.encode("utf-8", "surrogatepass"))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    value=st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
        lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=8), c, max_size=3),
        max_leaves=10,
    ),
    field=st.sampled_from(["key", "name", "status", "variants", "public_model_id", "archived", "id", "description",
                           "extra_body", "weight", "base_url"]),
)
def test_random_values_in_fields(tmp_path: Path, value: object, field: str) -> None:
    import yaml

    doc = yaml.safe_load(GOOD)
    if field in ("extra_body", "base_url"):
        doc["variants"][0]["upstream"][field] = value
    elif field == "weight":
        doc["variants"][1]["weight"] = value
    else:
        doc[field] = value
    _run(tmp_path, yaml.safe_dump(doc, allow_unicode=True).encode())
