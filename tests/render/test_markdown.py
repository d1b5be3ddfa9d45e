"""The markdown PR comment: order, tables, escaping, and degradation under the size limit."""

from __future__ import annotations

import dataclasses
import re

import pytest

from expsync.render.markdown import MAX_CHARS, MARKER, render_markdown
from tests.render import plans


def tables(md: str) -> list[list[str]]:
    """Blocks of consecutive table lines."""
    blocks: list[list[str]] = []
    current: list[str] = []
    for line in md.split("\n"):
        if line.startswith("|"):
            current.append(line)
        elif current:
            blocks.append(current)
            current = []
    if current:
        blocks.append(current)
    return blocks


def cells(row: str) -> int:
    return len(re.split(r"(?<!\\)\|", row)) - 2


def assert_tables_intact(md: str) -> None:
    for block in tables(md):
        assert len(block) >= 3, f"table without rows: {block}"
        assert re.fullmatch(r"\|(---\|)+", block[1]), block[1]
        widths = {cells(r) for r in block}
        assert widths == {cells(block[0])}, f"a row does not have the header's {cells(block[0])} cells: {block}"
        assert all(r.endswith(" |") or r.endswith("---|") for r in block)


def outside_code(md: str) -> str:
    return re.sub(r"(`+)(.+?)\1", "", md)


def test_sections_in_order_summary_errors_drift_experiments() -> None:
    md = render_markdown(plans.drift())
    assert md.startswith(MARKER + "\n### expsync plan\n\n:no_entry: **Plan refused: 1 error(s).**")
    order = [md.index(s) for s in ("Plan refused", "#### Errors and warnings (2)", "#### Changes made outside git (2)",
                                   "#### Experiments (1)", "<details>")]
    assert order == sorted(order)
    assert "| :warning: | `qux` | `status` | `\"active\"` | `\"paused\"` | protective: never undone silently |" in md
    assert_tables_intact(md)


def test_one_collapsible_section_per_changed_experiment() -> None:
    md = render_markdown(plans.transitions())
    assert md.count("<details>") == md.count("</details>") == 3
    for key in ("bar", "baz", "foo-rc-bakeoff"):
        assert f"<b><code>{key}</code></b>" in md
    assert "| `rc1` | 50% (1) | 75% (3) |" in md
    assert "| `>` | activate | `status` | `draft` | `active` |" in md
    assert "- requests to partner/bar will be refused while paused (no fall-through)" in md
    assert_tables_intact(md)


def test_hot_swap_rows_show_field_diff_and_key_change() -> None:
    md = render_markdown(plans.hot_swap_on_active())
    assert "| `+` | new version | `rc2` `upstream.internal_id` | `\"foo-rc2\"` | `\"foo-rc3\"` |" in md
    assert "| `+` | new version | `rc2` api key |  | unchanged, from `env:FOO_RC2_KEY` |" in md
    assert "**Plan: 0 to create, 1 to update, 0 to transition, 0 to delete.**" in md


def test_no_changes_and_no_secrets_headlines() -> None:
    assert ":white_check_mark: **No changes. The database matches the YAML.**" in render_markdown(plans.no_changes())
    md = render_markdown(plans.no_secrets())
    assert "> This plan cannot be applied: api keys were not compared (`--no-secrets`)." in md
    assert "unknown (not compared: --no-secrets)" in md


def test_markup_in_names_and_labels_cannot_break_tables_or_inject_html() -> None:
    md = render_markdown(plans.hostile_names())
    assert_tables_intact(md)
    rest = outside_code(md)
    assert "<img" not in rest and "@org" not in rest and "*bold*" not in rest
    assert rest.count("</details>") == 1 and rest.count("<details>") == 1


def test_labels_in_plain_text_cannot_mention_or_reference() -> None:
    """GitHub links ``@user``, ``@org/team`` and ``#1`` / ``org/repo#1`` after markdown, so a
    backslash escape (``\\@org``) still notifies the team or cross-references the issue: only
    text inside a code span is safe. The routing-impact bullet names the label in plain text."""
    old = plans.foo(plans.A)
    label = "@org/team see #1 and org/repo#2"
    old = dataclasses.replace(old, variants=(plans.dvar(label, upstream=plans._up("m-1"), ref="env:K1"),
                                             old.variants[1]))
    new = dataclasses.replace(old, variants=(plans.dvar(label, upstream=plans._up("m-2"), ref="env:K1"),
                                             old.variants[1]))
    md = render_markdown(plans.run(plans.desired(new), plans.applied(old)))
    assert "its traffic moves to the new upstream version immediately" in md
    rest = outside_code(md)
    assert not re.search(r"@\w", rest) and not re.search(r"#\d", rest), rest


def test_degrades_step_by_step_never_cutting_a_table() -> None:
    plan = plans.hot_swaps(3)
    full = render_markdown(plan)
    assert "`rc2` `upstream.internal_id`" in full and "Detail reduced" not in full

    no_diffs = render_markdown(plan, max_chars=len(full) - 1)
    assert "per-field upstream diffs are left out" in no_diffs
    assert "`upstream.internal_id`" not in no_diffs and no_diffs.count("<details>") == 3
    assert "upstream: `internal_id`; api key: rotated, from `env:FOO_RC2_KEY`" in no_diffs

    one_line = render_markdown(plan, max_chars=len(no_diffs) - 1)
    assert "each experiment is summarised in one row." in one_line and "<details>" not in one_line
    assert "| `~` | `swap-0001` | `partner/swap-0001` | active | new version |" in one_line

    truncated = render_markdown(plan, max_chars=len(one_line) - 1)
    assert "long lists are cut short" in truncated
    assert re.search(r"_\.\.\. and \d more experiments: run `expsync plan` for all of them\._", truncated)

    for md, limit in ((no_diffs, len(full) - 1), (one_line, len(no_diffs) - 1), (truncated, len(one_line) - 1)):
        assert len(md) <= limit
        assert_tables_intact(md)
        assert "**Plan: 0 to create, 3 to update, 0 to transition, 0 to delete.**" in md


def test_two_thousand_experiments_stay_under_the_limit_with_the_summary() -> None:
    md = render_markdown(plans.many(2000))
    assert len(md) <= MAX_CHARS
    assert "**Plan: 2000 to create, 0 to update, 0 to transition, 0 to delete.**" in md
    assert md.index("Plan: 2000") < 300
    assert re.search(r"_\.\.\. and \d+ more experiments: run `expsync plan` for all of them\._\n$", md)
    assert_tables_intact(md)


def test_thousands_of_errors_leave_room_for_the_experiments() -> None:
    md = render_markdown(plans.many_refused(800))
    assert len(md) <= MAX_CHARS
    assert ":no_entry: **Plan refused: 800 error(s).**" in md
    assert "#### Errors and warnings (800)" in md and "#### Experiments (800)" in md
    assert "more diagnostics: run `expsync plan`" in md and "more experiments: run `expsync plan`" in md
    assert_tables_intact(md)


@pytest.mark.parametrize("name", sorted(plans.ALL))
def test_every_plan_renders_intact_tables_and_balanced_details(name: str) -> None:
    md = render_markdown(plans.ALL[name]())
    assert_tables_intact(md)
    assert md.count("<details>") == md.count("</details>")
    assert md.startswith(MARKER)


def test_a_share_that_rounds_to_0_or_100_is_not_shown_as_all_or_nothing() -> None:
    md = render_markdown(plans.lopsided())
    assert "| `rc1` | (none) | >99.9% (9999) |" in md
    assert "| `rc2` | (none) | <0.1% (1) |" in md
