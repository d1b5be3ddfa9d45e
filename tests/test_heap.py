"""The collector's policy for one command (``expsync.heap``): building the desired and the
actual state runs no collection, and only a command's own process freezes what they built
(counts from ``gc.get_stats()`` and ``gc.get_freeze_count()``, never times)."""

from __future__ import annotations

import gc
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from expsync import heap
from expsync.desired.loader import LoadOptions, load_desired
from tests.desired.test_refusals import GOOD


def collections() -> int:
    return sum(s["collections"] for s in gc.get_stats())


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    for i in range(400):  # enough new objects for many generation-0 collections
        text = GOOD.replace("key: foo", f"key: foo{i}").replace("preview-foo", f"preview-foo{i}")
        (tmp_path / f"e{i}.yaml").write_text(text)
    return tmp_path


@pytest.fixture
def unfrozen() -> Iterator[None]:
    yield
    heap._freeze = False
    gc.unfreeze()


def test_loading_runs_no_collection_and_a_library_caller_freezes_nothing(folder: Path, unfrozen: None) -> None:
    assert gc.isenabled()
    load_desired([str(folder)], LoadOptions())  # first use: imports, the validator
    gc.collect()  # the young generation starts empty
    frozen, before = gc.get_freeze_count(), collections()
    desired, diags = load_desired([str(folder)], LoadOptions())
    assert len(desired.experiments) == 400, diags
    # none while the files load; at most one (of the young generation) once the collector is back
    assert collections() - before <= 1
    assert gc.get_freeze_count() == frozen and gc.isenabled()


def test_a_short_lived_process_freezes_what_was_built(folder: Path, unfrozen: None) -> None:
    heap.short_lived_process()
    frozen = gc.get_freeze_count()
    load_desired([str(folder)], LoadOptions())
    assert gc.get_freeze_count() > frozen and gc.isenabled()


def test_the_collector_is_back_on_after_an_error(unfrozen: None) -> None:
    with pytest.raises(RuntimeError), heap.long_lived():
        assert not gc.isenabled()
        raise RuntimeError("boom")
    assert gc.isenabled()


def test_the_console_script_is_a_short_lived_process(tmp_path: Path) -> None:
    """``main()`` without arguments (the console script) freezes; ``main(args)`` (an embedder,
    the tests) does not."""
    code = ("import gc, json, sys\nfrom expsync.cli import main\nsys.argv = ['expsync', 'validate', 'experiments']\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\nprint(json.dumps(gc.get_freeze_count()))\n")
    repo = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", code], cwd=repo, capture_output=True, text=True, check=True).stdout
    assert json.loads(out.strip().splitlines()[-1]) > 0
