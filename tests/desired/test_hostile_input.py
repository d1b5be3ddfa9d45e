"""Hostile or careless input: each case is a diagnostic with file:line, never a crash and never
a silent change (tags, non-string keys, out-of-range numbers, invisible characters, folder
links, oversized files, too many variants or problems)."""

from __future__ import annotations

import os
import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest

from expsync.desired.loader import MAX_VARIANTS, LoadOptions, load_desired, load_file
from tests.cli_helpers import run_cli
from tests.desired.test_refusals import GOOD, only, validate_json, write

BIG = "9" * 4301
UP = "      internal_id: foo-rc1\n"


def _extra(body: str) -> tuple[str, str]:
    return UP, f"{UP}      extra_body: {body}\n"


@pytest.mark.parametrize(
    ("old", "new", "code", "line", "col", "path"),
    [
        # explicit core tags are tags too
        ("name: Foo", "name: !!str Foo", "E105", 3, 7, "name"),
        ("    weight: 1\n", "    weight: !!int 1\n", "E105", 7, 13, "variants[0].weight"),
        ("name: Foo", "!!str name: Foo", "E105", 3, 1, "name"),
        # integers past Python's int-string limit, non-finite and underflowing numbers
        ("    weight: 1\n", f"    weight: {BIG}\n", "E122", 7, 13, "variants[0].weight"),
        (*_extra(f"{{seed: -{BIG}}}"), "E122", 10, 26, "variants[0].upstream.extra_body.seed"),
        (*_extra("{temperature: 1.0e+400}"), "E122", 10, 33, "variants[0].upstream.extra_body.temperature"),
        (*_extra("{temperature: -1.0e+400}"), "E122", 10, 33, "variants[0].upstream.extra_body.temperature"),
        (*_extra("{temperature: 1.5e-400}"), "E122", 10, 33, "variants[0].upstream.extra_body.temperature"),
        # mapping keys that are not strings would silently become "None", "1.5", "true"
        (*_extra("{~: 1}"), "E121", 10, 20, "variants[0].upstream.extra_body"),
        (*_extra("{1.50: 2}"), "E121", 10, 20, "variants[0].upstream.extra_body"),
        (*_extra("{true: 2}"), "E121", 10, 20, "variants[0].upstream.extra_body"),
        (*_extra("{1: 2}"), "E121", 10, 20, "variants[0].upstream.extra_body"),
        # invisible and control characters in text fields, refused as in ids
        ("name: Foo", 'name: "Foo\\u202eevil"', "E120", 3, 7, "name"),
        ("name: Foo", 'name: "Foo\\x85"', "E120", 3, 7, "name"),
        ("name: Foo", 'name: "Foo\\nBar"', "E120", 3, 7, "name"),
        ("name: Foo", 'name: Foo\ndescription: "a\\u200bb"', "E120", 4, 14, "description"),
        ("name: Foo", 'name: Foo\ndescription: "a\\e]52;c;eA==\\a"', "E120", 4, 14, "description"),
        ("- label: rc1", '- label: "rc\\u20661"', "E120", 6, 12, "variants[0].label"),
        ("internal_id: foo-rc1", 'internal_id: "foo\\u2060rc1"', "E120", 9, 20, "variants[0].upstream.internal_id"),
        (*_extra('{a: {"b\\u200b": 1}}'), "E120", 10, 24, "variants[0].upstream.extra_body.a.b\u200b"),
        (*_extra('{a: [x, "\\u202e"]}'), "E120", 10, 27, "variants[0].upstream.extra_body.a[1]"),
        (UP, f'{UP}      remove_from_body: ["a\\ufeff"]\n', "E120", 10, 26, "variants[0].upstream.remove_from_body[0]"),
        ("api_key: env:FOO_KEY", 'api_key: "file:/run/secrets/\\u202ey"', "E120", 11, 14, "variants[0].api_key"),
    ],
)
def test_refused_with_position(tmp_path: Path, old: str, new: str, code: str, line: int, col: int, path: str) -> None:
    assert old in GOOD
    f = write(tmp_path, GOOD.replace(old, new, 1))
    rc, out = validate_json(f)
    assert rc == 3, out
    d = only(out["diagnostics"], code)
    assert (d["file"], d["line"], d["col"], d["path"]) == (str(f), line, col, path), d


def test_document_tag_is_refused(tmp_path: Path) -> None:
    _, out = validate_json(write(tmp_path, "--- !!map\n" + GOOD))
    d = only(out["diagnostics"], "E105")
    assert (d["line"], d["col"]) == (1, 5)


def test_tags_refused_in_one_document_only(tmp_path: Path) -> None:
    other = GOOD.replace("key: foo", "key: bar").replace("preview-foo", "preview-bar")
    _, out = validate_json(write(tmp_path, GOOD.replace("name: Foo", "name: !!str Foo") + "---\n" + other))
    assert [d["code"] for d in out["diagnostics"]] == ["E105"]
    assert out["experiments"] == 1


def test_multi_line_description_and_extra_body_text_stay_allowed(tmp_path: Path) -> None:
    text = GOOD.replace("name: Foo", "name: Foo\ndescription: |\n  line one\n  \tline two\n", 1)
    text = text.replace(UP, f'{UP}      extra_body: {{system: "be brief.\\nreally."}}\n', 1)
    rc, out = validate_json(write(tmp_path, text))
    assert rc == 0, out


def test_long_values_are_quoted_short(tmp_path: Path) -> None:
    f = write(tmp_path, GOOD.replace("    weight: 1\n", f"    weight: 0{'7' * 100_000}\n", 1))
    r = run_cli(["validate", "--format", "json", str(f)])
    assert r.code == 3 and "E113" in r.out and len(r.out) < 2_000


@pytest.mark.parametrize("cmd", [["validate"], ["plan"], ["apply", "--yes"]])
def test_huge_integer_is_a_diagnostic_for_every_command(tmp_path: Path, cmd: list[str], pg_engine) -> None:
    from tests.integration.test_import import env

    f = write(tmp_path, GOOD.replace(UP, f"{UP}      extra_body: {{seed: {'1' * 5000}}}\n", 1))
    r = run_cli([*cmd, str(f)], env=env(pg_engine, FOO_KEY="sk-test"))
    assert r.code == 3 and "E122" in r.err and "Traceback" not in r.all, r.all


# -- folder links ---------------------------------------------------------------------------
def _repo(tmp_path: Path) -> Path:
    (tmp_path / ".git").mkdir()
    exps = tmp_path / "experiments"
    exps.mkdir()
    write(exps, GOOD, "a.yaml")
    return exps


def _other(key: str) -> str:
    return GOOD.replace("key: foo", f"key: {key}").replace("preview-foo", f"preview-{key}")


def test_linked_folder_inside_the_repository_is_read(tmp_path: Path) -> None:
    exps = _repo(tmp_path)
    (tmp_path / "team-b").mkdir()
    write(tmp_path / "team-b", _other("bar"), "b.yaml")
    (exps / "team-b").symlink_to(tmp_path / "team-b", target_is_directory=True)
    (exps / "again").symlink_to(tmp_path / "team-b", target_is_directory=True)  # read once
    state, diags = load_desired([str(exps)])
    assert diags == [] and sorted(state.experiments) == ["bar", "foo"]


def test_linked_folder_outside_the_repository_is_an_error(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    exps = _repo(repo)
    (tmp_path / "elsewhere").mkdir()
    write(tmp_path / "elsewhere", _other("bar"), "b.yaml")
    (exps / "linked").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    (exps / "f.yaml").symlink_to(tmp_path / "elsewhere" / "b.yaml")
    rc, out = validate_json(exps)
    assert rc == 3
    errs = sorted((Path(d["file"]).name, d["code"]) for d in out["diagnostics"])
    assert errs == [("f.yaml", "E100"), ("linked", "E100")], out
    assert all("outside the repository" in d["message"] for d in out["diagnostics"])


def test_link_loop_is_an_error(tmp_path: Path) -> None:
    exps = _repo(tmp_path)
    (exps / "sub").mkdir()
    (exps / "sub" / "loop").symlink_to(exps, target_is_directory=True)
    rc, out = validate_json(exps)
    d = only(out["diagnostics"], "E100")
    assert rc == 3 and d["file"].endswith("loop") and "loop" in d["message"] and out["experiments"] == 1


# -- size and volume limits -------------------------------------------------------------------
def test_size_is_checked_before_reading(tmp_path: Path) -> None:
    f = tmp_path / "huge.yaml"
    with open(f, "wb") as fh:
        fh.truncate(64 * 1024 * 1024)  # sparse: 64 MiB that cost nothing on disk
    tracemalloc.start()
    try:
        exps, diags = load_file(f, LoadOptions(max_file_size=1024 * 1024))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert [d.code for d in diags] == ["E106"] and "67108864 bytes" in diags[0].message
    assert peak < 2 * 1024 * 1024, peak


def test_a_fifo_is_refused_without_hanging(tmp_path: Path) -> None:
    d = tmp_path / "experiments"
    d.mkdir()
    os.mkfifo(d / "pipe.yaml")
    code = ("import sys; from expsync.desired.loader import load_file, LoadOptions; from pathlib import Path;"
            f"print([x.code for x in load_file(Path({str(d / 'pipe.yaml')!r}), LoadOptions())[1]])")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.stdout.strip() == "['E100']", r.stderr


def test_too_many_variants_is_one_diagnostic(tmp_path: Path) -> None:
    f = write(tmp_path, GOOD.split("variants:")[0] + "variants:\n" + "- {}\n" * 1000)
    rc, out = validate_json(f)
    assert rc == 3 and [d["code"] for d in out["diagnostics"]] == ["E123"]
    assert out["diagnostics"][0]["line"] == 6 and str(MAX_VARIANTS) in out["diagnostics"][0]["message"]


def test_150000_empty_variants_are_one_diagnostic(tmp_path: Path) -> None:
    f = write(tmp_path, GOOD.split("variants:")[0] + "variants:\n" + "- {}\n" * 150_000)  # 750 KB
    r = run_cli(["validate", "--format", "json", str(f)])
    assert r.code == 3 and len(r.out) < 2_000 and '"E116"' in r.out


def test_at_the_variant_limit_the_schema_runs(tmp_path: Path) -> None:
    f = write(tmp_path, GOOD.split("variants:")[0] + "variants:\n" + "  - {}\n" * MAX_VARIANTS)
    _, out = validate_json(f)
    codes = {d["code"] for d in out["diagnostics"]}
    assert "E123" not in codes and "E111" in codes and "E124" in codes and len(out["diagnostics"]) == 101


def test_node_limit_per_document(tmp_path: Path) -> None:
    f = write(tmp_path, GOOD.replace(UP, f"{UP}      extra_body: {{a: [{'0,' * 60_000}0]}}\n", 1))
    _, out = validate_json(f)
    d = only(out["diagnostics"], "E116")
    assert d["line"] == 10


# -- a huge integer written into the database by another writer -----------------------------
def test_huge_integer_in_the_database_is_a_clear_error_for_plan_and_import(tmp_path: Path, pg_engine) -> None:
    import sqlalchemy as sa

    from tests.integration.test_import import KEY, env, seed

    seed(pg_engine)
    out = tmp_path / "experiments"
    e = env(pg_engine, LEGACY_UI_BAKE_OFF_PARTNER_API_KEY=KEY, OLD_ONE_ONLY_API_KEY=KEY)
    assert run_cli(["import", "--id", str(seed_live(pg_engine)), "--out-dir", str(out)], env=e).code == 0
    assert run_cli(["apply", "--yes", str(out)], env=e).code == 0
    with pg_engine.begin() as c:  # another writer stores a 5,001-digit integer
        c.execute(sa.text("UPDATE model_experiment_variant_version "
                          "SET upstream = jsonb_set(upstream, '{seed}', ('1' || repeat('0', 5000))::jsonb)"))
    for cmd in (["plan", str(out)], ["import", "--all", "--out-dir", str(tmp_path / "more")]):
        r = run_cli(cmd, env=e)
        assert r.code == 3 and "Traceback" not in r.all and "unexpected" not in r.all, (cmd, r.all)
        assert "integer of 5001 digits" in r.err, r.err


def seed_live(engine) -> str:
    import sqlalchemy as sa

    with engine.connect() as c:
        return str(c.execute(sa.text("SELECT id FROM model_experiment WHERE name = 'Legacy UI Bake-off!'")).scalar_one())


def test_columns_past_a_million_are_exact(tmp_path: Path) -> None:
    pad = "x" * 1_100_000
    f = write(tmp_path, GOOD.replace("name: Foo", f'name: Foo\ndescription: {{a: "{pad}", b: 1.0e+400}}', 1))
    _, out = validate_json(f, extra=("--max-file-size", "2000000"))
    d = only(out["diagnostics"], "E122")
    assert (d["line"], d["col"]) == (4, len("description: {a: \"") + len(pad) + len("\", b: ") + 1)
