"""Imports point one way (cli -> stages): each stage is checked in a fresh interpreter."""

from __future__ import annotations

import subprocess
import sys

import pytest

FORBIDDEN = {
    "expsync.plan": ["sqlalchemy", "redis", "click", "yaml", "psycopg", "boto3", "hvac", "expsync.render",
                     "expsync.state", "expsync.apply", "expsync.cache", "expsync.secrets.resolve"],
    "expsync.render.text": ["sqlalchemy", "redis", "click", "psycopg", "boto3", "hvac", "expsync.state", "expsync.apply"],
    "expsync.render.json": ["sqlalchemy", "redis", "click", "psycopg", "boto3", "hvac", "expsync.state", "expsync.apply"],
    "expsync.render.markdown": ["sqlalchemy", "redis", "click", "psycopg", "boto3", "hvac", "expsync.state", "expsync.apply"],
    "expsync.desired.loader": ["sqlalchemy", "redis", "click", "psycopg", "boto3", "hvac", "expsync.state", "expsync.plan"],
    "expsync.state.reader": ["redis", "click", "yaml", "expsync.plan", "expsync.render", "expsync.apply"],
}


@pytest.mark.parametrize("module", sorted(FORBIDDEN))
def test_stage_does_not_import_its_downstream(module: str) -> None:
    code = (f"import sys, {module}; bad = [m for m in {FORBIDDEN[module]!r} if m in sys.modules]; "
            "print(bad); sys.exit(1 if bad else 0)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
