"""User-controlled text (file names, YAML values, database values) is escaped visibly on every
text output path: terminal text, diagnostics, GitHub workflow commands and markdown."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from expsync import escape
from expsync.diagnostics import Diagnostic, SourceRange
from expsync.render.diagnostics import github_annotations, render_text
from expsync.render.markdown import render_markdown
from expsync.render.text import render_text as render_plan_text
from tests.cli_helpers import run_cli
from tests.render import plans

#: one of each kind: C0 (newline, ESC), DEL, C1 (CSI), bidi override and isolate, zero-width,
#: BOM, line/paragraph separators, a Unicode tag character
HOSTILE = ["\n", "\r", "\x1b", "\x07", "\x7f", "\x9b", "\u202e", "\u2066", "\u200b", "\u200d", "\u2060", "\ufeff",
           "\u2028", "\u2029", "\U000e0041"]
OSC52 = "\x1b]52;c;ZWNobyBwd25lZA==\x07"


def _raw_chars(text: str) -> list[str]:
    return [c for c in HOSTILE if c in text]


@pytest.mark.parametrize("c", HOSTILE)
def test_every_invisible_character_is_escaped_visibly(c: str) -> None:
    out = escape.terminal(f"a{c}b")
    assert c not in out and out.startswith("a\\") and out.endswith("b")
    assert escape.INVISIBLE.search(c)


def test_visible_text_is_left_alone() -> None:
    s = "café / 日本語 / emoji \U0001f600 / a,b:c % 100"
    assert escape.terminal(s) == s


def test_workflow_property_and_data_follow_githubs_rules() -> None:
    assert escape.workflow_property("a%b:c,d\ne") == "a%25b%3Ac%2Cd\\ne"
    assert escape.workflow_data("50% a:b,c") == "50%25 a:b,c"


def test_markdown_sinks() -> None:
    assert escape.markdown_text("x\u202ey*") == "x\\\\u202ey\\*"
    assert escape.markdown_code("a|b\u200bc") == "`a\\|b\\u200bc`"
    # GitHub links mentions and issue references after markdown, backslash or not
    assert escape.markdown_text("@org/team #1") == "`@`org/team `#`1"
    assert escape.markdown_text("a@@b C## `@x") == "a`@@`b C`##` \\``@`x"  # one span per run: `@``@` would show ticks


def _diag(file: str, message: str = "m") -> Diagnostic:
    return Diagnostic.make("E101", message, SourceRange(file, 1, 1), path="name")


def test_file_name_cannot_inject_a_workflow_command() -> None:
    d = _diag("x.yaml\n::warning::pwned" + OSC52, "bad\r\n::error::also")
    out = github_annotations([d])
    assert out.count("\n") == 0 and out.startswith("::error ")  # one command: the runner reads only line starts
    assert out.startswith("::error file=x.yaml\\n%3A%3Awarning%3A%3Apwned\\x1b]52;c;ZWNobyBwd25lZA==\\x07,line=1")
    assert not _raw_chars(out)


def test_diagnostic_text_lines_escape_every_part() -> None:
    d = Diagnostic.make("E101", "msg\u202e" + OSC52, SourceRange("f\n::warning::x.yaml", 1, 1), path="a\x1bb",
                        hint="h\u2028")
    out = render_text([d])
    assert out.split("\n")[1].startswith("    hint:") and len(out.split("\n")) == 2
    assert not _raw_chars(out.replace("\n", "")) and "\\x1b]52" in out and "\\u202e" in out


def _hostile_plan():  # a desired name and a database name, both hostile
    from tests.render.plans import applied, foo, run
    from tests.plan.builders import actual, desired

    name = "Foo\u202eevil\u200b" + OSC52 + "\n::warning::x"
    return run(desired(foo(name=name)), applied(foo(), name="db\u2066name\x9b31m"))


def test_plan_text_and_markdown_escape_yaml_and_database_values() -> None:
    plan = _hostile_plan()
    text = render_plan_text(plan)
    md = render_markdown(plan)
    for out in (text, md):
        assert not _raw_chars(out.replace("\n", "")), out
        assert "\\u202e" in out and "\\u2066" in out and "\\x9b" in out and "\\u001b]52" in out
    assert not any(line.startswith("::") for line in (text + md).splitlines())


def test_json_stays_exact() -> None:
    from expsync.render.json import render_json

    out = render_json(_hostile_plan())
    assert "\x1b" not in out  # json.dumps escapes C0 controls itself
    assert "Foo\u202eevil" in json.dumps(json.loads(out), ensure_ascii=False)


def test_validate_escapes_a_hostile_file_name(tmp_path: Path) -> None:
    name = "x\n::warning file=a::pwned\x1b]0;title\x07.yaml"
    (tmp_path / name).write_text("key: [\n")
    r = run_cli(["validate", str(tmp_path)], env={"GITHUB_ACTIONS": "true"})
    assert r.code == 3
    assert not any(line.startswith("::warning") for line in r.all.splitlines()), r.all
    assert "\x1b" not in r.all and "\x07" not in r.all
    assert "x\\n::warning file=a::pwned\\x1b]0;title\\x07.yaml" in r.err


def test_log_lines_are_escaped() -> None:
    import logging

    from expsync.escape import LogFormatter

    rec = logging.LogRecord("botocore", logging.DEBUG, __file__, 1, "secret id %s", ("a\n::warning::x\x1b]0;t\x07",),
                            None)
    out = LogFormatter("%(levelname)s %(name)s: %(message)s").format(rec)
    assert out == "DEBUG botocore: secret id a\\n::warning::x\\x1b]0;t\\x07"


def test_cli_logs_through_the_escaping_formatter() -> None:
    import logging

    from expsync.escape import LogFormatter

    root = logging.getLogger()
    level, before = root.level, list(root.handlers)
    try:
        r = run_cli(["validate", "/nonexistent-path"])
        handlers = [h for h in root.handlers if getattr(h, "_expsync", False)]
        assert r.code == 3 and handlers and all(isinstance(h.formatter, LogFormatter) for h in handlers)
    finally:  # the CLI configures the root logger: leave it as other tests expect it
        for h in [h for h in root.handlers if h not in before]:
            root.removeHandler(h)
        root.setLevel(level)
