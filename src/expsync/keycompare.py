"""Compare desired api keys with the keys stored in the database (spec §5 item 3).

Runs between reading the actual state and planning, so the planner stays pure: it receives
``(experiment key, variant key) -> KeyChange`` and never sees a key. The stored key compared
against is the variant's *latest* version (a pending future-dated one if present, else the
current one) - the one a new version would follow. Comparison is constant-time; a row that
cannot be decrypted is an ``E407`` diagnostic naming the variant, never its bytes.
"""

from __future__ import annotations

from collections.abc import Mapping

from expsync.crypto import DecryptError, decrypter, keys_equal
from expsync.diagnostics import Diagnostic
from expsync.model import ActualState, DesiredState, KeyChange, Secret, SecretRef

KeyChanges = dict[tuple[str, str], KeyChange]


def needs_comparison(desired: DesiredState, actual: ActualState) -> bool:
    """True when some desired variant already has a stored version (so BYOK is needed)."""
    for d in desired.experiments.values():
        a = actual.experiments.get(d.resolved_id)
        if a is None:
            continue
        ids = {v.id for v in a.variants if v.current or v.pending}
        if any(d.variant_id(v) in ids for v in d.variants):
            return True
    return False


def compare_keys(
    desired: DesiredState,
    actual: ActualState,
    secrets: Mapping[SecretRef, Secret],
    byok_key: bytes,
) -> tuple[KeyChanges, list[Diagnostic]]:
    out: KeyChanges = {}
    diags: list[Diagnostic] = []
    decrypt = decrypter(byok_key)
    for d in desired.experiments.values():
        a = actual.experiments.get(d.resolved_id)
        if a is None:
            continue
        by_id = {v.id: v for v in a.variants}
        for i, v in enumerate(d.variants):
            av = by_id.get(d.variant_id(v))
            latest = (av.pending or av.current) if av else None
            want = secrets.get(v.api_key)
            if latest is None or want is None:
                continue
            try:
                stored = decrypt(latest.encrypted_api_key)
            except DecryptError as e:
                path = f"variants[{i}].api_key"
                diags.append(Diagnostic.make("E407", f"variant {v.label!r}: {e}", v.api_key.source or d.source(path),
                                             path=path, experiment=d.key))
                continue
            out[(d.key, v.key)] = KeyChange.UNCHANGED if keys_equal(stored, want) else KeyChange.ROTATED
    return out, diags
