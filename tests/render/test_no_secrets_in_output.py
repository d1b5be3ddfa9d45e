"""No renderer can print a key: a plan carries KeyChange and a reference, never a value (spec §9)."""

from __future__ import annotations

import hmac
import json

import pytest

from expsync.model import KeyChange, Secret
from expsync.render.json import render_json
from expsync.render.markdown import render_markdown
from expsync.render.text import render_text
from tests.render import plans

CANARY_NEW = "sk-canary-NEW-7f3a9c1e5b2d4f60"
CANARY_OLD = "sk-canary-OLD-0a1b2c3d4e5f6a7b"
#: what a secret store resolved, and what decrypting the current version gave
RESOLVED = {"env:FOO_RC1_KEY": Secret(CANARY_NEW), "env:FOO_RC2_KEY": Secret(CANARY_OLD)}
STORED = {"rc1": Secret(CANARY_OLD), "rc2": Secret(CANARY_OLD)}


def compare(ref: str, variant: str) -> KeyChange:
    """What the CLI does before planning: constant-time comparison of resolved vs stored."""
    same = hmac.compare_digest(RESOLVED[ref].reveal().encode(), STORED[variant].reveal().encode())
    return KeyChange.UNCHANGED if same else KeyChange.ROTATED


def all_outputs() -> dict[str, str]:
    kc = compare("env:FOO_RC1_KEY", "rc1")
    assert kc is KeyChange.ROTATED and compare("env:FOO_RC2_KEY", "rc2") is KeyChange.UNCHANGED
    plan = plans.key_rotation(kc)
    return {
        "text": render_text(plan),
        "text-colour": render_text(plan, color=True),
        "json": render_json(plan),
        "markdown": render_markdown(plan),
        "markdown-degraded": render_markdown(plan, max_chars=700),
    }


@pytest.mark.parametrize("fmt", ["text", "text-colour", "json", "markdown", "markdown-degraded"])
def test_rotated_key_is_reported_but_never_printed(fmt: str) -> None:
    out = all_outputs()[fmt]
    assert ("Detail reduced" in out) if fmt == "markdown-degraded" else ("rotated" in out)
    assert "sk-" not in out
    for canary in (CANARY_NEW, CANARY_OLD):
        secret_part = canary.removeprefix("sk-canary-")
        windows = {secret_part[i : i + 6] for i in range(len(secret_part) - 5)}
        assert not any(w in out for w in windows), f"part of a key leaked into {fmt}"


def test_json_holds_key_references_only() -> None:
    doc = json.loads(all_outputs()["json"])
    refs = [op["api_key_ref"] for op in doc["operations"] if op["type"] == "insert_version"]
    assert refs == ["env:FOO_RC1_KEY"]

    def keys(node: object) -> set[str]:
        if isinstance(node, dict):
            return set(node) | {k for v in node.values() for k in keys(v)}
        if isinstance(node, list):
            return {k for v in node for k in keys(v)}
        return set()

    suspicious = {k for k in keys(doc) if "key" in k and k not in
                  {"key", "experiment_key", "variant_key", "key_change", "api_key_ref", "cache_keys"}}
    assert suspicious == set()
