"""No renderer can print a key: a plan carries KeyChange and a reference, never a value (spec §9)."""

from __future__ import annotations

import json

import pytest

from expsync.model import KeyChange, Secret
from expsync.render.json import render_json
from expsync.render.markdown import render_markdown
from expsync.render.text import render_text

CANARY_NEW = "sk-canary-NEW-7f3a9c1e5b2d4f60"
CANARY_OLD = "sk-canary-OLD-0a1b2c3d4e5f6a7b"


def all_outputs() -> dict[str, str]:
    """The real pipeline minus the database: encrypted stored keys, the real key comparison
    (decrypt + constant time) and the real planner, so a change that let a value flow from
    secrets into the plan would show up in every rendered format."""
    import dataclasses

    from expsync.crypto import encrypt_api_key
    from expsync.keycompare import compare_keys
    from expsync.model import SecretRef, Status
    from tests.plan.builders import NOW, actual, actual_of, desired, dexp, dvar
    from expsync.plan import PlanOptions, plan

    byok = bytes(range(32))
    d = dexp("foo", status=Status.ACTIVE, variants=(dvar("rc1", ref="env:FOO_RC1_KEY"), dvar("rc2", ref="env:FOO_RC2_KEY")))
    a = actual_of(d)
    a = dataclasses.replace(a, variants=tuple(
        dataclasses.replace(v, current=dataclasses.replace(v.current, encrypted_api_key=encrypt_api_key(CANARY_OLD, byok)))
        for v in a.variants))
    secrets = {SecretRef("env", "FOO_RC1_KEY"): Secret(CANARY_NEW), SecretRef("env", "FOO_RC2_KEY"): Secret(CANARY_OLD)}
    kc, diags = compare_keys(desired(d), actual(a, managed=(d,)), secrets, byok)
    assert not diags and kc == {("foo", "rc1"): KeyChange.ROTATED, ("foo", "rc2"): KeyChange.UNCHANGED}
    p = plan(desired(d), actual(a, managed=(d,)), now=NOW, key_changes=kc, options=PlanOptions())
    return {
        "text": render_text(p),
        "text-colour": render_text(p, color=True),
        "json": render_json(p),
        "markdown": render_markdown(p),
        "markdown-degraded": render_markdown(p, max_chars=700),
        "repr": repr(p),
    }


@pytest.mark.parametrize("fmt", ["text", "text-colour", "json", "markdown", "markdown-degraded", "repr"])
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
