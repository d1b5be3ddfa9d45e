"""Secret-store clients load only when a reference of their kind is present: a plan over
``env:``/``file:`` references imports neither boto3/botocore nor hvac (checked in a fresh
interpreter, on the embedded database)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.gateway import TEST_KEY_B64

HEAVY = ("boto3", "botocore", "hvac")

SCRIPT = """
import json, sys
from expsync.cli import main
try:
    main(sys.argv[1:])
except SystemExit as e:
    code = e.code
print(json.dumps({"code": code, "loaded": sorted(m for m in %r if m in sys.modules)}))
""" % (HEAVY,)


def run(tmp_path: Path, ref: str, extra_env: dict[str, str]) -> dict[str, object]:
    exp = tmp_path / "experiments"
    exp.mkdir(exist_ok=True)
    (exp / "foo.yaml").write_text(
        "key: foo\npublic_model_id: partner/foo\nname: foo\nvariants:\n"
        "  - label: a\n    weight: 1\n    upstream: {internal_id: m, base_url: 'https://api.example/v1'}\n"
        f"    api_key: {ref}\n")
    (tmp_path / "key.txt").write_text("sk-file-0001\n")
    env = {"PATH": "/usr/bin:/bin", "PARTNER_KEY": "sk-env-0001", "BYOK_ENCRYPTION_KEY": TEST_KEY_B64, **extra_env}
    r = subprocess.run([sys.executable, "-c", SCRIPT, "plan", "experiments"], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=120)
    result: dict[str, object] = json.loads(r.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.parametrize("ref", ["env:PARTNER_KEY", "file:key.txt"])
def test_env_and_file_plans_import_no_store_client(tmp_path: Path, ref: str) -> None:
    assert run(tmp_path, ref, {}) == {"code": 0, "loaded": []}


def test_an_aws_reference_loads_botocore_only(tmp_path: Path) -> None:
    # no region: the reference fails (E406), but only after the AWS client was needed
    out = run(tmp_path, "aws-sm:partners/foo", {})
    assert out["code"] == 3 and "botocore" in out["loaded"] and "hvac" not in out["loaded"]  # type: ignore[operator]


def test_a_vault_reference_loads_hvac_only(tmp_path: Path) -> None:
    out = run(tmp_path, "vault:secret/partners/foo#k", {})
    assert out["code"] == 3 and out["loaded"] == ["hvac"]
