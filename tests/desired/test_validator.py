"""The document validator (``desired/schema.py``): what it hands to the desired dataclasses, and
the memoised base_url verdict (counted in calls, never timed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from expsync.desired import schema
from expsync.desired.loader import LoadOptions, load_desired
from tests.desired.test_refusals import GOOD

BAD_URL = "https://api.partner.example/v1?token=abc"


def _folder(tmp_path: Path, n: int, bad: int) -> Path:
    for i in range(n):
        text = GOOD.replace("key: foo", f"key: foo{i}").replace("preview-foo", f"preview-foo{i}")
        if i < bad:
            text = text.replace("https://api.partner.example/v1", BAD_URL)
        (tmp_path / f"foo{i}.yaml").write_text(text)
    return tmp_path


def test_base_url_is_checked_once_per_text_and_reported_at_every_use(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[str] = []
    real = schema.gateway_parses_url

    def counting(v: str) -> bool:
        seen.append(v)
        return real(v)

    monkeypatch.setattr(schema, "gateway_parses_url", counting)
    schema.base_url_problem.cache_clear()
    try:
        state, diags = load_desired([str(_folder(tmp_path, 6, bad=2))])
    finally:
        schema.base_url_problem.cache_clear()
    assert sorted(seen) == sorted(["https://api.partner.example/v1", BAD_URL])
    e114 = [d for d in diags if d.code == "E114"]
    assert len(e114) == 2 * 2  # both variants of both files, each at its own line
    assert len({(d.source.file, d.source.line) for d in e114}) == 4
    assert "token" in e114[0].message and BAD_URL not in e114[0].message
    assert sorted(state.experiments) == [f"foo{i}" for i in range(2, 6)]


@pytest.mark.parametrize("profile", ["2026-05", "2026-06"])
def test_optional_fields_not_written_stay_absent(tmp_path: Path, profile: str) -> None:
    state, diags = load_desired([str(_folder(tmp_path, 1, bad=0))], LoadOptions(profile=profile))
    assert [d for d in diags if d.severity.value == "error"] == []
    exp = state.experiments["foo0"]
    assert exp.metadata is None and exp.description is None and exp.id is None
    assert [v.upstream for v in exp.variants] == [
        {"internal_id": "foo-rc1", "base_url": "https://api.partner.example/v1"},
        {"internal_id": "foo-rc2", "base_url": "https://api.partner.example/v1"},
    ]
    assert [v.key for v in exp.variants] == ["rc1", "rc2"]  # no key: the label
