"""pipeline.as_routed: stored upstreams as the profile's routing reads them. Rows the routing
reads unchanged are kept as the very same objects (no copy per variant, no deep comparison at
thousands of experiments); only a variant with a dropped key is replaced."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from expsync.model import ActualExperiment, ActualState, ActualVariant, ActualVersion, Status
from expsync.pipeline import as_routed
from expsync.profiles import PROFILES

T = datetime(2026, 6, 1, tzinfo=UTC)


def _variant(n: int, exp: uuid.UUID, upstream: dict[str, object]) -> ActualVariant:
    vid = uuid.UUID(int=100 + n)
    cur = ActualVersion(uuid.UUID(int=200 + n), vid, upstream, {}, T)
    return ActualVariant(vid, exp, f"v{n}", 1, cur)


def test_unchanged_rows_are_kept_and_a_dropped_key_replaces_only_its_variant() -> None:
    profile = next(p for p in PROFILES.values() if not p.routing_strict)
    known = {k: "x" for k in list(profile.upstream)[:2]}
    e1, e2 = uuid.UUID(int=1), uuid.UUID(int=2)
    plain = ActualExperiment(e1, "p/a", "A", None, Status.ACTIVE, False,
                             variants=(_variant(1, e1, known), _variant(2, e1, known)))
    extra = ActualExperiment(e2, "p/b", "B", None, Status.ACTIVE, False,
                             variants=(_variant(3, e2, known), _variant(4, e2, {**known, "not_routed_key": 1})))
    routed = as_routed(ActualState(experiments={e1: plain, e2: extra}), profile)
    assert routed.experiments[e1] is plain
    got = routed.experiments[e2]
    assert got is not extra and got.variants[0] is extra.variants[0]
    assert got.variants[1].current is not None and got.variants[1].current.upstream == known
    assert as_routed(ActualState(experiments={e1: plain}), None).experiments[e1] is plain
