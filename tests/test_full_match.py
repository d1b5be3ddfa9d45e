"""Regular expressions that validate input match the whole string.

``re.match(r"^[a-z]+$", "abc\\n")`` succeeds: ``$`` also matches before a trailing newline and
``match`` anchors only the start. So ``src/`` uses ``re.fullmatch`` (or ``pattern.fullmatch``)
and never ``re.match`` or a ``.match`` on a compiled pattern; the check walks the source tree.
"""

from __future__ import annotations

import ast
import uuid
from pathlib import Path

import pytest

from tests.cli_helpers import run_cli

SRC = Path(__file__).resolve().parents[1] / "src" / "expsync"


def _partial_matches(tree: ast.AST) -> list[int]:
    """Lines calling ``re.match(...)`` or ``<compiled>.match(...)`` (a name bound to
    ``re.compile``)."""
    compiled = {
        t.id
        for node in ast.walk(tree) if isinstance(node, (ast.Assign, ast.AnnAssign)) and isinstance(node.value, ast.Call)
        and isinstance(node.value.func, ast.Attribute) and node.value.func.attr == "compile"
        for t in (node.targets if isinstance(node, ast.Assign) else [node.target]) if isinstance(t, ast.Name)
    }
    return [
        node.lineno for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "match"
        and isinstance(node.func.value, ast.Name) and node.func.value.id in {"re", *compiled}
    ]


def test_source_uses_full_matches_only() -> None:
    found = {str(p.relative_to(SRC)): lines for p in sorted(SRC.rglob("*.py"))
             if (lines := _partial_matches(ast.parse(p.read_text(encoding="utf-8"))))}
    assert found == {}


def test_the_check_notices_a_partial_match() -> None:
    assert _partial_matches(ast.parse("import re\nre.match(r'^a$', x)\n")) == [2]
    assert _partial_matches(ast.parse("import re\nP = re.compile('a')\nP.match(x)\n")) == [3]
    assert _partial_matches(ast.parse("import re\nre.fullmatch('a', x)\n")) == []


@pytest.mark.parametrize("key", ["abc\n", "abc\r\n", "\nabc", "ab c", "-abc"])
def test_import_refuses_a_key_that_only_partly_matches(key: str, tmp_path: Path) -> None:
    out = tmp_path / "out"
    r = run_cli(["import", "--id", str(uuid.uuid4()), "--key", key, "--out-dir", str(out)],
                env={"EXPSYNC_DATABASE_URL": "postgresql://127.0.0.1:1/never-reached"}, cwd=tmp_path)
    assert r.code == 3 and "--key needs exactly one --id and must match" in r.err, r.all
    assert not out.exists()


def test_an_id_pin_with_a_trailing_newline_is_not_an_admin_uuid() -> None:
    from pydantic_core import PydanticCustomError

    from expsync.desired.schema import _admin_uuid

    good = "0b7e7dd4-1b1c-4c8e-9a44-1d8f0d7f3a10"
    assert _admin_uuid(good) == good
    with pytest.raises(PydanticCustomError):
        _admin_uuid(good + "\n")
