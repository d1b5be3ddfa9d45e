"""Every refusal of the strict loader and the schema, each from a real file on disk, asserting
the code, the line and the column (issue 2 acceptance)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.cli_helpers import run_cli

GOOD = """\
key: foo
public_model_id: partner/preview-foo
name: Foo
status: active
variants:
  - label: rc1
    weight: 1
    upstream:
      internal_id: foo-rc1
      base_url: https://api.partner.example/v1
    api_key: env:FOO_KEY
  - label: rc2
    weight: 1
    upstream:
      internal_id: foo-rc2
      base_url: https://api.partner.example/v1
    api_key: env:FOO_KEY
"""


def validate_json(*paths: Path, extra: tuple[str, ...] = ()) -> tuple[int, dict]:
    r = run_cli(["validate", "--format", "json", *extra, *map(str, paths)])
    return r.code, json.loads(r.out)


def only(diags: list[dict], code: str) -> dict:
    found = [d for d in diags if d["code"] == code]
    assert found, f"no {code} in {diags}"
    return found[0]


def write(tmp_path: Path, text: str | bytes, name: str = "exp.yaml") -> Path:
    p = tmp_path / name
    if isinstance(text, bytes):
        p.write_bytes(text)
    else:
        p.write_text(text)
    return p


def test_good_file_is_valid(tmp_path: Path) -> None:
    code, out = validate_json(write(tmp_path, GOOD))
    assert code == 0 and out["valid"] and out["experiments"] == 1 and out["diagnostics"] == []


@pytest.mark.parametrize(
    ("old", "new", "code", "line", "col", "path"),
    [
        # duplicate mapping key: names the line of the first one
        ("name: Foo\n", "name: Foo\nname: Bar\n", "E102", 4, 1, "name"),
        # unknown field deep inside upstream
        ("      internal_id: foo-rc1\n", "      internal_id: foo-rc1\n      extra_hedaers: {x: y}\n", "E110", 10, 7, "variants[0].upstream.extra_hedaers"),
        # wrong type
        ("    weight: 1\n", "    weight: \"1\"\n", "E112", 7, 13, "variants[0].weight"),
        # zero weight
        ("    weight: 1\n", "    weight: 0\n", "E209", 7, 13, "variants[0].weight"),
        # literal api key
        ("    api_key: env:FOO_KEY\n  - label", "    api_key: sk-live-0123456789abcdef\n  - label", "E401", 11, 14, "variants[0].api_key"),
        # bad URL
        ("      base_url: https://api.partner.example/v1\n    api_key: env:FOO_KEY\n  - label",
         "      base_url: ftp://api.partner.example/v1\n    api_key: env:FOO_KEY\n  - label", "E114", 10, 17, "variants[0].upstream.base_url"),
        # upper-case public id can never route
        ("partner/preview-foo", "partner/Preview-Foo", "E204", 2, 18, "public_model_id"),
        # missing required field (reported at the parent mapping)
        ("name: Foo\n", "", "E111", 1, 1, "name"),
        # unknown status
        ("status: active", "status: running", "E113", 4, 9, "status"),
        # key pattern
        ("key: foo", "key: Foo_Bar", "E115", 1, 6, "key"),
        # merge key
        ("name: Foo\n", "name: Foo\nextra: {<<: {a: 1}}\n", "E104", 4, 9, "extra"),
        # non-standard tag
        ("name: Foo", "name: !!python/object:os.system Foo", "E105", 3, 7, "name"),
        # explicit null where an object is required
        ("      internal_id: foo-rc1\n", "      internal_id: foo-rc1\n      extra_body: null\n", "E112", 10, 19, "variants[0].upstream.extra_body"),
        # archived + active
        ("status: active", "status: active\narchived: true", "E205", 5, 11, "archived"),
    ],
)
def test_refusal(tmp_path: Path, old: str, new: str, code: str, line: int, col: int, path: str) -> None:
    assert old in GOOD
    f = write(tmp_path, GOOD.replace(old, new, 1))
    rc, out = validate_json(f)
    assert rc == 3 and not out["valid"]
    d = only(out["diagnostics"], code)
    assert (d["file"], d["line"], d["col"], d["path"]) == (str(f), line, col, path), d
    assert d["hint"]


def test_literal_key_is_never_echoed(tmp_path: Path) -> None:
    canary = "sk-live-CANARY0123456789"
    f = write(tmp_path, GOOD.replace("env:FOO_KEY", canary, 1))
    r = run_cli(["validate", str(f)])
    assert r.code == 3 and canary not in r.all and "E401" in r.err
    r = run_cli(["validate", "--format", "json", str(f)])
    assert canary not in r.all


def test_duplicate_key_names_both_lines(tmp_path: Path) -> None:
    f = write(tmp_path, GOOD.replace("name: Foo\n", "name: Foo\nname: Bar\n"))
    _, out = validate_json(f)
    d = only(out["diagnostics"], "E102")
    assert "line 3" in d["message"] and d["line"] == 4


def test_alias_is_refused(tmp_path: Path) -> None:
    f = write(tmp_path, GOOD.replace("name: Foo", "name: &n Foo\ndescription: *n"))
    _, out = validate_json(f)
    d = only(out["diagnostics"], "E103")
    assert (d["line"], d["col"]) == (4, 14)


def test_alias_bomb_is_refused_quickly(tmp_path: Path) -> None:
    # "billion laughs": ~600 bytes that expand to 10^9 nodes if aliases were followed
    levels = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, 10):
        refs = ",".join(f"*a{i-1}" for _ in range(10))
        levels.append(f"a{i}: &a{i} [{refs}]")
    bomb = "\n".join(levels) + "\n"
    assert len(bomb) < 1000
    f = write(tmp_path, bomb)
    t0 = time.process_time()
    _, out = validate_json(f)
    assert time.process_time() - t0 < 1.0  # CPU time of a refusal, not a benchmark
    d = only(out["diagnostics"], "E103")
    assert (d["line"], d["col"]) == (2, 10)


def test_cross_file_duplicate_key(tmp_path: Path) -> None:
    a = write(tmp_path, GOOD, "a.yaml")
    b = write(tmp_path, GOOD.replace("status: active", "status: draft"), "b.yaml")
    _, out = validate_json(tmp_path)
    d = only(out["diagnostics"], "E201")
    assert (d["file"], d["line"], d["col"]) == (str(b), 1, 6)
    assert f"{a}:1:6" in d["message"]


def test_empty_file(tmp_path: Path) -> None:
    f = write(tmp_path, "")
    _, out = validate_json(f)
    d = only(out["diagnostics"], "E108")
    assert (d["line"], d["col"]) == (1, 1)


def test_empty_document_between_documents(tmp_path: Path) -> None:
    f = write(tmp_path, GOOD + "---\n---\n" + GOOD.replace("key: foo", "key: foo2").replace("active", "draft"))
    _, out = validate_json(f)
    d = only(out["diagnostics"], "E108")
    assert d["line"] == 19


def test_comment_only_file_is_empty(tmp_path: Path) -> None:
    _, out = validate_json(write(tmp_path, "# nothing here\n"))
    assert only(out["diagnostics"], "E108")


def test_binary_file(tmp_path: Path) -> None:
    f = write(tmp_path, b"key: foo\nname: \x00\x01\x02")
    _, out = validate_json(f)
    d = only(out["diagnostics"], "E107")
    assert (d["line"], d["col"]) == (2, 7)


def test_invalid_utf8(tmp_path: Path) -> None:
    f = write(tmp_path, GOOD.encode().replace(b"name: Foo", b"name: F\xe9o"))
    _, out = validate_json(f)
    d = only(out["diagnostics"], "E107")
    assert (d["line"], d["col"]) == (3, 8)


def test_file_over_size_limit(tmp_path: Path) -> None:
    f = write(tmp_path, GOOD + "# " + "x" * 200 + "\n")
    _, out = validate_json(f, extra=("--max-file-size", "200"))
    d = only(out["diagnostics"], "E106")
    assert (d["line"], d["col"]) == (1, 1)


def test_syntax_error_position(tmp_path: Path) -> None:
    f = write(tmp_path, "key: foo\nname: [unclosed\nstatus: draft\n")
    _, out = validate_json(f)
    d = only(out["diagnostics"], "E101")
    assert d["line"] == 3


def test_document_must_be_a_mapping(tmp_path: Path) -> None:
    _, out = validate_json(write(tmp_path, "- a\n- b\n"))
    d = only(out["diagnostics"], "E109")
    assert (d["line"], d["col"]) == (1, 1)


def test_missing_path_is_an_error(tmp_path: Path) -> None:
    rc, out = validate_json(tmp_path / "nope")
    assert rc == 3 and only(out["diagnostics"], "E100")


def test_text_output_has_file_line_col_and_no_traceback(tmp_path: Path) -> None:
    f = write(tmp_path, GOOD.replace("weight: 1", "weight: -1", 1))
    r = run_cli(["validate", str(f)])
    assert r.code == 3
    assert f"{f}:7:13: variants[0].weight:" in r.err and "[E209]" in r.err
    assert "Traceback" not in r.all


def test_all_problems_reported_in_one_run_sorted(tmp_path: Path) -> None:
    a = write(tmp_path, GOOD.replace("weight: 1", "weight: 0", 1), "a.yaml")
    b = write(tmp_path, GOOD.replace("key: foo", "key: bar").replace("partner/preview-foo", "UPPER"), "b.yaml")
    _, out = validate_json(tmp_path)
    got = [(d["file"], d["code"]) for d in out["diagnostics"]]
    assert got == [(str(a), "E209"), (str(b), "E204")]


def test_github_annotations(tmp_path: Path) -> None:
    f = write(tmp_path, GOOD.replace("weight: 1", "weight: 0", 1))
    r = run_cli(["validate", str(f)], env={"GITHUB_ACTIONS": "true"})
    assert f"::error file={f},line=7,col=13,title=E209::" in r.err


def test_weight_must_fit_the_integer_column(tmp_path: Path) -> None:
    _, out = validate_json(write(tmp_path, GOOD.replace("weight: 1", "weight: 9999999999", 1)))
    d = only(out["diagnostics"], "E209")
    assert (d["line"], d["col"]) == (7, 13)


def test_nul_characters_are_refused(tmp_path: Path) -> None:
    _, out = validate_json(write(tmp_path, GOOD.replace("name: Foo", 'name: "a\\0b"')))
    d = only(out["diagnostics"], "E113")
    assert (d["line"], d["col"], d["path"]) == (3, 7, "name")


@pytest.mark.parametrize("url", ["https://user:sk-live-CANARYx@api.example/v1", "https://api.example/v1?api_key=sk-x",
                                 "https://api.example/v1?token=abc", "https://[::1/v1"])
def test_base_url_never_carries_credentials(tmp_path: Path, url: str) -> None:
    f = write(tmp_path, GOOD.replace("https://api.partner.example/v1", url, 1))
    r = run_cli(["validate", "--format", "json", str(f)])
    d = only(json.loads(r.out)["diagnostics"], "E114")
    assert (d["line"], d["col"]) == (10, 17) and "CANARY" not in r.all


def test_base_url_may_carry_ordinary_query_parameters(tmp_path: Path) -> None:
    f = write(tmp_path, GOOD.replace("https://api.partner.example/v1", "https://x.openai.azure.com/v1?api-version=2024-06-01", 1))
    code, out = validate_json(f)
    assert code == 0, out


def test_broken_symlink_is_an_error_not_a_removal(tmp_path: Path) -> None:
    d = tmp_path / "experiments"
    d.mkdir()
    write(d, GOOD, "a.yaml")
    (d / "b.yaml").symlink_to(tmp_path / "gone.yaml")
    rc, out = validate_json(d)
    assert rc == 3
    e = only(out["diagnostics"], "E100")
    assert e["file"].endswith("b.yaml") and "broken symbolic link" in e["message"]


def test_unreadable_directory_is_an_error(tmp_path: Path) -> None:
    """As root, permissions do not stop reads: the child drops to user nobody (as the
    secrets tests do), so the walk really meets an unreadable folder."""
    import os
    import shutil
    import tempfile

    base = Path(tempfile.mkdtemp(dir="/tmp"))  # reachable by nobody, unlike pytest's tmp_path
    base.chmod(0o755)
    d = base / "experiments"
    (d / "team").mkdir(parents=True)
    d.chmod(0o755)
    write(d / "team", GOOD, "a.yaml")
    (d / "team").chmod(0)
    try:
        if os.geteuid() != 0:
            from expsync.desired.loader import discover

            files, diags = discover([str(d)])
            assert not files and [x.code for x in diags] == ["E100"]
            return
        pid = os.fork()
        if pid == 0:  # pragma: no cover - child
            try:
                os.setgid(65534)
                os.setuid(65534)
                from expsync.desired.loader import discover

                files, diags = discover([str(d)])
                os._exit(0 if not files and [x.code for x in diags] == ["E100"] else 1)
            except BaseException:
                os._exit(2)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
    finally:
        (d / "team").chmod(0o755)
        shutil.rmtree(base)


@pytest.mark.parametrize("arg", ["", "/dev/null", "a" * 300])
def test_odd_paths_are_e100(arg: str) -> None:
    r = run_cli(["validate", "--format", "json", arg])
    assert r.code == 3, r.all
    assert only(json.loads(r.out)["diagnostics"], "E100")


@pytest.mark.parametrize(("value", "col"), [("0123", 26), ("1:30", 26), ("1_000", 26), ("0x10", 26), (".nan", 26),
                                            ("-.inf", 26), ("yes", 26), ("off", 26), ("1e3", 26)])
def test_yaml11_coercions_are_refused(tmp_path: Path, value: str, col: int) -> None:
    f = write(tmp_path, GOOD.replace("      internal_id: foo-rc1\n",
                                     f"      internal_id: foo-rc1\n      extra_body: {{seed: {value}}}\n", 1))
    _, out = validate_json(f)
    d = only(out["diagnostics"], "E113")
    assert (d["line"], d["col"], d["path"]) == (10, col, "variants[0].upstream.extra_body.seed")


@pytest.mark.parametrize("value", ["'0123'", "12", "-3", "0.5", "1.0e+3", "true", "False", "null", "'yes'"])
def test_unambiguous_scalars_are_fine(tmp_path: Path, value: str) -> None:
    f = write(tmp_path, GOOD.replace("      internal_id: foo-rc1\n",
                                     f"      internal_id: foo-rc1\n      extra_body: {{seed: {value}}}\n", 1))
    code, out = validate_json(f)
    assert code == 0, out


def test_nesting_limit(tmp_path: Path) -> None:
    deep = "{a: " * 70 + "1" + "}" * 70
    f = write(tmp_path, GOOD.replace("      internal_id: foo-rc1\n", f"      internal_id: foo-rc1\n      extra_body: {deep}\n", 1))
    _, out = validate_json(f)
    d = only(out["diagnostics"], "E116")
    assert d["line"] == 10


@pytest.mark.parametrize(("old", "new", "code"), [
    ("partner/preview-foo", '"partner/\\u200bpreview-foo"', "E204"),
    ("partner/preview-foo", '"partner/\\e[2Jpreview"', "E204"),
    ("https://api.partner.example/v1", "https://api.partner.example:99999/v1", "E114"),
    ("https://api.partner.example/v1", "https://api.partner.example/v1#token=abc", "E114"),
    ("- label: rc1", "- label: '   '", "E113"),
])
def test_invisible_or_impossible_values(tmp_path: Path, old: str, new: str, code: str) -> None:
    _, out = validate_json(write(tmp_path, GOOD.replace(old, new, 1)))
    assert only(out["diagnostics"], code)


def test_huge_numbers_of_problems_are_capped_per_file_and_in_text(tmp_path: Path) -> None:
    for name in ("a.yaml", "b.yaml", "c.yaml"):
        write(tmp_path, "---\nkey: a\n" * 500, name)  # 1,000 problems each
    r = run_cli(["validate", str(tmp_path)], env={"GITHUB_ACTIONS": "true"})
    assert r.code == 3 and "... and " in r.err and r.err.count("::error ") == 50
    assert r.err.count("\nerror: ") + r.err.startswith("error: ") == 200
    _, out = validate_json(tmp_path)
    # JSON: per file the first 100, then one E124 counting the other 900
    assert len(out["diagnostics"]) == 3 * 101
    mores = [d for d in out["diagnostics"] if d["code"] == "E124"]
    assert len(mores) == 3 and all("900 more" in d["message"] for d in mores)
    last_of_a = [d for d in out["diagnostics"] if d["file"].endswith("a.yaml")][-1]
    assert last_of_a["code"] == "E124"
