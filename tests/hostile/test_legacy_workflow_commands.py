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


def test_json_documents_on_stdout_carry_no_legacy_command_and_parse_to_the_same_values(tmp_path: Path) -> None:
    """``plan --format json`` (and ``validate --format json``) print to the CI log too: ``##[`` and
    every invisible character are JSON escapes there (``#\\u0023[``), which parse back to the
    same text, so a consumer and a saved plan see exactly what was planned."""
    import base64
    import json

    folder = tmp_path / "experiments"
    folder.mkdir()
    (folder / "a.yaml").write_text(DOC)
    env = {"GITHUB_ACTIONS": "true", "PARTNER_A_KEY": "sk-live-CANARY-legacy-0001",
           "EXPSYNC_DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite'}"}
    env.update(EXPSYNC_SECRET_REFS="env:PARTNER_A_KEY", BYOK_ENCRYPTION_KEY=base64.b64encode(b"k" * 32).decode())
    assert run_cli(["db", "init"], env=env).code == 0
    saved = tmp_path / "plan.json"
    r = run_cli(["plan", "--format", "json", "--out", str(saved), str(folder)], env=env)
    assert r.code == 0 and "##[" not in r.out, r.all
    doc = json.loads(r.out)
    assert doc["experiments"][0]["public_model_id"] == "partner/##[stop-commands]tok"
    assert "##[" not in saved.read_text()
    assert run_cli(["apply", "--yes", "--plan", str(saved), str(folder)], env=env).code == 0  # still applyable
    bad = folder / "b.yaml"
    bad.write_text(DOC.replace("key: a", "key: '##[error]b'").replace("weight: 1", "weight: -1"))
    v = run_cli(["validate", "--format", "json", str(folder)], env=env)
    assert v.code == 3 and "##[" not in v.out, v.all
    json.loads(v.out)


@pytest.mark.parametrize("text", ["##[add-mask]x", "a\u202eb", "c\x9bd", "e\U000e0041f", "tab\there", "#\u200b#[x"])
def test_json_document_escapes_only_inside_strings_and_round_trips(text: str) -> None:
    import json

    out = escape.json_document(json.dumps({"k": [text]}, indent=2, ensure_ascii=False))
    assert "##[" not in out and not escape.INVISIBLE.search(out.replace("\n", "")), out
    assert json.loads(out) == {"k": [text]}
