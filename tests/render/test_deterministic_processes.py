"""Same inputs, same bytes, whatever the process: plans are made and rendered in two fresh
interpreters with different ``PYTHONHASHSEED`` (which reorders every set and dict of strings
built from hashing) and the outputs are compared byte for byte (spec §5.7)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import sqlalchemy as sa

from tests.integration.apply_support import cli_env, subprocess_env

REPO = Path(__file__).resolve().parents[2]
SEEDS = ("1", "4242")

#: every hand-built plan (planner over hand-built snapshots) in every format, one digest each
_RENDER_ALL = """
import hashlib
from expsync.render.json import render_json
from expsync.render.markdown import render_markdown
from expsync.render.text import render_text
from tests.render import plans

for name in sorted(plans.ALL):
    plan = plans.ALL[name]()
    for render in (render_text, render_json, render_markdown):
        print(name, render.__name__, hashlib.sha256(render(plan).encode()).hexdigest())
big = plans.hot_swaps(40)
print("hot_swaps", hashlib.sha256(render_json(big).encode()).hexdigest())
"""


def _python(code: str, seed: str) -> str:
    env = subprocess_env({"PYTHONHASHSEED": seed})
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    return r.stdout


def test_hand_built_plans_render_the_same_bytes_under_different_hash_seeds() -> None:
    outputs = [_python(_RENDER_ALL, seed) for seed in SEEDS]
    assert outputs[0].count("\n") > 30  # every plan and format was rendered
    assert outputs[0] == outputs[1]


DOC = """\
key: {key}
public_model_id: partner/{key}
name: {name}
status: {status}
variants:
  - label: alpha
    weight: 3
    upstream:
      internal_id: {key}-a
      base_url: https://api.partner.example/v1
      extra_body: {{temperature: 0.2, top_p: 0.9, tags: [x, y], nested: {{b: 1, a: 2}}}}
    api_key: env:KEY_ONE
  - label: beta
    weight: 1
    upstream:
      internal_id: {key}-b
      base_url: https://api.partner.example/v1
    api_key: env:KEY_TWO
"""


#: ``expsync plan --format F FOLDER`` for every format in one process; one digest per format
_PLAN_ALL = """
import contextlib, hashlib, io, sys
from expsync.cli import main

for fmt in ("text", "json", "markdown"):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        try:
            main(["plan", "--format", fmt, sys.argv[1]])
        except SystemExit as e:
            assert e.code in (0, 4), (e.code, out.getvalue())
    assert "zeta" in out.getvalue()
    print(fmt, hashlib.sha256(out.getvalue().encode()).hexdigest())
"""


def test_cli_plan_is_the_same_bytes_under_different_hash_seeds(tmp_path: Path, pg_engine: sa.Engine) -> None:
    """The whole pipeline (loader, reader, planner, renderers) against one database."""
    folder = tmp_path / "experiments"
    folder.mkdir()
    for i, (key, status) in enumerate([("zeta", "active"), ("alpha", "draft"), ("mid", "paused"), ("omega", "draft")]):
        (folder / f"{key}.yaml").write_text(DOC.format(key=key, name=f"Experiment {i}", status=status))
    env = cli_env(pg_engine, {"KEY_ONE": "sk-one-determinism", "KEY_TWO": "sk-two-determinism"}, NO_COLOR="1")
    outputs = []
    for seed in SEEDS:
        r = subprocess.run([sys.executable, "-c", _PLAN_ALL, str(folder)], cwd=tmp_path, capture_output=True, text=True,
                           env=subprocess_env(env | {"PYTHONHASHSEED": seed}), stdin=subprocess.DEVNULL)
        assert r.returncode == 0, r.stdout + r.stderr
        outputs.append(r.stdout)
    assert outputs[0].count("\n") == 3
    assert outputs[0] == outputs[1]
