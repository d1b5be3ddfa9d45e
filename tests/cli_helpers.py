"""Run the real ``expsync.cli.main`` in-process (same exit-code boundary as the console script)."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from click.testing import CliRunner

from expsync.cli import main


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def all(self) -> str:
        return self.out + self.err


def run_cli(args: Sequence[str], *, env: Mapping[str, str | None] | None = None, cwd: Path | None = None) -> Result:
    runner = CliRunner()
    old = os.getcwd()
    level = logging.getLogger().level  # `--debug` sets the root level; the next test must not inherit it
    try:
        if cwd is not None:
            os.chdir(cwd)
        with runner.isolation(env=dict(env or {})) as streams:
            out, err = streams[0], streams[1]
            code = 0
            try:
                main(list(args))
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
            return Result(code, out.getvalue().decode(), err.getvalue().decode())
    finally:
        os.chdir(old)
        logging.getLogger().setLevel(level)
