"""``expsync import``: write YAML for experiments that exist in the database but not in git,
with ``id:`` pins on the experiment and every variant, so the next plan adopts them (a
bookkeeping-only change) instead of creating duplicates.

    read (state: :func:`~expsync.state.unmanaged.select_unmanaged`, ``read_actual``)
      -> render (:mod:`expsync.importer.document`: the YAML text and ``env:`` names)
      -> write (:mod:`expsync.importer.write`: all files or none)

What it never writes: an api key. Each variant gets an ``env:`` reference whose variable the
engineer must provide (or replace with another store's reference); with
``BYOK_ENCRYPTION_KEY`` available, variants whose stored keys are equal share one variable, so
one CI secret serves them. Keys are decrypted only in memory, to compare.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path

from sqlalchemy.engine import Connection

from expsync.importer.document import document, env_refs, key_for, render_ref
from expsync.importer.write import pinned_in, taken_keys, write_all
from expsync.profiles import NEWEST, PROFILES, GatewayProfile
from expsync.records import dataclass
from expsync.state.reader import read_actual
from expsync.state.unmanaged import select_unmanaged

__all__ = ["Imported", "import_experiments", "select_unmanaged"]


@dataclass(frozen=True, slots=True)
class Imported:
    key: str
    path: Path
    env_vars: tuple[str, ...]  # the api key references written (``env:NAME`` shown as NAME)


def import_experiments(conn: Connection, ids: list[uuid.UUID], out_dir: Path, *, now: datetime,
                       byok: bytes | None, keys: Mapping[uuid.UUID, str] | None = None,
                       profile: GatewayProfile | None = None, ref_template: str | None = None) -> list[Imported]:
    """Write one file per experiment in ``ids`` (those ``out_dir`` already pins are skipped);
    ``ref_template`` shapes the api key references (:func:`~expsync.importer.document.render_ref`)."""
    profile = profile or PROFILES[NEWEST]
    already = pinned_in(out_dir, profile)
    ids = [i for i in ids if i not in already]
    actual = read_actual(conn, experiment_ids=ids, public_model_ids=(), now=now, with_metadata=profile.has_metadata)
    taken = taken_keys(out_dir)
    out: list[Imported] = []
    files: list[tuple[Path, str]] = []
    for eid in ids:
        a = actual.experiments[eid]
        key = (keys or {}).get(eid) or key_for(a, taken)
        refs = {vid: render_ref(ref_template, name) for vid, name in env_refs(key, a, byok).items()}
        out.append(Imported(key, out_dir / f"{key}.yaml", tuple(sorted({r.removeprefix("env:") for r in refs.values()}))))
        files.append((out_dir / f"{key}.yaml", document(key, a, refs, profile)))
    write_all(files)
    return out
