"""Choosing the gateway profile: --gateway-profile, then EXPSYNC_GATEWAY_PROFILE, then
expsync.toml; offline without any: the newest, said on stderr."""

from __future__ import annotations

from pathlib import Path

import pytest

from expsync.config import find_config, load_config, offline_profile, profile_for_database, select_profile
from expsync.errors import ConfigError
from expsync.profiles import NEWEST, PROFILES, ProfileChoice
from tests.cli_helpers import run_cli
from tests.profiles.helpers import ONLY_05



@pytest.fixture
def repo(tmp_path: Path) -> Path:
    (tmp_path / ".git").mkdir()
    (tmp_path / "experiments").mkdir()
    (tmp_path / "experiments" / "foo.yaml").write_text(ONLY_05)
    return tmp_path


def test_precedence_flag_then_env_then_file(repo: Path) -> None:
    (repo / "expsync.toml").write_text('gateway_profile = "2026-05"\n')
    assert select_profile(None, {}, repo).choice is ProfileChoice.CONFIG  # type: ignore[union-attr]
    env = {"EXPSYNC_GATEWAY_PROFILE": "2026-06"}
    s = select_profile(None, env, repo)
    assert s is not None and s.profile.name == "2026-06" and s.choice is ProfileChoice.ENV
    s = select_profile("2026-05", env, repo)
    assert s is not None and s.profile.name == "2026-05" and s.choice is ProfileChoice.FLAG


def test_config_file_is_found_upwards_up_to_the_repository_root(repo: Path) -> None:
    (repo / "expsync.toml").write_text('gateway_profile = "2026-05"\n')
    sub = repo / "experiments"
    assert find_config(sub) == repo / "expsync.toml"
    assert load_config(sub).gateway_profile == "2026-05"
    inner = repo / "inner"
    (inner / ".git").mkdir(parents=True)  # another repository: the outer file is not its config
    assert find_config(inner) is None


def test_validate_uses_the_config_file(repo: Path) -> None:
    r = run_cli(["validate"], cwd=repo)
    assert r.code == 3 and "E140" in r.err  # newest profile: opencode_settings moved to metadata
    assert f"gateway profile {NEWEST} (no profile configured: using the newest)" in r.err
    (repo / "expsync.toml").write_text('# which gateway we deploy to\ngateway_profile = "2026-05"\n')
    r = run_cli(["validate"], cwd=repo)
    assert r.code == 0, r.all
    assert "gateway profile" not in r.err  # chosen explicitly: nothing to say


def test_env_and_flag_override_the_file(repo: Path) -> None:
    (repo / "expsync.toml").write_text('gateway_profile = "2026-05"\n')
    assert run_cli(["validate"], cwd=repo, env={"EXPSYNC_GATEWAY_PROFILE": "2026-06"}).code == 3
    r = run_cli(["validate", "--gateway-profile", "2026-05"], cwd=repo, env={"EXPSYNC_GATEWAY_PROFILE": "2026-06"})
    assert r.code == 0, r.all


@pytest.mark.parametrize(("toml", "needle"), [
    ('gateway_profile = "2026-07"\n', "unknown gateway profile '2026-07'"),
    ("gateway_profile = 2026\n", "must be a string"),
    ('gateway_profle = "2026-05"\n', "unknown setting(s) gateway_profle"),
    ("gateway_profile = \n", "not valid TOML"),
])
def test_bad_configuration_file_exits_3(repo: Path, toml: str, needle: str) -> None:
    (repo / "expsync.toml").write_text(toml)
    r = run_cli(["validate"], cwd=repo)
    assert r.code == 3 and needle in r.err and "Traceback" not in r.all


def test_bad_profile_names_exit_3(repo: Path) -> None:
    r = run_cli(["validate"], cwd=repo, env={"EXPSYNC_GATEWAY_PROFILE": "latest"})
    assert r.code == 3 and "unknown gateway profile 'latest' (EXPSYNC_GATEWAY_PROFILE)" in r.err
    r = run_cli(["validate", "--gateway-profile", "2025-01"], cwd=repo)
    assert r.code == 3 and "Traceback" not in r.all


def test_schema_without_a_profile_prints_the_newest_and_says_so(repo: Path) -> None:
    r = run_cli(["schema"], cwd=repo)
    assert r.code == 0 and f"gateway profile {NEWEST}" in r.err and NEWEST in r.out


def test_detection_only_refuses_impossible_pairs() -> None:
    assert profile_for_database(None, True).profile.name == "2026-06"
    assert profile_for_database(None, False).profile.name == "2026-05"
    assert profile_for_database(None, False).choice is ProfileChoice.DETECTED
    old = select_profile("2026-05", {}, Path("/"))
    assert profile_for_database(old, True) == old  # the column predates the new upstream schema
    new = select_profile("2026-06", {}, Path("/"))
    with pytest.raises(ConfigError, match="model_experiment.metadata"):
        profile_for_database(new, False)
    assert offline_profile(None).profile is PROFILES[NEWEST]


def test_no_stage_branches_on_a_profile_name() -> None:
    # a profile is data: names appear only where profiles are defined and chosen
    src = Path(__file__).resolve().parents[2] / "src" / "expsync"
    allowed = {src / "profiles.py", src / "config.py"}
    offenders = [str(p.relative_to(src)) for p in src.rglob("*.py")
                 if p not in allowed and any(f'"{name}"' in p.read_text() for name in PROFILES)]
    assert offenders == []
