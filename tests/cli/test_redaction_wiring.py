"""Defence in depth: once a run's redactor knows a value, a third-party log line or an error
message that quotes it is masked on the way out (the handler sits on the root logger)."""

from __future__ import annotations

import logging

import pytest

from expsync import cli, pipeline
from expsync.errors import ConfigError

VALUE = "sk-live-CANARY-wiring-5521"


def test_log_records_from_libraries_are_masked(capsys: pytest.CaptureFixture[str]) -> None:
    cli.cli.main(["--debug", "schema"], standalone_mode=False)  # sets up the run's handler
    capsys.readouterr()
    cli.redactor().add(VALUE)
    logging.getLogger("botocore.parsers").debug("Response body: {'SecretString': '%s'}", VALUE)
    err = capsys.readouterr().err
    assert "Response body" in err and VALUE not in err and "***" in err


def test_error_messages_quoting_a_resolved_value_are_masked(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    """A value resolved in this run, quoted by an error raised later (say, a store client's
    message), never reaches stderr, with or without --debug."""
    from tests.cli_helpers import run_cli
    from tests.desired.test_refusals import GOOD

    (tmp_path / "e").mkdir()
    (tmp_path / "e" / "x.yaml").write_text(GOOD.replace("status: active", "status: draft"))

    def boom(*_: object, **__: object) -> None:
        raise ConfigError(f"the store said: {VALUE}")

    monkeypatch.setattr(pipeline, "compute_plan", boom)
    for debug in ([], ["--debug"]):
        r = run_cli([*debug, "plan", str(tmp_path / "e")], env={"FOO_KEY": VALUE}, cwd=tmp_path)
        assert r.code == 3 and "the store said: ***" in r.err and VALUE not in r.all, r.all

    def crash(*_: object, **__: object) -> None:
        raise RuntimeError(f"unexpected, quoting {VALUE}")

    monkeypatch.setattr(pipeline, "compute_plan", crash)
    r = run_cli(["--debug", "plan", str(tmp_path / "e")], env={"FOO_KEY": VALUE}, cwd=tmp_path)
    assert r.code == 1 and "Traceback" in r.err and VALUE not in r.all, r.all
