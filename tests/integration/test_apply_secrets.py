"""No secret value escapes (spec §9): a canary api key flows through plan and apply (create,
then rotation, with --debug) and appears nowhere but as ciphertext in encrypted_api_key."""

from __future__ import annotations

import base64
import logging
from pathlib import Path

import pytest
import redis
import sqlalchemy as sa

from tests.cli_helpers import run_cli
from tests.integration.apply_support import Repo, cli_env, experiment, upstream, variant
from tests.integration.gateway import decrypt, dump_text

CANARY = "sk-live-CANARY-apply-wxqzkv"
ROTATED = "sk-live-CANARY-rotated-qvzwjx"
TELLTALES = ("CANARY", "wxqzkv", "qvzwjx", base64.b64encode(CANARY.encode()).decode()[:16],
             base64.b64encode(ROTATED.encode()).decode()[:16])


def assert_clean(text: str, where: str) -> None:
    for t in TELLTALES:
        assert t not in text, f"{t!r} leaked into {where}"


def test_canary_key_appears_only_as_ciphertext(tmp_path: Path, pg_engine: sa.Engine, redis_url: str,
                                               redis_prefix: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    # and every SQL statement with its parameters and result rows: the plaintext never goes to the database
    caplog.set_level(logging.DEBUG, logger="sqlalchemy.engine")
    caplog.set_level(logging.DEBUG, logger="expsync.sql")  # the same for apply's psycopg connection
    repo = Repo(tmp_path).put(
        experiment("canary", "partner/canary", "active", [
            variant("a", upstream("m-a", extra_body={"user": "not-a-secret"}), "env:PARTNER_KEY"),
            variant("b", "m-b", "env:PARTNER_KEY"),
        ]),
        experiment("canary-draft", "partner/canary-draft", "draft", [variant("a", "m-d", "env:PARTNER_KEY")]),
    )
    env = cli_env(pg_engine, {"PARTNER_KEY": CANARY}, EXPSYNC_REDIS_URL=redis_url, EXPSYNC_REDIS_KEY_PREFIX=redis_prefix)
    outputs: list[str] = []
    files: list[Path] = []

    def cli(*args: str, expect: int = 0, **extra: str) -> None:
        r = run_cli(list(args), env=env | extra)
        assert r.code == expect, r.all
        outputs.append(r.all)

    for fmt in ("text", "json", "markdown"):
        cli("--debug", "plan", "--format", fmt, repo.path)
    files.append(tmp_path / "create.json")
    cli("--debug", "plan", "--out", str(files[-1]), repo.path)
    cli("--debug", "apply", "--yes", "--plan", str(files[-1]), repo.path)
    cli("--debug", "plan", "--detailed-exitcode", repo.path)

    # rotation, through a saved plan; then the same plan again (stale, exit 5) and a no-op apply
    env["PARTNER_KEY"] = ROTATED
    files.append(tmp_path / "rotate.json")
    cli("--debug", "plan", "--out", str(files[-1]), "--detailed-exitcode", repo.path, expect=2)
    for fmt in ("json", "markdown"):
        cli("--debug", "plan", "--format", fmt, repo.path)
    cli("--debug", "apply", "--yes", "--plan", str(files[-1]), repo.path)
    cli("--debug", "apply", "--yes", "--plan", str(files[-1]), repo.path, expect=5)
    cli("--debug", "apply", "--yes", repo.path)  # no changes
    cli("--debug", "plan", "--detailed-exitcode", repo.path)

    for i, out in enumerate(outputs):
        assert_clean(out, f"output of command {i}")
    assert any("INSERT INTO model_experiment_variant_version" in r.getMessage() for r in caplog.records)
    assert_clean(caplog.text, "log records")
    assert_clean("\n".join(r.getMessage() for r in caplog.records), "log records")
    for f in files:
        assert_clean(f.read_text(), f.name)
    with pg_engine.connect() as c:
        assert_clean(dump_text(c), "the database")
        audit = c.execute(sa.text("SELECT CAST(summary AS text), outcome FROM expsync_audit")).all()
        managed = c.execute(sa.text("SELECT CAST(last_applied AS text) FROM expsync_managed")).scalars().all()
        keys = c.execute(sa.text("SELECT encrypted_api_key FROM model_experiment_variant_version "
                                 "ORDER BY created_at, id")).scalars().all()
    assert len(audit) == 3 and len(managed) == 2
    assert_clean(repr(audit), "the audit table")
    assert_clean(repr(managed), "expsync_managed")
    client = redis.Redis.from_url(redis_url)
    assert_clean(repr({k: client.get(k) for k in client.keys("*")}), "Redis")
    # it is there, encrypted: 3 versions with the first key, then 3 rotated
    assert sorted(decrypt(k) for k in keys) == [CANARY] * 3 + [ROTATED] * 3


def test_debug_does_not_write_the_statements_into_the_log(tmp_path: Path, pg_engine: sa.Engine) -> None:
    """``--debug`` sets the root logger to DEBUG; the statement log (``expsync.sql``, with every
    parameter, encrypted keys included) still stays off, as SQLAlchemy's own loggers do."""
    repo = Repo(tmp_path).put(experiment("quiet", "partner/quiet", "active", [variant("a", "m-a", "env:PARTNER_KEY")]))
    env = cli_env(pg_engine, {"PARTNER_KEY": CANARY})
    for args in (["--debug", "apply", "--yes", repo.path], ["--debug", "plan", repo.path]):
        r = run_cli(args, env=env)
        assert r.code == 0, r.all
        assert "expsync.sql" not in r.all and "INSERT INTO" not in r.all and "SELECT" not in r.all, r.all


@pytest.mark.parametrize("via", ["psycopg", "engine"])
def test_debug_traceback_of_a_refused_version_insert_holds_no_encrypted_key(tmp_path: Path, pg_engine: sa.Engine,
                                                                           via: str) -> None:
    """A database error expsync does not map (here a gateway trigger refusing every new version:
    "unexpected", exit 1) at the INSERT of freshly encrypted keys: ``--debug`` shows the
    traceback, never the statement's parameters (the rows with their ``encrypted_api_key``).
    ``via="engine"``: a URL only SQLAlchemy reads (a ``host`` query), so apply uses the engine."""
    repo = Repo(tmp_path).put(experiment("gw", "partner/gw", "active", [variant("a", "m-a", "env:PARTNER_KEY")]))
    url = pg_engine.url
    extra = {} if via == "psycopg" else {
        "EXPSYNC_DATABASE_URL": f"postgresql+psycopg://{url.username}@/{url.database}?host={url.host}&port={url.port}"}
    env = cli_env(pg_engine, {"PARTNER_KEY": CANARY}, **extra)
    with pg_engine.begin() as c:
        c.execute(sa.text("CREATE FUNCTION gateway_policy() RETURNS trigger LANGUAGE plpgsql AS $$ "
                          "BEGIN RAISE EXCEPTION 'version refused by the gateway policy'; END $$"))
        c.execute(sa.text("CREATE TRIGGER gateway_policy BEFORE INSERT ON model_experiment_variant_version "
                          "FOR EACH ROW EXECUTE FUNCTION gateway_policy()"))
    r = run_cli(["--debug", "apply", "--yes", repo.path], env=env)
    assert r.code == 1 and "unexpected error" in r.err and "Traceback" in r.err, r.all
    assert_clean(r.all, "the --debug traceback")
    assert "authTag" not in r.all and "encrypted_api_key\": {" not in r.all, r.err
    with pg_engine.connect() as c:
        assert c.execute(sa.text("SELECT count(*) FROM model_experiment")).scalar_one() == 0
