"""Adopting an experiment the admin UI created (an ``id:`` pin) with ``api_key`` pointing at
another partner's reference: the key stored for the variant is replaced by a key expsync never
applied there. Before the fix no plan format listed it among the security-relevant changes
(an adopted variant has no applied reference to compare with)."""

from __future__ import annotations

import json
from pathlib import Path

import sqlalchemy as sa

from tests.cli_helpers import run_cli
from tests.integration.gateway import TEST_KEY_B64, admin_add_variant, admin_add_version, admin_create_experiment

BASE = "https://api.bar.example/v1"
BAR_KEY, OTHER_KEY = "sk-live-CANARY-bar-7301", "sk-live-CANARY-other-7302"


def test_adopting_with_another_partners_key_is_listed_first_in_every_format(tmp_path: Path,
                                                                           pg_engine: sa.Engine) -> None:
    with pg_engine.begin() as c:
        e = admin_create_experiment(c, "partner/ui", "UI")
        v = admin_add_variant(c, e, "one", 1)
        admin_add_version(c, v, {"internal_id": "m1", "base_url": BASE}, BAR_KEY)
    folder = tmp_path / "experiments"
    folder.mkdir()
    (folder / "ui.yaml").write_text(f"""\
id: {e}
key: ui
public_model_id: partner/ui
name: UI
status: draft
variants:
  - id: {v}
    label: one
    weight: 1
    upstream:
      internal_id: m1
      base_url: {BASE}
    api_key: env:PARTNER_OTHER_KEY
""")
    env = {"EXPSYNC_DATABASE_URL": pg_engine.url.render_as_string(hide_password=False),
           "BYOK_ENCRYPTION_KEY": TEST_KEY_B64, "PARTNER_BAR_KEY": BAR_KEY, "PARTNER_OTHER_KEY": OTHER_KEY,
           "EXPSYNC_SECRET_REFS": "env:PARTNER_*_KEY", "GITHUB_ACTIONS": "true"}
    outs = {f: run_cli(["plan", "--format", f, str(folder)], env=env) for f in ("text", "markdown", "json")}
    for r in outs.values():
        assert r.code == 0 and "Traceback" not in r.all, r.all
        shown = "\n".join(x for x in r.all.splitlines() if not x.startswith("::add-mask::"))
        assert BAR_KEY not in shown and OTHER_KEY not in shown
        assert "::warning file=" in r.err and "a stored key expsync did not apply" in r.err, r.err
    wording = "api key reference (a stored key expsync did not apply) -> env:PARTNER_OTHER_KEY"
    assert outs["text"].out.startswith(f'Security-relevant changes (1):\n    ! experiment "ui", variant "one": {wording}')
    md = outs["markdown"].out
    assert "api key reference (a stored key expsync did not apply) -\\> `env:PARTNER_OTHER_KEY`" in md
    assert md.index("Security-relevant changes (1)") < md.index("#### Experiments")
    (item,) = json.loads(outs["json"].out)["security"]
    assert (item["code"], item["api_key_ref_before"], item["api_key_ref"]) == ("key_ref_changed", None,
                                                                              "env:PARTNER_OTHER_KEY")
