"""Documents and a validate call shared by the gateway-profile tests."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from expsync.desired.loader import LoadOptions, load_desired
from expsync.diagnostics import Diagnostic

BASE_DOC: dict[str, Any] = {
    "key": "foo",
    "public_model_id": "partner/preview-foo",
    "name": "Foo",
    "status": "draft",
    "variants": [
        {"label": "rc1", "weight": 1,
         "upstream": {"internal_id": "foo-rc1", "base_url": "https://api.partner.example/v1"},
         "api_key": "env:FOO_KEY"},
        {"label": "rc2", "weight": 1,
         "upstream": {"internal_id": "foo-rc2", "base_url": "https://api.partner.example/v1"},
         "api_key": "env:FOO_KEY"},
    ],
}


#: valid in 2026-05 only (opencode_settings in an upstream)
ONLY_05 = """\
key: foo
public_model_id: partner/foo
name: Foo
variants:
  - label: a
    weight: 1
    upstream:
      internal_id: m
      base_url: https://api.partner.example/v1
      opencode_settings: {ai_sdk_provider: anthropic}
    api_key: env:K
"""


def doc(**top: Any) -> dict[str, Any]:
    d = copy.deepcopy(BASE_DOC)
    d.update(top)
    return d


def with_upstream(**fields: Any) -> dict[str, Any]:
    d = doc()
    d["variants"][0]["upstream"].update(fields)
    return d


def validate(tmp_path: Path, document: dict[str, Any] | str, profile: str) -> list[Diagnostic]:
    f = tmp_path / "exp.yaml"
    f.write_text(document if isinstance(document, str) else yaml.safe_dump(document, sort_keys=False,
                                                                              allow_unicode=True), encoding="utf-8")
    _, diags = load_desired([str(f)], LoadOptions(profile=profile))
    return diags


def codes(diags: list[Diagnostic]) -> list[str]:
    return [d.code for d in diags]
