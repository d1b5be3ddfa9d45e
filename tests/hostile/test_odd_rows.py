"""Rows "the admin UI" (or a manual fix) wrote in shapes expsync must survive: a diagnostic,
never a traceback; and credentials another writer stored are never printed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.cli_helpers import run_cli
from tests.integration.gateway import TEST_KEY_B64, admin_add_variant, admin_add_version, admin_create_experiment

BASE = "https://api.partner.example/v1"
KEY = "sk-live-CANARY-odd-0451"


def _env(engine: sa.Engine, **extra: str) -> dict[str, str]:
    return {"EXPSYNC_DATABASE_URL": engine.url.render_as_string(hide_password=False),
            "BYOK_ENCRYPTION_KEY": TEST_KEY_B64, "PARTNER_KEY": KEY, **extra}


def _pinned_yaml(tmp_path: Path, exp_id: object, var_id: object, *, base_url: str = BASE) -> Path:
    folder = tmp_path / "experiments"
    folder.mkdir()
    (folder / "x.yaml").write_text(f"""\
id: {exp_id}
key: x
public_model_id: partner/x
name: X
status: draft
variants:
  - id: {var_id}
    label: one
    weight: 1
    upstream:
      internal_id: m1
      base_url: {base_url}
    api_key: env:PARTNER_KEY
""")
    return folder


@pytest.mark.parametrize("upstream", ["null", "[1, 2]", '"text"', "7"])
def test_a_stored_upstream_that_is_not_an_object_is_a_diagnostic(tmp_path: Path, pg_engine: sa.Engine,
                                                                 upstream: str) -> None:
    with pg_engine.begin() as c:
        e = admin_create_experiment(c, "partner/x", "X")
        v = admin_add_variant(c, e, "one", 1)
        ver = admin_add_version(c, v, {"internal_id": "m1", "base_url": BASE}, KEY)
        c.execute(sa.text("UPDATE model_experiment_variant_version SET upstream = CAST(:u AS jsonb) WHERE id = :i"),
                  {"u": upstream, "i": ver})
    folder = _pinned_yaml(tmp_path, e, v)
    for args in (["plan", str(folder)], ["plan", "--no-secrets", str(folder)],
                 ["import", "--all", "--out-dir", str(tmp_path / "imported")]):
        r = run_cli(args, env=_env(pg_engine))
        assert r.code == 3 and "E130" in r.err and str(ver) in r.err, (args, r.all)
        assert "Traceback" not in r.all and "unexpected error" not in r.all
    assert not (tmp_path / "imported").exists()


def test_stored_metadata_that_is_not_an_object_is_a_diagnostic(tmp_path: Path, pg_url: str) -> None:
    env = {"EXPSYNC_DATABASE_URL": pg_url, "BYOK_ENCRYPTION_KEY": TEST_KEY_B64, "PARTNER_KEY": KEY}
    assert run_cli(["db", "init", "--gateway-profile", "2026-06"], env=env).code == 0
    engine = sa.create_engine(pg_url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.begin() as c:
            e = admin_create_experiment(c, "partner/x", "X")
            v = admin_add_variant(c, e, "one", 1)
            admin_add_version(c, v, {"internal_id": "m1", "base_url": BASE}, KEY)
            c.execute(sa.text("UPDATE model_experiment SET metadata = '\"oops\"' WHERE id = :i"), {"i": e})
    finally:
        engine.dispose()
    r = run_cli(["plan", str(_pinned_yaml(tmp_path, e, v))], env=env)
    assert r.code == 3 and "E130" in r.err and str(e) in r.err, r.all


@pytest.mark.parametrize("extra", [{}, {"gone": None}])
def test_credentials_another_writer_stored_are_masked_in_every_format(tmp_path: Path, pg_engine: sa.Engine,
                                                                      extra: dict) -> None:
    """``extra``: a stored null the YAML drops makes the diff show the whole ``extra_body``
    (a null is not an absent field), credentials inside it still masked."""
    with pg_engine.begin() as c:
        e = admin_create_experiment(c, "partner/x", "X")
        v = admin_add_variant(c, e, "one", 1)
        admin_add_version(c, v, {"internal_id": "m1", "base_url": "https://u:PWSEKRET@h.example/v1?api_key=QSEKRET",
                                 "extra_body": {"headers": {"Authorization": "Bearer HSEKRET"}, "n": [1], **extra},
                                 "extra_headers": {"X-Api-Key": "XSEKRET"}}, KEY)
    folder = _pinned_yaml(tmp_path, e, v)
    if extra:  # the YAML keeps extra_body (without the credential), so only the null differs inside it
        doc = folder / "x.yaml"
        doc.write_text(doc.read_text().replace("      internal_id: m1\n", "      internal_id: m1\n      extra_body: {n: [1]}\n"))
    outputs = {}
    for fmt in ("text", "markdown", "json"):
        r = run_cli(["plan", "--format", fmt, str(folder)], env=_env(pg_engine))
        assert r.code == 0, r.all
        assert "SEKRET" not in r.all, r.out
        assert "***" in r.out and "h.example" in r.out  # shown, with the credentials masked
        assert not extra or ("gone" in r.out and "Authorization" in r.out), r.out  # the whole extra_body
        outputs[fmt] = r.out
    r = run_cli(["plan", "--out", str(tmp_path / "p.json"), str(folder)], env=_env(pg_engine))
    assert r.code == 0 and "SEKRET" not in (tmp_path / "p.json").read_text()
    for fmt in ("text", "markdown", "json"):  # a saved plan shows to the same bytes
        assert run_cli(["show", str(tmp_path / "p.json"), "--format", fmt], env={}).out == outputs[fmt]


def test_values_without_credentials_are_shown_unmasked(tmp_path: Path, pg_engine: sa.Engine) -> None:
    with pg_engine.begin() as c:
        e = admin_create_experiment(c, "partner/x", "X")
        v = admin_add_variant(c, e, "one", 1)
        admin_add_version(c, v, {"internal_id": "m1", "base_url": "https://old.example/v1?region=eu",
                                 "extra_body": {"max_tokens": 5, "cache_key": "abc"}}, KEY)
    r = run_cli(["plan", str(_pinned_yaml(tmp_path, e, v))], env=_env(pg_engine))
    assert r.code == 0, r.all
    assert "https://old.example/v1?region=eu" in r.out and json.dumps({"cache_key": "abc", "max_tokens": 5},
                                                                      separators=(",", ":")) in r.out


def test_import_never_writes_a_stored_credential_into_yaml(tmp_path: Path, pg_engine: sa.Engine) -> None:
    with pg_engine.begin() as c:
        e = admin_create_experiment(c, "partner/x", "X")
        v = admin_add_variant(c, e, "one", 1)
        admin_add_version(c, v, {"internal_id": "m1", "base_url": "https://u:PWSEKRET@h.example/v1?token=QSEKRET",
                                 "extra_body": {"auth": {"bearer": "HSEKRET"}, "max_tokens": 5}}, KEY)
    out = tmp_path / "imported"
    r = run_cli(["import", "--all", "--out-dir", str(out)], env=_env(pg_engine))
    assert r.code == 0, r.all
    text = next(out.glob("*.yaml")).read_text()
    assert "SEKRET" not in text and "SEKRET" not in r.all
    assert "replaced by ***" in text and "max_tokens: 5" in text and "api_key: env:" in text
    # and validation says what to do about it instead of accepting a masked key
    v = run_cli(["validate", str(out)])
    assert v.code == 3 and "E114" in v.all, v.all


def test_a_public_model_id_another_writer_stored_reaches_the_terminal_escaped(
        tmp_path: Path, pg_engine: sa.Engine, redis_url: str, redis_prefix: str) -> None:
    """The cache refresh prints the membership it wrote: every routing row's public model id,
    also those of experiments expsync does not manage. A bidi override or a C1 CSI in such an
    id is printed visibly escaped, not raw (``apply`` and ``cache sync``); Redis gets it as is."""
    odd = "partner/\u202eevil\x9b2J"
    with pg_engine.begin() as c:
        admin_create_experiment(c, odd, "Odd", status="active")
    folder = tmp_path / "experiments"
    folder.mkdir()
    (folder / "x.yaml").write_text("""\
key: x
public_model_id: partner/x
name: X
status: draft
variants:
  - label: one
    weight: 1
    upstream:
      internal_id: m1
      base_url: https://api.partner.example/v1
    api_key: env:PARTNER_KEY
""")
    env = _env(pg_engine, EXPSYNC_REDIS_URL=redis_url, EXPSYNC_REDIS_KEY_PREFIX=redis_prefix)
    for args in (["apply", "--yes", str(folder)], ["cache", "sync"]):
        r = run_cli(args, env=env)
        assert r.code == 0, (args, r.all)
        assert "\u202e" not in r.all and "\x9b" not in r.all, (args, r.all)
        assert "partner/\\u202eevil\\x9b2J" in r.out, (args, r.out)
