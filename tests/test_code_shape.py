"""Shape rules for src/: short functions, and the planner a short composition."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "expsync"


def _long_functions() -> list[str]:
    out = []
    for path in sorted(SRC.rglob("*.py")):
        text = path.read_text()
        lines = text.splitlines()
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno is not None:
                length = node.end_lineno - node.lineno + 1
                # an exception must say why, in a comment right above the def
                why = lines[node.lineno - 2].strip() if node.lineno > 1 else ""
                if length > 60 and not why.startswith("# longer than 60 lines:"):
                    out.append(f"{path.relative_to(SRC)}:{node.lineno} {node.name} ({length} lines)")
    return out


def test_no_function_in_src_is_over_60_lines_without_saying_why() -> None:
    assert _long_functions() == []


def test_planner_is_a_short_composition() -> None:
    assert len((SRC / "plan" / "planner.py").read_text().splitlines()) < 200
