"""The YAML writer of ``expsync import``: one experiment read from the database -> the text of
its experiment file (with ``id:`` pins), plus the file key and the ``env:`` variable names.

Pure apart from decrypting stored keys in memory to tell which variants share one (no
database, no files): :mod:`expsync.importer.write` puts the text on disk.
"""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Mapping, Sequence
from typing import Final

import yaml

from expsync.crypto import DecryptError, decrypt_api_key, keys_equal
from expsync.desired.yamlload import AMBIGUOUS_NUMBER
from expsync.errors import InvalidInput
from expsync.model import ActualExperiment, JsonObject, Secret
from expsync.profiles import NEWEST, PROFILES, GatewayProfile
from expsync.urls import mask_json

MODELINE: Final = "# yaml-language-server: $schema=../schemas/{schema}"


class _Dumper(yaml.SafeDumper):
    """PyYAML's safe dumper, quoting also the text expsync's loader would refuse written plain:
    PyYAML (YAML 1.1) writes ``2e-1`` unquoted, which YAML 1.2 reads as a number."""


_Dumper.add_implicit_resolver("tag:yaml.org,2002:float", AMBIGUOUS_NUMBER, list("-+0123456789."))


def _slug(text: str, *, sep: str = "-", limit: int = 100) -> str:
    s = re.sub(r"[^a-z0-9._-]+", sep, text.lower()).strip("-._")
    return s[:limit].rstrip("-._")


def key_for(a: ActualExperiment, taken: set[str]) -> str:
    """A file key from the experiment's name (or public id), unique among ``taken`` (updated)."""
    base = _slug(a.name) or _slug(a.public_model_id) or "experiment"
    if not re.fullmatch(r"[a-z0-9].*", base, flags=re.DOTALL):
        base = "x" + base
    key = base[:91]
    if key in taken:
        key = f"{key}-{a.id.hex[:8]}"
    taken.add(key)
    return key


def _env_name(key: str, suffix: str) -> str:
    """An environment variable name: it starts with a letter (a shell, GitHub's secrets and
    ``env:`` references refuse a leading digit, which a key such as ``2025-q3`` has)."""
    name = re.sub(r"[^A-Z0-9_]+", "_", f"{key}_{suffix}_API_KEY".upper()).strip("_")
    return f"EXP_{name}" if name[:1].isdigit() else name


def env_refs(key: str, a: ActualExperiment, byok: bytes | None) -> dict[uuid.UUID, str]:
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


def render_ref(template: str | None, default_name: str) -> str:
    """The reference for one key group: ``env:DEFAULT_NAME``, or ``template`` with ``{KEY}``
    (upper snake case) or ``{key}`` (lower case, ``-``) replaced by the group's stem: the default
    variable name without ``_API_KEY`` and ``_PARTNER`` (``FOO_BAR`` for experiment ``foo-bar``;
    ``FOO_BAR_2`` for its second distinct key; ``FOO_BAR_RC1`` per label without BYOK). A template
    (``--key-ref-template``, or derived from ``EXPSYNC_SECRET_REFS``) makes what import writes
    pass the job's allowlist."""
    if template is None:
        return f"env:{default_name}"
    stem = re.sub(r"_PARTNER(?=(_\d+)?\Z)", "", default_name.removesuffix("_API_KEY"))
    return template.replace("{KEY}", stem).replace("{key}", stem.lower().replace("_", "-"))


def _infinite_number(value: object, path: str) -> str | None:
    """The path of the first number in ``value`` the gateway's ``JSON.parse`` reads as infinity
    (an integer beyond a double, e.g. one of 400 digits another writer stored), or None. YAML
    cannot hold one (the loader refuses it, E122), so import cannot write it."""
    if isinstance(value, dict):
        return next((p for k, v in value.items() if (p := _infinite_number(v, f"{path}.{k}"))), None)
    if isinstance(value, list):
        return next((p for i, v in enumerate(value) if (p := _infinite_number(v, f"{path}[{i}]"))), None)
    if isinstance(value, float):
        return path if math.isinf(value) else None
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            float(value)
        except OverflowError:
            return path
    return None


def _refuse_infinite_numbers(a: ActualExperiment, variants: Sequence[Mapping[str, object]], metadata: object) -> None:
    """Refuse (exit 3, nothing written) an experiment whose upstreams or metadata, as the file
    would hold them, have a number beyond a double: expsync's own loader refuses it (E122)."""
    where = [(f"variant '{v['label']}'", _infinite_number(v["upstream"], "upstream")) for v in variants]
    where.append(("the experiment", _infinite_number(metadata, "metadata")))
    for what, path in where:
        if path is not None:
            raise InvalidInput(f"experiment {a.id}, {what}: {path} in the database is a number beyond a double (the "
                               "gateway reads it as infinity) that YAML cannot hold; fix that row through the admin "
                               "UI, then import again (nothing was written) [E122]")


def document(key: str, a: ActualExperiment, env_refs: Mapping[uuid.UUID, str],
             profile: GatewayProfile | None = None) -> str:
    """The experiment file's text: modeline, a header comment, then the document. ``env_refs``
    maps each variant id to its full api key reference (:func:`render_ref`)."""
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
            "api_key": env_refs[v.id],
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
    _refuse_infinite_numbers(a, variants, doc.get("metadata"))
    # a credential another writer stored (a base_url password, an extra_headers Authorization)
    # never lands in a file meant for git: it is written as *** (which validation then refuses,
    # E114/E411, so the engineer moves the key to api_key)
    stored = [written["upstream"] for written in variants] + ([doc["metadata"]] if "metadata" in doc else [])
    header_extra: list[str] = []
    if any(mask_json(x) != x for x in stored):
        for written in variants:
            written["upstream"] = mask_json(written["upstream"])
        if "metadata" in doc:
            doc["metadata"] = mask_json(doc["metadata"])
        header_extra = ["# Credentials stored in this experiment's upstream or metadata were replaced by ***: "
                        "put the key in api_key (a secret reference) and remove them."]
    header = [MODELINE.format(schema=f"experiment-{profile.name}.schema.json"),
              f"# Imported from the database by `expsync import` (experiment {a.id}, gateway profile {profile.name})."]
    header.append("# Provide the api_key variables (or replace them with another reference) before planning.")
    if dropped:
        header.append(f"# Left out of upstreams (gateway profile {profile.name} has no such field; its routing "
                      f"ignores them): {', '.join(sorted(dropped))}.")
    header += header_extra
    body = yaml.dump(doc, Dumper=_Dumper, sort_keys=False, allow_unicode=True, default_flow_style=False, width=100)
    return "\n".join(header) + "\n" + body
