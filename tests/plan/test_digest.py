"""Canonical encoding and digests: stable, order-independent, and encoded without a Python
callback per object on the values a plan digests."""

from __future__ import annotations

import dataclasses
import itertools
import subprocess
import sys
import uuid
from datetime import datetime, timedelta, timezone
from types import MappingProxyType

import pytest

from expsync.model import ActualExperiment, Status
from expsync.plan import digest as digest_mod
from expsync.plan.digest import canonical, digest, digest_items

from .builders import actual, actual_of, dexp, desired, dvar, run


def _state(n: int = 5) -> tuple:
    exps = [dexp(f"e{i}", status=Status.ACTIVE, pid=f"p/{i}",
                 variants=(dvar("a", upstream={"internal_id": f"m{i}", "extra_body": {"t": 0.2, "tags": ["x"]}}),
                           dvar("b", 2)))
            for i in range(n)]
    d = desired(*exps)
    a = actual(*(actual_of(e) for e in exps), managed=tuple(exps))
    return d, a


def test_canonical_sorts_keys_and_names_dataclasses() -> None:
    e = actual_of(dexp("k"))
    text = canonical(e)
    assert text.startswith('{"_type":"ActualExperiment",')
    assert canonical({"b": 1, "a": [1, 2]}) == '{"a":[1,2],"b":1}'
    assert canonical({"b": 1, "a": 2}) == canonical({"a": 2, "b": 1})
    assert canonical(Status.ACTIVE) == '"active"'
    assert canonical(uuid.UUID(int=1)) == '"00000000-0000-0000-0000-000000000001"'


def test_fields_excluded_from_comparison_are_not_digested() -> None:
    d1 = dexp("k")
    d2 = dataclasses.replace(d1, sources={})  # sources: compare=False
    assert d1 == d2 and digest(d1) == digest(d2)


def test_datetimes_are_utc_whatever_their_zone() -> None:
    t = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    other = t.astimezone(timezone(timedelta(hours=5)))
    e1 = dataclasses.replace(actual_of(dexp("k")), created_at=t)
    e2 = dataclasses.replace(e1, created_at=other)
    assert digest(e1) == digest(e2)
    assert '"created_at":"2026-01-02T03:04:05+00:00"' in canonical(e1)
    assert canonical({"at": other}) == '{"at":"2026-01-02T03:04:05+00:00"}'


def test_slow_path_values_encode_like_the_fast_path() -> None:
    """A dataclass, enum or set nested inside a plain dict (the encoder's hook) gives the same
    text as the same value met directly."""
    e = actual_of(dexp("k"))
    assert canonical({"x": e}) == '{"x":' + canonical(e) + "}"
    assert canonical({"s": Status.PAUSED, "set": {"b", "a"}}) == '{"s":"paused","set":["a","b"]}'
    assert canonical(MappingProxyType({"b": 2, "a": 1})) == '{"a":1,"b":2}'
    assert canonical((1, "x", None)) == '[1,"x",null]'
    with pytest.raises(TypeError, match="not canonicalisable"):
        canonical(object())


def test_equal_inputs_give_equal_digests_across_processes() -> None:
    d, a = _state(3)
    p = run(d, a)
    code = ("from tests.plan.test_digest import _state; from tests.plan.builders import run; "
            "d, a = _state(3); p = run(d, a); print(p.digests.desired, p.digests.actual, p.digests.ops)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"PYTHONHASHSEED": "123", "PATH": ""}, cwd=str(_repo())).stdout.split()
    assert out == [p.digests.desired, p.digests.actual, p.digests.ops]


def _repo():  # type: ignore[no-untyped-def]
    from pathlib import Path

    return Path(__file__).resolve().parents[2]


def test_digest_items_separates_items() -> None:
    assert digest_items(["ab", "c"]) != digest_items(["a", "bc"])
    assert digest_items([]) != digest_items([""])
    assert digest("x").startswith("sha256:") and len(digest("x")) == 7 + 64


def test_a_plan_digests_without_the_encoder_hook(monkeypatch: pytest.MonkeyPatch) -> None:
    """Desired experiments, actual experiments (with versions and datetimes), managed records
    and ops are encoded without calling back into Python per object: the encoder's hook is
    never needed for them."""
    calls = itertools.count()
    real = digest_mod._default

    def counted(obj: object) -> object:
        next(calls)
        return real(obj)

    monkeypatch.setattr(digest_mod, "_default", counted)
    d, a = _state(5)
    a = dataclasses.replace(a, experiments={
        k: dataclasses.replace(v, created_at=datetime(2026, 1, 1, tzinfo=timezone.utc), status=Status.ACTIVE)
        for k, v in a.experiments.items()})
    changed = desired(*(dataclasses.replace(e, name="renamed") for e in d.experiments.values()))
    p = run(changed, a)
    assert p.ops  # there is something to digest
    assert all(isinstance(x, ActualExperiment) for x in a.experiments.values())
    assert next(calls) == 0


def test_integers_beyond_64_bits_are_encoded_exactly() -> None:
    big = {"seed": 2**70, "x": uuid.UUID(int=3), "s": Status.ACTIVE, "at": datetime(2026, 1, 1, tzinfo=timezone.utc)}
    text = canonical(big)
    assert '"seed":1180591620717411303424' in text
    assert '"x":"00000000-0000-0000-0000-000000000003"' in text and '"s":"active"' in text
    assert digest({"seed": 2**70}) != digest({"seed": 2**70 + 1})
    e = dataclasses.replace(actual_of(dexp("k")), name="n")
    assert canonical({"e": e, "n": 2**64}) == '{"e":' + canonical(e) + ',"n":18446744073709551616}'
