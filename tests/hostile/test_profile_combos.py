"""A configured gateway profile the database cannot be on is exit 3 in every command that
touches the database, ``db init`` included (it said "nothing to do", exit 0)."""

from __future__ import annotations

from pathlib import Path

from tests.cli_helpers import run_cli


def test_db_init_refuses_a_configured_profile_the_existing_tables_cannot_serve(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    env = {"EXPSYNC_DATABASE_URL": f"sqlite:///{tmp_path / 'gw.db'}"}
    assert run_cli(["db", "init", "--gateway-profile", "2026-05"], env=env, cwd=tmp_path).code == 0
    for how in (["--gateway-profile", "2026-06"], []):
        extra = {} if how else {"EXPSYNC_GATEWAY_PROFILE": "2026-06"}
        r = run_cli(["db", "init", *how], env={**env, **extra}, cwd=tmp_path)
        assert r.code == 3 and "model_experiment.metadata" in r.all, r.all
    (tmp_path / "expsync.toml").write_text('gateway_profile = "2026-06"\n')
    r = run_cli(["db", "init"], env=env, cwd=tmp_path)
    assert r.code == 3 and "model_experiment.metadata" in r.all, r.all
    # unconfigured, or configured to what the tables serve: fine
    (tmp_path / "expsync.toml").unlink()
    assert run_cli(["db", "init"], env=env, cwd=tmp_path).code == 0
    assert run_cli(["db", "init", "--gateway-profile", "2026-05"], env=env, cwd=tmp_path).code == 0
