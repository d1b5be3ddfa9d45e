"""What loading a folder costs, in counts: pure per-string checks run once per distinct string,
discovery makes no system call per plain file, and each fast path gives exactly what the
straightforward code it replaced gives (the reference implementations below)."""

from __future__ import annotations

import os
import stat
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from expsync import credentials, weburl
from expsync.desired import rules
from expsync.desired.loader import LoadOptions, discover, load_desired
from expsync.model import uuid5
from tests.desired.test_refusals import GOOD

URLS = ("https://api.one.example/v1", "https://api.two.example/v1?region=eu", "http://10.0.0.1:8080/")


def _folder(root: Path, n: int) -> Path:
    d = root / "experiments"
    d.mkdir()
    for i in range(n):
        text = GOOD.replace("key: foo", f"key: foo-{i}").replace("preview-foo", f"preview-foo-{i}")
        first, second = URLS[i % 3], URLS[(i + 1) % 3]
        text = text.replace("https://api.partner.example/v1", first, 1).replace("https://api.partner.example/v1", second)
        text = text.replace("internal_id: foo-rc2", "internal_id: foo-rc2\n      extra_body: {topP: 1, apiKey: ''}")
        (d / f"e{i:03}.yaml").write_text(text)
    return d


def _load(d: Path) -> None:
    weburl.parse_cached.cache_clear()
    credentials.judge_cached.cache_clear()
    state, diags = load_desired([str(d)], LoadOptions())
    assert not diags and len(state.experiments) == len(list(d.iterdir()))


def test_each_distinct_base_url_is_parsed_once(tmp_path: Path) -> None:
    _load(_folder(tmp_path, 30))
    assert weburl.parse_cached.cache_info().misses == len(URLS)


def test_each_distinct_name_is_judged_once(tmp_path: Path) -> None:
    (tmp_path / "one").mkdir()
    _load(_folder(tmp_path / "one", 1))
    one = credentials.judge_cached.cache_info().misses
    _load(_folder(tmp_path, 30))
    info = credentials.judge_cached.cache_info()
    assert info.misses == one and info.hits > 0


def test_long_strings_are_not_kept_by_the_caches() -> None:
    weburl.parse_cached.cache_clear()
    credentials.judge_cached.cache_clear()
    long_url = "https://api.one.example/" + "a" * weburl.CACHED_LENGTH
    assert weburl.parse(long_url) is not None and weburl.origin(long_url) == "https://api.one.example"
    assert credentials.is_credential_name("x" * credentials.CACHED_LENGTH + "_api_key")
    assert weburl.parse_cached.cache_info().currsize == 0 and credentials.judge_cached.cache_info().currsize == 0
    assert credentials.is_credential_name("api_key") and credentials.judge_cached.cache_info().currsize == 1


def test_parsed_url_is_immutable_and_shared() -> None:
    a, b = weburl.parse(URLS[1]), weburl.parse(URLS[1])
    assert a is b and a is not None and a.search == "?region=eu" and a.origin == "https://api.two.example"
    with pytest.raises(AttributeError):
        a.search = ""  # type: ignore[misc]


# --- credential literals: one walk gives what two walks gave --------------------------------


def _reference_literals(value: object, path: str) -> Iterator[str]:
    if isinstance(value, dict):
        for k, child in value.items():
            inner = list(_reference_literals(child, f"{path}.{k}"))
            if inner:
                yield from inner
            elif credentials.is_credential_name(str(k)) and _reference_is_literal(child):
                yield f"{path}.{k}"
    elif isinstance(value, list):
        for j, item in enumerate(value):
            yield from _reference_literals(item, f"{path}[{j}]")


def _reference_is_literal(value: object) -> bool:
    if isinstance(value, bool) or value is None:
        return False
    if isinstance(value, str):
        return bool(value.strip())
    if isinstance(value, dict):
        return any(_reference_is_literal(v) for v in value.values())
    if isinstance(value, list):
        return any(_reference_is_literal(v) for v in value)
    return isinstance(value, int | float)


_NAMES = st.sampled_from(["api_key", "token", "model", "headers", "x", "Authorization", "value", "top_p"])
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.sampled_from(["", " ", "sk-1", "a"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_NAMES, inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(_NAMES, _JSON, max_size=5))
def test_credential_literals_match_the_two_walk_definition(upstream: dict) -> None:
    got = list(rules.credential_literals(upstream, "variants[0].upstream"))
    assert got == list(_reference_literals(upstream, "variants[0].upstream"))


# --- uuid5 -------------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.uuids(), st.text())
def test_uuid5_is_the_standard_one(namespace: uuid.UUID, name: str) -> None:
    assert uuid5(namespace, name) == uuid.uuid5(namespace, name)
    assert uuid5(namespace, name).version == 5


def test_deterministic_ids_are_the_standard_uuid5(tmp_path: Path) -> None:
    from expsync.model import EXPSYNC_NAMESPACE

    state, _ = load_desired([str(_folder(tmp_path, 2))], LoadOptions())
    for e in state.experiments.values():
        assert e.resolved_id == uuid.uuid5(EXPSYNC_NAMESPACE, e.key)
        for v in e.variants:
            assert e.variant_id(v) == uuid.uuid5(e.resolved_id, v.key)


# --- discovery ---------------------------------------------------------------------------------


def _tree(tmp_path: Path) -> Path:
    """A repository whose folder holds every kind of entry discovery tells apart."""
    repo = tmp_path / "repo"
    d = repo / "experiments"
    (repo / ".git").mkdir(parents=True)
    for sub in ("b", "a/deep", "c"):
        (d / sub).mkdir(parents=True)
    for rel in ("z.yaml", "a.yml", "b/x.yaml", "a/deep/y.yaml", "a/n.txt", "c/k.yaml"):
        (d / rel).write_text(GOOD)
    (d / "link.yaml").symlink_to(d / "b" / "x.yaml")  # the same file twice
    (d / "gone.yaml").symlink_to(tmp_path / "missing.yaml")
    (tmp_path / "outside.yaml").write_text(GOOD)
    (d / "out.yaml").symlink_to(tmp_path / "outside.yaml")
    (d / "loop").symlink_to(d)
    (d / "again").symlink_to(d / "a")
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (d / "far").symlink_to(outside)
    (d / "folder.yaml").mkdir()
    os.mkfifo(d / "pipe.yaml")
    return d


def _reference_discover(top: Path) -> tuple[list[Path], list[tuple[str, str]]]:
    """The ``os.walk`` discovery this module replaced (for one folder inside its repository)."""
    from expsync.desired.loader import SUFFIXES, _why, repository_root

    repo = repository_root(top.resolve(), Path.cwd().resolve())
    files: list[Path] = []
    diags: list[tuple[str, str]] = []
    visited: set[Path] = set()
    for root, dirnames, names in os.walk(top, onerror=lambda e: diags.append((str(e.filename), "")), followlinks=True):
        here = Path(root).resolve()
        if here in visited:
            dirnames[:] = []
            continue
        visited.add(here)
        keep = []
        for dname in sorted(dirnames):
            sub = Path(root) / dname
            if sub.is_symlink():
                target = sub.resolve()
                if not target.is_relative_to(repo):
                    diags.append((str(sub), "outside"))
                    continue
                if here.is_relative_to(target):
                    diags.append((str(sub), "loop"))
                    continue
            keep.append(dname)
        dirnames[:] = keep
        for name in sorted(names):
            if not name.endswith(SUFFIXES):
                continue
            f = Path(root) / name
            try:
                fst = f.stat()
            except OSError as e:
                diags.append((str(f), _why(f, e)))
                continue
            if f.is_symlink() and not f.resolve().is_relative_to(repo):
                diags.append((str(f), "outside"))
            elif stat.S_ISREG(fst.st_mode):
                files.append(f)
            else:
                diags.append((str(f), "not a regular file"))
    unique, seen = [], set()
    for f in files:
        if f.resolve() not in seen:
            seen.add(f.resolve())
            unique.append(f)
    return unique, diags


def test_discovery_lists_what_os_walk_listed(tmp_path: Path) -> None:
    d = _tree(tmp_path)
    files, diags = discover([str(d)])
    want_files, want_diags = _reference_discover(d)
    assert files == want_files and len(files) == 5
    assert [x.source.file for x in diags if x.source] == [p for p, _ in want_diags]
    assert all(x.code == "E100" for x in diags)
    messages = {x.source.file: x.message for x in diags if x.source}
    assert messages[str(d / "gone.yaml")] == "broken symbolic link"
    assert messages[str(d / "pipe.yaml")] == "not a regular file"
    assert "loop" in messages[str(d / "loop")] and "outside" in messages[str(d / "far")]


def test_discovery_makes_no_system_call_per_plain_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = {"n": 0}
    real_stat, real_lstat = os.stat, os.lstat

    def counted(real):  # type: ignore[no-untyped-def]
        def call(*a, **k):  # type: ignore[no-untyped-def]
            calls["n"] += 1
            return real(*a, **k)
        return call

    counts = []
    for n in (3, 60):
        d = tmp_path / f"n{n}" / "experiments"
        (d / "sub").mkdir(parents=True)
        for i in range(n):
            (d / ("sub" if i % 2 else ".") / f"e{i}.yaml").write_text(GOOD)
        calls["n"] = 0
        with monkeypatch.context() as m:
            m.setattr(os, "stat", counted(real_stat))
            m.setattr(os, "lstat", counted(real_lstat))
            files, diags = discover([str(d)])
        assert len(files) == n and not diags
        counts.append(calls["n"])
    assert counts[0] == counts[1]


# --- the strict YAML loader --------------------------------------------------------------------


def test_plain_scalars_are_resolved_once_per_distinct_text() -> None:
    from expsync.desired import yamlload

    body = "".join(f"k{i}: {{name: true, n: 1, top_p: 0.9, t: treatment}}\n" for i in range(200))
    long_value = "t" * (yamlload._SHORT + 1)
    yamlload._resolve_short.cache_clear()
    docs, diags = yamlload.load_documents(body + f"long: {long_value}\n", "x.yaml")
    assert not diags and docs[0].value["k7"] == {"name": True, "n": 1, "top_p": 0.9, "t": "treatment"}  # type: ignore[index]
    info = yamlload._resolve_short.cache_info()
    # name, true, n, 1, top_p, 0.9, t, treatment: once each; the long scalar is not kept
    assert info.misses == 8 and info.currsize == 8 and info.hits > 1000


def test_an_escaped_proto_key_is_still_found(tmp_path: Path) -> None:
    """The loader screens a document for ``__proto__`` keys by their recorded paths; a key
    written with an escape has the same path."""
    from tests.desired.test_refusals import only, validate_json, write

    text = GOOD.replace("internal_id: foo-rc1", 'internal_id: foo-rc1\n      extra_body: {"\\x5f_proto__": 1}')
    code, out = validate_json(write(tmp_path, text))
    d = only(out["diagnostics"], "E142")
    assert code != 0 and d["line"] == 10 and d["path"] == "variants[0].upstream.extra_body.__proto__"


@pytest.mark.parametrize("rel", ["a.yaml", "sub/b.yaml", "../x/c.yaml", "sub/../d.yaml", "."])
def test_display_name_is_relpath_inside_the_working_directory(rel: str, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from expsync.desired.loader import display_name

    here = tmp_path / "repo"
    here.mkdir()
    monkeypatch.chdir(here)
    path = Path(os.path.join(str(here), rel))  # as pathlib spells it: ".." kept, "." dropped
    want = os.path.relpath(path)
    assert display_name(path) == (str(path) if want.startswith("..") else want)
    assert display_name(Path(rel)) == str(Path(rel))


_PIECES = st.sampled_from(["a: 1", "b: 'x\u2029y'", '"c": "d\\ne"', "- x", "  ", "\t", "k: [1, 2]", "m: {n: o}",
                           "é😀: v", "# c\u00e9", "f: |", "  l1", "---", "q: >", "  folded", "\u0085", "z"])
_BREAKS = st.sampled_from(["\n", "\r\n", "\r", "\x85", "\u2028", "\u2029"])


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(_PIECES, _BREAKS), max_size=25), st.booleans(), st.booleans(), st.booleans())
def test_mark_index_gives_the_parsers_line_and_column(parts: list[tuple[str, str]], bom: bool, pure: bool,
                                                      lf_only: bool) -> None:
    """Marks keep only a character index; the line and column derived from it are the ones
    libyaml (and the pure-Python parser) report, whatever the line breaks and characters."""
    import yaml

    from expsync.desired.yamlload import Lines

    text = ("\ufeff" if bom else "") + "".join(p + ("\n" if lf_only else b) for p, b in parts)
    loader = (yaml.SafeLoader if pure else yaml.CSafeLoader)(text)
    lines = Lines(text, libyaml=not pure)
    seen = 0
    try:
        while (ev := loader.get_event()) is not None:
            m = ev.start_mark
            assert lines.position(m.index) == (m.line, m.column), (ev, m)
            seen += 1
    except yaml.YAMLError:
        pass  # positions up to the error were checked
    finally:
        loader.dispose()
    assert seen >= 1
