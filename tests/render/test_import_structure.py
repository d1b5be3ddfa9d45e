"""`expsync validate` renders diagnostics without importing the planner, and builds the
document validator of the gateway profile in use only (imported modules and built validators
are counted in a fresh interpreter, never timed)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.integration.apply_support import subprocess_env

REPO = Path(__file__).resolve().parents[2]

_WRAPPER = """
import json, sys
out = sys.argv[1]
sys.argv = ["expsync", *sys.argv[2:]]
try:
    from expsync.cli import main
    main()
finally:
    from expsync.desired.schema import validator
    built = validator.cache_info().currsize
    validator("2026-05")  # builds nothing more only if the one built was this profile's
    with open(out, "w") as f:
        json.dump({"modules": sorted(m for m in sys.modules if m.startswith(("expsync", "pydantic"))),
                   "built": built, "after": validator.cache_info().currsize}, f)
"""


def test_validate_imports_no_plan_module_and_builds_one_document_validator(tmp_path: Path) -> None:
    out = tmp_path / "seen.json"
    r = subprocess.run([sys.executable, "-c", _WRAPPER, str(out), "validate", "--gateway-profile", "2026-05",
                        "experiments"], cwd=REPO,
                       capture_output=True, text=True, stdin=subprocess.DEVNULL,
                       env=subprocess_env({"EXPSYNC_DATABASE_URL": None, "EXPSYNC_REDIS_URL": None}))
    assert r.returncode == 0, r.stdout + r.stderr
    seen = json.loads(out.read_text())
    assert "expsync.render.diagnostics" in seen["modules"]
    assert [m for m in seen["modules"] if m.startswith(("expsync.plan", "expsync.render.common"))] == []
    # one pydantic-core validator, the chosen profile's, and none of pydantic's model machinery
    assert seen["built"] == seen["after"] == 1, seen
    assert "pydantic_core" in seen["modules"]
    assert [m for m in seen["modules"] if m == "pydantic" or m.startswith("pydantic.")] == [], seen["modules"]


def test_render_helpers_are_still_importable_from_the_package() -> None:
    from expsync import render
    from expsync.render import common

    assert all(getattr(render, n) is getattr(common, n) for n in render.__all__)


_JSON_MODELS = """
import json, sys
sys.path.insert(0, ".")
import expsync.render.json as render_json
from pydantic import BaseModel

def built():
    out, todo = [], [BaseModel]
    while todo:
        for sub in todo.pop().__subclasses__():
            todo.append(sub)
            if sub.__module__ == "expsync.render.json" and sub.__dict__.get("__pydantic_complete__"):
                out.append(sub.__name__)
    return sorted(out)

on_import = built()
from tests.render.plans import hot_swap_on_active
render_json.render_json(hot_swap_on_active())
print(json.dumps({"on_import": on_import, "after_render": "PlanOut" in built()}))
"""


def test_importing_the_json_format_builds_no_validator() -> None:
    """The CLI imports every format; a text plan must not pay for the JSON models' validators
    (they are built on the first JSON render)."""
    r = subprocess.run([sys.executable, "-c", _JSON_MODELS], cwd=REPO, capture_output=True, text=True, check=True)
    assert json.loads(r.stdout) == {"on_import": [], "after_render": True}
