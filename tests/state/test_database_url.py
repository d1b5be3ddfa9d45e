"""EXPSYNC_DATABASE_URL that the engine cannot read, or would read a password fragment out of:
refused as bad configuration (exit 3) by ``plan``, ``apply`` and ``db init`` alike, the URL and
its password never echoed (nor with ``--debug``)."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import url as sa_url

from expsync.cache.refresh import enqueue
from expsync.errors import ConfigError
from expsync.model import per_id_key
from expsync.state.connection import connect_kwargs
from expsync.state.db import make_engine
from expsync.state.location import URL_PATTERN, database_url
from tests.cli_helpers import run_cli

#: a password with an unescaped '@': the engine's reading ends it at the '@'
PASSWORD = "q7zk@w9vx3mp"
FRAGMENTS = (PASSWORD, "q7zk", "w9vx3mp", "q7zk%40w9vx3mp")
COMMANDS = (["plan", "e"], ["--debug", "plan", "e"], ["apply", "--yes", "e"], ["--debug", "apply", "--yes", "e"],
            ["db", "init"], ["--debug", "db", "init"])


def _db_name(engine: sa.Engine) -> str:
    assert engine.url.database
    return engine.url.database


def _assert_refused(args: list[str], url: str, tmp_path: Path, env: dict[str, str] | None = None) -> str:
    (tmp_path / "e").mkdir(exist_ok=True)
    r = run_cli(args, env={"EXPSYNC_DATABASE_URL": url, **(env or {})}, cwd=tmp_path)
    assert r.code == 3, (args, r.all)
    assert "Traceback" not in r.all and "unexpected error" not in r.all
    for fragment in FRAGMENTS:
        assert fragment not in r.all, (args, fragment, r.all)
    return r.err


@pytest.mark.parametrize("url", [
    f"postgresql://u:{PASSWORD}@127.0.0.1:1/db",
    f"postgres://u:{PASSWORD}@127.0.0.1/db",
    f"postgresql://u:{PASSWORD}@[::1]:5432/db",
    f"postgresql://u@x:{PASSWORD}@h/db",  # a user with '@' too (Azure's user@server)
    "postgresql://u:q7zk@w9:vx3mp@h/db",  # the rest of the password read as a port
    "postgresql://u:q7zk@w9/vx3mp@h/db",  # ... or as the host, and a database holding '@'
    f"postgresql+psycopg://u:{PASSWORD}@h:5432/db?sslmode=require",
    f"postgresql://u:{PASSWORD}@h/db?sslmode=require\napplication_name=x",  # read short by the engine
])
def test_an_unescaped_at_in_the_password_is_refused_without_echoing_it(url: str) -> None:
    with pytest.raises(ConfigError) as err:
        database_url({"EXPSYNC_DATABASE_URL": url})
    assert "%40" in str(err.value) and err.value.exit_code == 3
    assert not any(part in str(err.value) for part in ("q7zk", "w9", "vx3mp"))


@pytest.mark.parametrize(("url", "expected"), [
    ("postgresql://u:q7zk%40w9vx3mp@h/db", "postgresql+psycopg://u:q7zk%40w9vx3mp@h/db"),
    ("postgresql://u@x:pw@h/db", "postgresql+psycopg://u@x:pw@h/db"),  # the user's '@' ends no password
    ("postgresql://user@server@h/db", "postgresql+psycopg://user@server@h/db"),
    ("postgresql://h/team@db", "postgresql+psycopg://h/team@db"),  # no password: nothing to leak
    ("postgresql://u:pw@h/db?options=-c%20a%3Db&sslrootcert=/x@y", "postgresql+psycopg://u:pw@h/db?options="
                                                                   "-c%20a%3Db&sslrootcert=/x@y"),
    ("sqlite:////tmp/x@y/e.db", "sqlite:////tmp/x@y/e.db"),
])
def test_other_at_signs_are_read_as_before(url: str, expected: str) -> None:
    assert database_url({"EXPSYNC_DATABASE_URL": url}) == expected


@pytest.mark.parametrize("url", ["postgresql+psycopg://u:s3cr3tpw@h:/db", "postgresql+psycopg://u:s3cr3tpw@h:x1/db",
                                 "s3cr3tpw", "postgresql+psycopg://u:s3cr3tpw@h:/db?password=s3cr3tpw"])
def test_an_unreadable_url_is_a_config_error_without_the_url(url: str) -> None:
    with pytest.raises(ConfigError) as err:
        make_engine(url, create=False)
    assert "s3cr3tpw" not in str(err.value) and "postgresql://USER:PASSWORD@HOST" in str(err.value)


def test_an_empty_port_is_left_to_the_engine() -> None:
    """psycopg alone would connect to the default port; the engine refuses the URL."""
    assert connect_kwargs("postgresql+psycopg://u:pw@127.0.0.1:/db") is None
    assert connect_kwargs("postgresql+psycopg://u:pw@[::1]:/db") is None


def test_an_empty_port_is_exit_3_everywhere(pg_engine: sa.Engine, redis_url: str, tmp_path: Path) -> None:
    """On a real database with a refresh pending (``plan`` makes an engine only then), ``plan``,
    ``apply`` and ``db init`` all say the URL is invalid; none connects on the default port."""
    with pg_engine.begin() as c:
        enqueue(c, [per_id_key("partner/a", "urlfix:")])
    url = f"postgresql://postgres:{PASSWORD.replace('@', '%40')}@127.0.0.1:/{_db_name(pg_engine)}"
    for args in COMMANDS:
        err = _assert_refused(args, url, tmp_path, {"EXPSYNC_REDIS_URL": redis_url, "EXPSYNC_REDIS_KEY_PREFIX": "urlfix:"})
        assert "port must be a number" in err
    with pg_engine.connect() as c:  # nothing drained, nothing initialised or applied
        assert c.execute(sa.text("SELECT count(*) FROM expsync_cache_outbox")).scalar_one() == 1


def test_an_at_in_the_password_is_exit_3_everywhere_and_never_printed(pg_engine: sa.Engine, tmp_path: Path) -> None:
    """The reading that ended the password at its '@' took ``w9vx3mp@127.0.0.1`` for the host,
    and the driver's "failed to resolve host" message printed that password fragment."""
    url = f"postgresql://postgres:{PASSWORD}@127.0.0.1:5432/{_db_name(pg_engine)}"
    for args in COMMANDS:
        assert "percent-encode it as %40" in _assert_refused(args, url, tmp_path)
    encoded = url.replace(PASSWORD, PASSWORD.replace("@", "%40"))  # the fix the message names works
    r = run_cli(["plan", "e"], env={"EXPSYNC_DATABASE_URL": encoded}, cwd=tmp_path)
    assert r.code == 0, r.all


def test_the_pattern_is_sqlalchemys() -> None:
    """Both readings (psycopg alone, the engine) agree only while the pattern is SQLAlchemy's."""
    source = inspect.getsource(sa_url._parse_url)
    theirs = source.split('r"""', 1)[1].split('"""', 1)[0]
    assert re.sub(r"\s", "", theirs) == re.sub(r"\s", "", URL_PATTERN.pattern)
