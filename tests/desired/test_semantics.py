"""Offline cross-document rules (E2xx), each with a real file and its position."""

from __future__ import annotations

from pathlib import Path

from tests.desired.test_refusals import GOOD, only, validate_json, write


def test_duplicate_variant_key_via_explicit_key(tmp_path: Path) -> None:
    text = GOOD.replace("  - label: rc2\n", "  - label: rc2\n    key: rc1\n")
    _, out = validate_json(write(tmp_path, text))
    d = only(out["diagnostics"], "E202")
    assert (d["line"], d["col"], d["path"]) == (13, 10, "variants[1].key")


def test_duplicate_variant_label(tmp_path: Path) -> None:
    text = GOOD.replace("  - label: rc2\n", "  - label: rc1\n    key: second\n")
    _, out = validate_json(write(tmp_path, text))
    d = only(out["diagnostics"], "E203")
    assert (d["line"], d["col"], d["path"]) == (12, 12, "variants[1].label")
    assert not [x for x in out["diagnostics"] if x["code"] == "E202"]


def test_active_with_one_variant_is_allowed_with_a_warning(tmp_path: Path) -> None:
    one = GOOD[: GOOD.index("  - label: rc2")]
    code, out = validate_json(write(tmp_path, one))
    d = only(out["diagnostics"], "W301")
    assert code == 0 and (d["line"], d["col"]) == (6, 3) and d["severity"] == "warning"
    assert "'rc1'" in d["message"] and not [x for x in out["diagnostics"] if x["code"] == "E206"]


def test_active_needs_at_least_one_variant(tmp_path: Path) -> None:
    none = GOOD[: GOOD.index("variants:")] + "variants: []\n"
    code, out = validate_json(write(tmp_path, none))
    d = only(out["diagnostics"], "E206")
    assert code != 0 and d["line"] == 5


def test_weight_sum_above_two_to_the_32_is_refused(tmp_path: Path) -> None:
    third = GOOD[GOOD.index("  - label: rc2"):].replace("rc2", "rc3")
    text = (GOOD + third).replace("weight: 1", "weight: 2000000000")
    code, out = validate_json(write(tmp_path, text))
    d = only(out["diagnostics"], "E312")
    assert code != 0 and "6000000000" in d["message"] and d["path"] == "variants"


def test_weight_sum_of_exactly_two_to_the_32_is_fine(tmp_path: Path) -> None:
    # 2 x 2^31 is out of range per weight (E209); 2 x (2^31 - 1) + 2 = 2^32 exactly
    third = GOOD[GOOD.index("  - label: rc2"):].replace("rc2", "rc3")
    text = (GOOD + third).replace("weight: 1", "weight: 2147483647", 2)
    text = text[: text.rindex("weight: 1")] + "weight: 2" + text[text.rindex("weight: 1") + 9:]
    code, out = validate_json(write(tmp_path, text))
    assert code == 0, out


def test_draft_with_one_variant_is_fine(tmp_path: Path) -> None:
    one = GOOD[: GOOD.index("  - label: rc2")].replace("status: active", "status: draft")
    code, _ = validate_json(write(tmp_path, one))
    assert code == 0


def test_two_routing_experiments_on_one_public_id(tmp_path: Path) -> None:
    write(tmp_path, GOOD, "a.yaml")
    b = write(tmp_path, GOOD.replace("key: foo", "key: foo-2").replace("status: active", "status: paused"), "b.yaml")
    _, out = validate_json(tmp_path)
    d = only(out["diagnostics"], "E207")
    assert (d["file"], d["line"], d["col"]) == (str(b), 4, 9)
    assert "foo" in d["message"]


def test_completed_and_active_on_one_public_id_is_fine(tmp_path: Path) -> None:
    write(tmp_path, GOOD, "a.yaml")
    write(tmp_path, GOOD.replace("key: foo", "key: foo-old").replace("status: active", "status: completed"), "b.yaml")
    code, out = validate_json(tmp_path)
    assert code == 0, out


def test_duplicate_id_pins(tmp_path: Path) -> None:
    pin = "id: 0b7a9c52-6f0e-4c1e-9c7b-3f0d6f7c1a11\n"
    write(tmp_path, pin + GOOD, "a.yaml")
    b = write(tmp_path, pin + GOOD.replace("key: foo", "key: other").replace("status: active", "status: draft"), "b.yaml")
    _, out = validate_json(tmp_path)
    d = only(out["diagnostics"], "E208")
    assert (d["file"], d["line"], d["col"]) == (str(b), 1, 5)


def test_bad_uuid_pin(tmp_path: Path) -> None:
    _, out = validate_json(write(tmp_path, "id: not-a-uuid\n" + GOOD))
    d = only(out["diagnostics"], "E144")
    assert (d["line"], d["col"], d["path"]) == (1, 5, "id")


def test_several_documents_in_one_file(tmp_path: Path) -> None:
    text = GOOD + "---\n" + GOOD.replace("key: foo", "key: bar").replace("preview-foo", "preview-bar")
    code, out = validate_json(write(tmp_path, text))
    assert code == 0 and out["experiments"] == 2


def test_secret_reference_forms(tmp_path: Path) -> None:
    for ref, ok in [
        ("env:FOO_KEY", True),
        ("file:/run/secrets/foo", True),
        ("aws-sm:partners/foo#rc2_key", True),
        ("aws-sm:partners/foo", True),
        ("vault:secret/partners/foo#api_key", True),
        ("vault:secret/partners/foo", False),  # FIELD is required for vault
        ("\"env:\"", False),
        ("env:1BAD", False),
        ("gcp:foo", False),
        ("Bearer abcdef", False),
    ]:
        code, out = validate_json(write(tmp_path, GOOD.replace("env:FOO_KEY", ref, 1)))
        assert (code == 0) is ok, (ref, out)
        if not ok:
            assert only(out["diagnostics"], "E401")["line"] == 11
