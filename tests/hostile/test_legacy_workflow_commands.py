"""The runner's legacy workflow-command form ``##[command]data`` is recognised *anywhere* in a
log line (actions/runner ``ActionCommand.TryParse``: ``message.IndexOf("##[")``), not only at
its start like ``::command::``. A label or public id holding ``##[stop-commands]tok`` stopped
the runner from processing every later command of the step (the security annotations among
them); ``##[add-mask]``, ``##[group]`` and ``##[error]`` masked, folded or faked log text."""

from __future__ import annotations

from pathlib import Path

import pytest

from expsync import escape
from tests.cli_helpers import run_cli

DOC = """\
key: a
public_model_id: "partner/##[stop-commands]tok"
name: "n ##[error]fake"
status: active
variants:
  - label: "##[add-mask]evil.example"
    weight: 1
    upstream:
      internal_id: a1
      base_url: https://evil.example/v1
      extra_body: {"##[group]k": 1}
    api_key: env:PARTNER_A_KEY
"""


@pytest.mark.parametrize("sink", [escape.terminal, escape.markdown_code, escape.workflow_data,
                                  escape.workflow_property])
def test_no_sink_passes_the_legacy_command_prefix(sink: object) -> None:
    for text in ("##[add-mask]x", "a ##[stop-commands]t", "###[group]", "##[##[x"):
        assert "##[" not in sink(text), (sink, text)  # type: ignore[operator]


def test_ordinary_hashes_and_brackets_are_untouched() -> None:
    assert escape.terminal("#1 [x] ## a") == "#1 [x] ## a"


def test_a_plan_and_validate_in_ci_print_no_legacy_command(tmp_path: Path) -> None:
    folder = tmp_path / "experiments"
    folder.mkdir()
    (folder / "a.yaml").write_text(DOC)
    env = {"GITHUB_ACTIONS": "true", "PARTNER_A_KEY": "sk-live-CANARY-legacy-0001",
           "EXPSYNC_DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite'}"}
    assert run_cli(["db", "init"], env=env).code == 0
    for args in (["validate", str(folder)], ["plan", str(folder)], ["plan", "--format", "markdown", str(folder)]):
        r = run_cli(args, env=env)
        assert r.code == 0 and "Traceback" not in r.all, (args, r.all)
        assert "##[" not in r.out and "##[" not in r.err, (args, r.all)
        assert "#\\x23[add-mask]evil.example" in r.out + r.err, (args, r.all)  # still visible
