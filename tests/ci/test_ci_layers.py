"""The CI modules keep the one-way import graph: each is checked in a fresh interpreter."""

from __future__ import annotations

import subprocess
import sys

import pytest

FORBIDDEN = {
    # the GitHub client: standard library HTTP only, no stage, no CLI
    "expsync.github": ["sqlalchemy", "redis", "click", "yaml", "psycopg", "boto3", "hvac", "expsync.state",
                       "expsync.plan", "expsync.render", "expsync.apply", "expsync.secrets.resolve"],
    # saved plan -> Plan: a render-side module, never a session or a secret store
    "expsync.render.load": ["sqlalchemy", "redis", "click", "psycopg", "boto3", "hvac", "expsync.state",
                            "expsync.apply", "expsync.secrets.resolve"],
    "expsync.render.history": ["sqlalchemy", "redis", "click", "psycopg", "expsync.state", "expsync.apply"],
    "expsync.state.audit": ["redis", "click", "yaml", "expsync.plan", "expsync.render", "expsync.apply"],
}


@pytest.mark.parametrize("module", sorted(FORBIDDEN))
def test_ci_module_does_not_import_its_downstream(module: str) -> None:
    code = (f"import sys, {module}; bad = [m for m in {FORBIDDEN[module]!r} if m in sys.modules]; "
            "print(bad); sys.exit(1 if bad else 0)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
