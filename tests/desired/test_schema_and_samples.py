"""The committed JSON Schema equals the generated one, and the samples validate against it."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import yaml

import pytest

from expsync.desired.schema import json_schema, schema_file_name
from expsync.profiles import NEWEST, PROFILES
from tests.cli_helpers import run_cli

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_committed_schema_matches_code(profile: str) -> None:
    committed = json.loads((ROOT / "schemas" / schema_file_name(profile)).read_text())
    assert committed == json_schema(profile), (
        f"run: expsync schema --gateway-profile {profile} > schemas/{schema_file_name(profile)}")


def test_one_committed_schema_per_profile() -> None:
    files = {p.name for p in (ROOT / "schemas").glob("experiment*.schema.json")}
    assert files == {schema_file_name(p) for p in PROFILES}


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_schema_command_prints_the_schema(profile: str) -> None:
    r = run_cli(["schema", "--gateway-profile", profile])
    assert r.code == 0 and json.loads(r.out) == json_schema(profile)
    assert json.loads(r.out)["$schema"] == "http://json-schema.org/draft-07/schema#"


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_samples_validate_with_cli_and_schema(profile: str) -> None:
    r = run_cli(["validate", "--gateway-profile", profile], cwd=ROOT)
    assert r.code == 0, r.all
    samples = sorted((ROOT / "experiments").glob("*.yaml"))
    assert len(samples) >= 3
    validator = jsonschema.Draft7Validator(json_schema(profile))
    statuses = set()
    for f in samples:
        assert f.read_text().startswith(f"# yaml-language-server: $schema=../schemas/{schema_file_name(NEWEST)}")
        doc = yaml.safe_load(f.read_text())
        validator.validate(doc)
        statuses.add((doc.get("status", "draft"), doc.get("archived", False)))
    assert {("draft", False), ("active", False), ("completed", True)} <= statuses


def test_schema_refuses_unknown_upstream_field() -> None:
    validator = jsonschema.Draft7Validator(json_schema())
    doc = yaml.safe_load((ROOT / "experiments" / "foo-rc-bakeoff.yaml").read_text())
    doc["variants"][0]["upstream"]["api_key"] = "x"
    assert list(validator.iter_errors(doc))


def test_readme_documents_every_code() -> None:
    from expsync.diagnostics import CODES

    readme = (ROOT / "README.md").read_text()
    import re

    documented = set(re.findall(r"^\| `([EW]\d{3})` \|", readme, re.M))
    assert documented == set(CODES), (set(CODES) - documented, documented - set(CODES))


def test_readme_codes_section_is_what_the_script_generates() -> None:
    """scripts/readme_codes.py runs (every code prefix has a group title) and the README's codes
    section is exactly its output, titles and hints included."""
    import importlib.util
    import re

    spec = importlib.util.spec_from_file_location("readme_codes", ROOT / "scripts" / "readme_codes.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    readme = (ROOT / "README.md").read_text()
    section = re.search(r"<!-- codes:start -->\n(.*?)<!-- codes:end -->", readme, re.S)
    assert section is not None
    assert section.group(1) == module.table() + "\n", "run: .venv/bin/python scripts/readme_codes.py"


def test_every_environment_variable_read_in_src_is_documented() -> None:
    """README "Configuration" (or docs/secrets.md for the secret stores' own variables) names
    every variable the code reads."""
    import re

    src = "\n".join(p.read_text() for p in (ROOT / "src" / "expsync").rglob("*.py"))
    read = set(re.findall(r'(?:environ|env)(?:\.get\(|\[)"([A-Z][A-Z0-9_]+)"|envvar="([A-Z][A-Z0-9_]+)"', src))
    names = {a or b for a, b in read}
    readme = (ROOT / "README.md").read_text()
    config = readme.split("### Configuration", 1)[1].split("\n### ", 1)[0]
    stores = (ROOT / "docs" / "secrets.md").read_text()
    assert names, "the pattern finds the variables"
    assert sorted(n for n in names if f"`{n}`" not in config and n not in stores) == []
