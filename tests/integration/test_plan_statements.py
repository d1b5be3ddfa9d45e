"""The whole read side of a plan (clock + reader) is a constant number of statements."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import sqlalchemy as sa

from expsync.pipeline import Settings, compute_plan
from expsync.desired.loader import load_desired
from tests.cli_helpers import run_cli
from tests.integration.apply_support import Repo, cli_env, experiment, upstream, variant

SECRETS = {"K": "sk-stmt-000111"}


def _repo(tmp: Path, n: int) -> Repo:
    repo = Repo(tmp)
    repo.put(*[experiment(f"e{i}", f"partner/e{i}", "active", [variant("a", upstream(f"m{i}"), "env:K"),
                                                              variant("b", upstream(f"n{i}"), "env:K")])
               for i in range(n)])
    return repo


def test_plan_reads_in_constant_statements(tmp_path: Path, pg_engine: sa.Engine, count_statements) -> None:  # type: ignore[no-untyped-def]
    from expsync.model import Secret, SecretRef

    counts = []
    for n in (1, 40):
        repo = _repo(tmp_path / str(n), n)
        assert run_cli(["apply", "--yes", repo.path], env=cli_env(pg_engine, SECRETS)).code == 0
        desired, _ = load_desired([repo.path])
        secrets = {SecretRef("env", "K"): Secret(SECRETS["K"])}
        settings = Settings(environ=dict(cli_env(pg_engine, SECRETS)))  # type: ignore[arg-type]
        with count_statements(pg_engine) as log:
            with pg_engine.connect() as conn:
                computed = compute_plan(conn, desired, secrets, settings, now=datetime.now(timezone.utc))
        assert not computed.plan.has_changes
        counts.append(log.count)
    assert counts[0] == counts[1] == 5  # SELECT now() + the reader's 4
