"""Imports point one way. Two checks of one rule:

* :data:`LAYERS` is the import-direction rule, as data: for every unit of ``src/expsync`` (a
  top-level module or a package folder) the other units and the third-party libraries it may
  import. The source is parsed, every ``import`` (also inside functions; ``if TYPE_CHECKING:``
  blocks excepted) is checked against its row, and a module without a row fails, so a new
  package must be placed in the table. README "Development" shows the same table (checked).
* A fresh interpreter imports each pure stage and looks at ``sys.modules``: what it pulls in
  transitively (this catches an import hidden in a package ``__init__``).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "expsync"


class Layer(NamedTuple):
    stage: str
    units: frozenset[str]
    libraries: frozenset[str]


def _layer(stage: str, units: str = "", libraries: str = "") -> Layer:
    return Layer(stage, frozenset(units.split()), frozenset(libraries.split()))


#: the ground floor: value types, codes, exit codes, settings, rules and gateway profiles (data);
#: importable by every unit
GROUND = "diagnostics errors settings model rules profiles credentials urls escape heap records"

#: unit -> what it may import. A unit is a top-level module (``crypto``) or a folder
#: (``plan/``); imports inside a unit are free. Order: from the ground floor up.
LAYERS: dict[str, Layer] = {
    "expsync": _layer("package map (`__init__`)"),
    "escape": _layer("escaping of user text per output sink"),
    "heap": _layer("the garbage collector's policy for one command"),
    "records_code/": _layer("generated: the methods dataclasses writes, precompiled"),
    "records": _layer("dataclass with its methods precompiled", "records_code/"),
    "diagnostics": _layer("diagnostic codes and values", "escape records"),
    "settings": _layer("the environment, read once", "records"),
    "errors": _layer("errors and exit codes", "diagnostics"),
    "model": _layer("frozen value types", "diagnostics records"),
    "rules": _layer("statuses, transitions, edit rules", "diagnostics model records"),
    "profiles": _layer("gateway versions and their rules (data)", "records"),
    "credentials": _layer("what a credential looks like, by name"),
    "urls": _layer("URLs shown with credentials masked", "credentials"),
    "weburl": _layer("the gateway's URL parser (WHATWG, Ada)", "records", "ada_url"),
    "config": _layer("which gateway profile a run uses", GROUND),
    "crypto": _layer("api key encryption (gateway format)", GROUND, "cryptography"),
    "keycompare": _layer("stored vs resolved keys", f"{GROUND} crypto"),
    "secrets/": _layer("secret references -> values", GROUND, "boto3 botocore hvac requests"),
    "desired/": _layer("YAML -> desired state", f"{GROUND} weburl secrets/", "yaml pydantic pydantic_core"),
    "state/": _layer("database -> actual state", GROUND, "sqlalchemy alembic psycopg orjson"),
    "migrations/": _layer("expsync's own tables (Alembic)", "state/", "alembic sqlalchemy"),
    "plan/": _layer("desired + actual -> plan (pure)", f"{GROUND} weburl", "deepdiff orjson"),
    "render/": _layer("plan -> text, JSON, markdown", f"{GROUND} plan/", "pydantic"),
    "cache/": _layer("outbox -> Redis", f"{GROUND} state/", "sqlalchemy redis"),
    "pipeline": _layer("read actual, compare keys, plan", f"{GROUND} crypto keycompare plan/ state/", "sqlalchemy"),
    "apply/": _layer("plan -> one transaction", f"{GROUND} crypto pipeline plan/ state/ cache/ secrets/",
                     "sqlalchemy"),
    "importer/": _layer("database -> YAML files", f"{GROUND} crypto desired/ state/", "sqlalchemy yaml"),
    "github": _layer("sticky pull-request comment (GitHub REST)", "errors records"),
    "cli": _layer("flags -> stages -> exit code",
                  f"{GROUND} expsync config crypto keycompare secrets/ desired/ state/ plan/ render/ cache/ "
                  "pipeline apply/ importer/ github", "click"),
}


def unit_of(module: str) -> str:
    """``expsync.plan.ops`` -> ``plan/``; ``expsync.cli`` -> ``cli``; ``expsync`` -> ``expsync``."""
    parts = module.split(".")
    if len(parts) == 1:
        return "expsync"
    return f"{parts[1]}/" if (SRC / parts[1]).is_dir() else parts[1]


def _module_name(path: Path) -> str:
    rel = path.relative_to(SRC.parent).with_suffix("")
    return ".".join(rel.parts).removesuffix(".__init__")


def _is_type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or (
        isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING")


def imports_of(tree: ast.AST, module: str) -> set[str]:
    """Absolute names imported anywhere in the module (relative imports resolved), except
    under ``if TYPE_CHECKING:``."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                pkg = module.split(".")[: -node.level] if not module.endswith("__init__") else module.split(".")
                base = ".".join([*pkg, base] if base else pkg)
            if base == "expsync":  # `from expsync import pipeline` imports expsync.pipeline
                subs = {a.name for a in node.names if (SRC / f"{a.name}.py").exists() or (SRC / a.name).is_dir()}
                found.update(f"expsync.{name}" for name in subs)
                if len(subs) < len(node.names):
                    found.add(base)
            else:
                found.add(base)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def violations(module: str, names: set[str]) -> list[str]:
    unit = unit_of(module)
    if unit not in LAYERS:
        return [f"{module}: unit {unit!r} has no row in LAYERS"]
    layer, out = LAYERS[unit], []
    for name in sorted(names):
        top = name.split(".")[0]
        if top == "expsync":
            other = unit_of(name)
            if other != unit and other not in layer.units:
                out.append(f"{module} imports {name} ({unit} may not import {other})")
        elif top not in sys.stdlib_module_names and top != "__future__" and top not in layer.libraries:
            out.append(f"{module} imports the library {top} ({unit} may not)")
    return out


def test_every_module_follows_the_import_direction_rule() -> None:
    problems = []
    for path in sorted(SRC.rglob("*.py")):
        module = _module_name(path)
        problems += violations(module, imports_of(ast.parse(path.read_text(encoding="utf-8")), module))
    assert problems == []


@pytest.mark.parametrize(("module", "source", "expected"), [
    ("expsync.plan.planner", "import sqlalchemy", ["expsync.plan.planner imports the library sqlalchemy (plan/ may not)"]),
    ("expsync.plan.planner", "def f():\n    from expsync.render import text", ["expsync.plan.planner imports "
                                                                              "expsync.render (plan/ may not import render/)"]),
    ("expsync.plan.planner", "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import sqlalchemy", []),
    ("expsync.render.text", "from ..plan import ops", []),
    ("expsync.state.reader", "from .. import render", ["expsync.state.reader imports expsync.render "
                                                       "(state/ may not import render/)"]),
    ("expsync.newstage", "import json", ["expsync.newstage: unit 'newstage' has no row in LAYERS"]),
])
def test_the_rule_catches_what_it_should(module: str, source: str, expected: list[str]) -> None:
    assert violations(module, imports_of(ast.parse(source), module)) == expected


def readme_units(units: frozenset[str]) -> list[str]:
    """How README writes a row's units: the ground floor as one word, then the others."""
    ground = frozenset(GROUND.split())
    shown = sorted(units - {"expsync"} - (ground if ground <= units else frozenset()))
    return (["ground floor"] if ground <= units else []) + shown or ["-"]


def test_readme_development_table_is_the_rule() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for unit, layer in LAYERS.items():
        folder = "`expsync/__init__.py`" if unit == "expsync" else (
            f"`expsync/{unit}`" if unit.endswith("/") else f"`expsync/{unit}.py`")
        allowed = ", ".join(readme_units(layer.units))
        libs = ", ".join(sorted(layer.libraries)) or "-"
        row = f"| {layer.stage} | {folder} | {allowed} | {libs} |"
        assert row in readme, f"README Development table lacks or differs on:\n{row}"


# ---- the transitive check, in a fresh interpreter -------------------------------------------

FORBIDDEN = {
    "expsync.plan": ["sqlalchemy", "redis", "click", "yaml", "psycopg", "boto3", "hvac", "expsync.render",
                     "expsync.state", "expsync.apply", "expsync.cache", "expsync.secrets.resolve"],
    "expsync.render.text": ["sqlalchemy", "redis", "click", "psycopg", "boto3", "hvac", "expsync.state", "expsync.apply"],
    "expsync.render.json": ["sqlalchemy", "redis", "click", "psycopg", "boto3", "hvac", "expsync.state", "expsync.apply"],
    "expsync.render.markdown": ["sqlalchemy", "redis", "click", "psycopg", "boto3", "hvac", "expsync.state", "expsync.apply"],
    "expsync.desired.loader": ["sqlalchemy", "redis", "click", "psycopg", "boto3", "hvac", "expsync.state", "expsync.plan"],
    "expsync.state.reader": ["redis", "click", "yaml", "expsync.plan", "expsync.render", "expsync.apply", "sqlalchemy"],
    # plan on Postgres reads through psycopg alone (expsync.state.connection)
    "expsync.pipeline": ["sqlalchemy", "alembic", "redis", "click", "yaml", "expsync.render", "expsync.apply"],
    "expsync.state.catalog": ["sqlalchemy"],
    "expsync.settings": ["sqlalchemy", "redis", "click", "yaml", "pydantic", "cryptography", "boto3", "hvac"],
    "expsync.errors": ["sqlalchemy", "redis", "click", "yaml", "pydantic", "cryptography", "boto3", "hvac"],
}


@pytest.mark.parametrize("module", sorted(FORBIDDEN))
def test_stage_does_not_import_its_downstream(module: str) -> None:
    code = (f"import sys, {module}; bad = [m for m in {FORBIDDEN[module]!r} if m in sys.modules]; "
            "print(bad); sys.exit(1 if bad else 0)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_units_named_in_the_rule_are_real_or_planned() -> None:
    """A row for a unit that does not exist is a typo (``rules`` is the ground-floor rules
    module the rules-table work adds)."""
    real = {unit_of(_module_name(p)) for p in SRC.rglob("*.py")}
    named = set(LAYERS) | {u for layer in LAYERS.values() for u in layer.units}
    assert named - real <= {"rules"}, named - real


