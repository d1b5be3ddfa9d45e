"""Security-relevant changes come first in every format; hidden values stay hidden in every format."""

from __future__ import annotations

import dataclasses
import json
import re

import pytest

from expsync.render.json import render_json
from expsync.render.markdown import MAX_CHARS, render_markdown
from expsync.render.security import security_annotations
from expsync.render.text import render_text
from tests.render import plans
from tests.render.test_markdown import assert_tables_intact

WARNING = ("the key from env:GITHUB_TOKEN will be sent to https://attacker.example:8443 "
           "(was the key from env:FOO_RC1_KEY sent to https://api.partner.example)")
REF_ONLY = "api key reference env:FOO_RC2_KEY -> env:FOO_RC3_KEY (same upstream origin https://api.partner.example)"


def test_text_lists_security_changes_first() -> None:
    out = render_text(plans.key_exfiltration())
    assert out.startswith("Security-relevant changes (2):\n")
    head = out.split("\n\n")[0].split("\n")
    assert head[1] == f'    ! warning: experiment "foo-rc-bakeoff", variant "rc1": {WARNING}'
    assert head[2] == f'    ! experiment "foo-rc-bakeoff", variant "rc2": {REF_ONLY}'
    assert out.index("Security-relevant") < out.index('experiment "foo-rc-bakeoff" will be updated')


def test_text_has_no_security_block_without_items() -> None:
    assert "Security-relevant" not in render_text(plans.hot_swap_on_active())


def test_markdown_security_table_is_above_everything_and_not_collapsed() -> None:
    md = render_markdown(plans.key_exfiltration())
    start = md.index("#### :lock: Security-relevant changes (2)")
    assert start < md.index("#### Experiments") < md.index("<details>")
    section = md[start:md.index("#### Experiments")]
    assert "<details>" not in section
    assert ("| :warning: | `foo-rc-bakeoff` | `rc1` | the key from `env:GITHUB_TOKEN` will be sent to "
            "`https://attacker.example:8443` (was the key from `env:FOO_RC1_KEY` sent to `https://api.partner.example`) |"
            ) in section
    assert "| :lock: | `foo-rc-bakeoff` | `rc2` | api key reference `env:FOO_RC2_KEY` -\\> `env:FOO_RC3_KEY`" in section
    assert_tables_intact(md)


def test_json_carries_a_structured_security_list() -> None:
    out = json.loads(render_json(plans.key_exfiltration()))
    assert list(out)[:2] == ["format_version", "security"]
    first, second = out["security"]
    assert first == {
        "code": "key_sent_to_new_origin", "severity": "warning", "experiment_key": "foo-rc-bakeoff",
        "experiment_id": first["experiment_id"], "variant_key": "rc1", "label": "rc1",
        "api_key_ref_before": "env:FOO_RC1_KEY", "api_key_ref": "env:GITHUB_TOKEN",
        "origin_before": "https://api.partner.example", "origin": "https://attacker.example:8443",
        "values_hidden": False, "file": "experiments/foo-rc-bakeoff.yaml", "line": 7,
    }
    assert (second["code"], second["severity"], second["origin_before"]) == ("key_ref_changed", "notice", None)


def test_github_gets_one_warning_annotation_per_item() -> None:
    lines = security_annotations(plans.key_exfiltration()).split("\n")
    assert len(lines) == 2
    assert lines[0] == ("::warning file=experiments/foo-rc-bakeoff.yaml,line=7,title=security-relevant change::"
                        f'experiment "foo-rc-bakeoff", variant "rc1": {WARNING}')
    assert security_annotations(plans.no_changes()) == ""


def test_annotations_cannot_inject_a_workflow_command() -> None:
    p = plans.key_exfiltration()
    evil = dataclasses.replace(p.security[0], label="x\n::error::pwned")
    text = security_annotations(dataclasses.replace(p, security=(evil,)))
    assert "\n" not in text and "\r" not in text and text.startswith("::warning ")


def test_markdown_keeps_the_security_section_when_experiments_degrade() -> None:
    big = plans.many(1500)  # 3,000 new variants: far more than one comment holds
    exfil = plans.key_exfiltration()
    plan = dataclasses.replace(big, security=exfil.security + big.security)
    md = render_markdown(plan)
    assert len(md) <= MAX_CHARS
    assert "#### :lock: Security-relevant changes (3002)" in md
    assert "`env:GITHUB_TOKEN` will be sent to `https://attacker.example:8443`" in md
    assert re.search(r"_\.\.\. and \d+ more security-relevant changes: run `expsync plan`", md)
    assert md.index(":lock: Security") < md.index("#### Experiments")
    assert_tables_intact(md)


def test_markdown_degrades_experiments_before_security_rows() -> None:
    plan = plans.hot_swaps(40)
    plan = dataclasses.replace(plan, security=plans.key_exfiltration().security)
    full = render_markdown(plan)
    for limit in (len(full) - 1, len(full) // 2, len(full) // 4):
        md = render_markdown(plan, max_chars=limit)
        assert len(md) <= limit
        assert "`env:GITHUB_TOKEN`" in md and "`env:FOO_RC3_KEY`" in md  # both rows survive
        assert_tables_intact(md)


@pytest.mark.parametrize("fmt", ["text", "markdown", "json"])
def test_untrusted_plan_shows_no_value_of_an_unmanaged_experiment(fmt: str) -> None:
    render = {"text": render_text, "markdown": render_markdown, "json": render_json}[fmt]
    out = render(plans.unmanaged_pinned())
    assert [v for v in plans.UNMANAGED_VALUES if v in out] == []
    assert "PR name" in out  # what the PR itself proposes is shown
    if fmt == "json":
        data = json.loads(out)
        assert data["values_hidden"] is True and data["experiments"][0]["values_hidden"] is True
    else:
        assert "not managed by expsync" in out


def test_untrusted_text_says_what_is_not_shown() -> None:
    out = render_text(plans.unmanaged_pinned())
    assert "its current values are not shown: an experiment not managed by expsync (--no-secrets)" in out
    assert 'name: (not shown: not managed by expsync) -> "PR name"' in out
    assert 'weight of variant "b": (not shown: not managed by expsync) -> 5' in out
    assert "(label and weight not shown; its versions go with it)" in out
