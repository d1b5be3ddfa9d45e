"""``expsync import``: write YAML for experiments that exist in the database but not in git,
with ``id:`` pins on the experiment and every variant, so the next plan adopts them (a
bookkeeping-only change) instead of creating duplicates.

What it never writes: an api key. Each variant gets an ``env:`` reference whose variable the
engineer must provide (or replace with another store's reference); with
``BYOK_ENCRYPTION_KEY`` available, variants whose stored keys are equal share one variable, so
one CI secret serves them. Keys are decrypted only in memory, to compare.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import sqlalchemy as sa
import yaml
from sqlalchemy.engine import Connection

from expsync.crypto import DecryptError, decrypt_api_key, keys_equal
from expsync.model import ActualExperiment, JsonObject, Secret
from expsync.profiles import NEWEST, PROFILES, GatewayProfile
from expsync.state.reader import read_actual
from expsync.state.tables import experiment, managed

MODELINE = "# yaml-language-server: $schema=../schemas/{schema}"


@dataclass(frozen=True, slots=True)
class Imported:
    key: str
    path: Path
    env_vars: tuple[str, ...]


def select_ids(conn: Connection, *, all_unmanaged: bool, ids: Iterable[uuid.UUID],
               public_model_ids: Iterable[str]) -> list[uuid.UUID]:
    """Experiments to import: explicit ids, every row on the given public ids, or (``--all``)
    every row expsync does not manage yet. Managed rows are never re-imported."""
    managed_ids = sa.select(managed.c.experiment_id)
    q = sa.select(experiment.c.id).where(experiment.c.id.not_in(managed_ids))
    conds = []
    id_list, pid_list = list(ids), list(public_model_ids)
    if id_list:
        conds.append(experiment.c.id.in_(id_list))
    if pid_list:
        conds.append(experiment.c.public_model_id.in_(pid_list))
    if not all_unmanaged:
        if not conds:
            return []
        q = q.where(sa.or_(*conds))
    return list(conn.execute(q.order_by(experiment.c.id)).scalars())


def _slug(text: str, *, sep: str = "-", limit: int = 100) -> str:
    s = re.sub(r"[^a-z0-9._-]+", sep, text.lower()).strip("-._")
    return s[:limit].rstrip("-._")


def key_for(a: ActualExperiment, taken: set[str]) -> str:
    base = _slug(a.name) or _slug(a.public_model_id) or "experiment"
    if not re.match(r"[a-z0-9]", base):
        base = "x" + base
    key = base[:91]
    if key in taken:
        key = f"{key}-{a.id.hex[:8]}"
    taken.add(key)
    return key


def _env_name(key: str, suffix: str) -> str:
    return re.sub(r"[^A-Z0-9_]+", "_", f"{key}_{suffix}_API_KEY".upper()).strip("_")


def _env_refs(key: str, a: ActualExperiment, byok: bytes | None) -> dict[uuid.UUID, str]:
    """Variant id -> env variable name; equal stored keys share one name when BYOK is known."""
    names: dict[uuid.UUID, str] = {}
    groups: list[tuple[Secret, str]] = []
    for v in a.variants:
        latest = v.pending or v.current
        plain = None
        if byok is not None and latest is not None:
            try:
                plain = decrypt_api_key(latest.encrypted_api_key, byok)
            except DecryptError:
                plain = None
        if plain is not None:
            match = next((n for s, n in groups if keys_equal(s, plain)), None)
            if match is None:
                match = _env_name(key, "PARTNER" if not groups else f"PARTNER_{len(groups) + 1}")
                groups.append((plain, match))
            names[v.id] = match
        else:
            names[v.id] = _env_name(key, _slug(v.label, sep="_") or v.id.hex[:8])
    return names


def _upstream_for(upstream: JsonObject, profile: GatewayProfile, dropped: set[str]) -> JsonObject:
    """The stored upstream as this profile's YAML holds it. Fields the profile does not have
    are left out (and named in the file's header) only where the gateway's routing drops them
    anyway (a non-strict profile): for a strict one they stay, and validation says why."""
    if profile.routing_strict:
        return dict(upstream)
    out: JsonObject = {}
    for k, v in upstream.items():
        if k in profile.upstream:
            out[k] = v
        else:
            dropped.add(k)
    return out


def document(key: str, a: ActualExperiment, env_refs: Mapping[uuid.UUID, str],
             profile: GatewayProfile | None = None) -> str:
    profile = profile or PROFILES[NEWEST]
    variants = []
    dropped: set[str] = set()
    for v in a.variants:
        latest = v.pending or v.current
        variants.append({
            "id": str(v.id),
            "label": v.label,
            "weight": v.weight,
            "upstream": _upstream_for(latest.upstream, profile, dropped) if latest
            else {"internal_id": "FILL-ME", "base_url": "https://FILL-ME"},
            "api_key": f"env:{env_refs[v.id]}",
        })
    doc: dict[str, object] = {"id": str(a.id), "key": key, "public_model_id": a.public_model_id, "name": a.name}
    if a.description is not None:
        doc["description"] = a.description
    doc["status"] = a.status.value
    if a.is_archived:
        doc["archived"] = True
    doc["variants"] = variants
    if profile.has_metadata and a.metadata is not None:
        doc["metadata"] = a.metadata
    header = [MODELINE.format(schema=f"experiment-{profile.name}.schema.json"),
              f"# Imported from the database by `expsync import` (experiment {a.id}, gateway profile {profile.name})."]
    header.append("# Provide the api_key variables (or replace them with another reference) before planning.")
    if dropped:
        header.append(f"# Left out of upstreams (gateway profile {profile.name} has no such field; its routing "
                      f"ignores them): {', '.join(sorted(dropped))}.")
    body = yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, default_flow_style=False, width=100)
    return "\n".join(header) + "\n" + body


def pinned_in(out_dir: Path, profile: GatewayProfile) -> set[uuid.UUID]:
    """Experiment ids already pinned by YAML in ``out_dir``: importing them again would write
    a second file pinning the same row (E208), so they are skipped."""
    if not out_dir.is_dir():
        return set()
    from expsync.desired.loader import LoadOptions, load_desired

    desired, _ = load_desired([str(out_dir)], LoadOptions(profile=profile.name))
    return {d.id for d in desired.experiments.values() if d.id is not None}


def import_experiments(conn: Connection, ids: list[uuid.UUID], out_dir: Path, *, now: datetime,
                       byok: bytes | None, keys: Mapping[uuid.UUID, str] | None = None,
                       profile: GatewayProfile | None = None) -> list[Imported]:
    profile = profile or PROFILES[NEWEST]
    already = pinned_in(out_dir, profile)
    ids = [i for i in ids if i not in already]
    actual = read_actual(conn, experiment_ids=ids, public_model_ids=(), now=now, with_metadata=profile.has_metadata)
    taken = {p.stem for p in out_dir.glob("*.y*ml")} if out_dir.exists() else set()
    out: list[Imported] = []
    texts: list[str] = []
    for eid in ids:
        a = actual.experiments[eid]
        key = (keys or {}).get(eid) or key_for(a, taken)
        refs = _env_refs(key, a, byok)
        out.append(Imported(key, out_dir / f"{key}.yaml", tuple(sorted(set(refs.values())))))
        texts.append(document(key, a, refs, profile))
    clash = next((item.path for item in out if item.path.exists()), None)
    if clash is not None:  # checked for all before writing any: nothing is half-imported
        raise FileExistsError(str(clash))
    for item, text in zip(out, texts):
        item.path.parent.mkdir(parents=True, exist_ok=True)
        item.path.write_text(text, encoding="utf-8")
    return out
