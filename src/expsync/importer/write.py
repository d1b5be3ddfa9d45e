"""The file output of ``expsync import``: which ids the folder already pins, and writing all
files or none."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from pathlib import Path

from expsync.profiles import GatewayProfile


def pinned_in(out_dir: Path, profile: GatewayProfile) -> set[uuid.UUID]:
    """Experiment ids already pinned by YAML in ``out_dir``: importing them again would write
    a second file pinning the same row (E208), so they are skipped."""
    if not out_dir.is_dir():
        return set()
    from expsync.desired.loader import LoadOptions, load_desired

    desired, _ = load_desired([str(out_dir)], LoadOptions(profile=profile.name))
    return {d.id for d in desired.experiments.values() if d.id is not None}


def taken_keys(out_dir: Path) -> set[str]:
    """File keys (stems) already used in ``out_dir``."""
    return {p.stem for p in out_dir.glob("*.y*ml")} if out_dir.exists() else set()


def write_all(files: Sequence[tuple[Path, str]]) -> None:
    """Write every file, or none: raises :class:`FileExistsError` naming the first path that
    exists before anything is written (nothing is half-imported)."""
    clash = next((path for path, _ in files if path.exists()), None)
    if clash is not None:
        raise FileExistsError(str(clash))
    for path, text in files:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
