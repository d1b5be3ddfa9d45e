"""Security-relevant changes: where each api key goes, as structured items the renderers word.

Every plan format lists these first, above the experiments. Per variant whose key the plan
makes the gateway send somewhere it did not send it before:

* :attr:`Security.KEY_REF_CHANGED` - the key reference changes (``env:A -> env:B``), same origin;
* :attr:`Security.ORIGIN_CHANGED` - the upstream origin (scheme, host, port) of a variant that
  carries a key changes, same reference;
* :attr:`Security.KEY_SENT_TO_NEW_ORIGIN` - both change in the same version: "the key from
  env:X will be sent to https://new.host" (a warning in every format);
* :attr:`Security.NEW_ORIGIN` - a new variant (or the first versions of a new experiment) whose
  key goes to an origin the experiment did not use before.

The reference a variant had is the one expsync last applied (the ownership record); a variant
without one (an adopted experiment) whose new version writes a key that differs from the stored
one counts as a reference change from an unknown reference. The origin it had is its latest
version's ``base_url`` in the database. A plan that completes an experiment still lists the
versions it writes before the transition. For an experiment expsync does not
manage whose values are hidden (``--no-secrets``), the old origin is never shown or compared:
every new version is listed as going to an origin not known to be used before.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Iterable, Mapping
from typing import Final

from expsync import rules, weburl
from expsync.diagnostics import SourceRange
from expsync.model import ActualExperiment, JsonObject, JsonValue, KeyChange
from expsync.plan.diff import ExperimentDiff
from expsync.plan.ops import AddVariant, InsertVersion
from expsync.records import dataclass


class Security(enum.StrEnum):
    """What kind of security-relevant change an item is (stable codes; renderers word them)."""

    KEY_REF_CHANGED = "key_ref_changed"
    ORIGIN_CHANGED = "origin_changed"
    KEY_SENT_TO_NEW_ORIGIN = "key_sent_to_new_origin"
    NEW_ORIGIN = "new_origin"


#: key changes that encrypt the resolved value afresh (``unchanged`` copies the stored key)
_KEY_WRITTEN: Final = frozenset({KeyChange.ROTATED, KeyChange.NEW})

#: the codes worded as warnings (the key and where it goes change together)
WARNINGS: Final = frozenset({Security.KEY_SENT_TO_NEW_ORIGIN})


@dataclass(frozen=True, slots=True, kw_only=True)
class SecurityItem:
    """One variant whose key goes somewhere new. ``None`` before-values: unchanged, not known
    or not shown."""

    code: Security
    experiment_key: str
    experiment_id: uuid.UUID
    variant_key: str
    label: str
    api_key_ref_before: str | None
    api_key_ref: str
    origin_before: str | None
    origin: str | None
    source: SourceRange | None = None
    #: the experiment is not managed by expsync and its values are not shown
    values_hidden: bool = False

    @property
    def is_warning(self) -> bool:
        return self.code in WARNINGS


def origin_of(base_url: JsonValue) -> str | None:
    """The origin the gateway sends a request to, as its WHATWG URL parser (Ada, as in Node's
    ``new URL()``) computes it: ``scheme://host[:port]``, scheme and host lower-cased, IDNA and
    IPv4 forms normalised, the default port left out; surrounding whitespace trimmed first, as
    the gateway does. ``None`` when there is no URL the gateway could parse. The one place a
    URL becomes an origin."""
    return weburl.origin(base_url) if isinstance(base_url, str) else None


def _upstream_origin(upstream: JsonObject | None) -> str | None:
    return origin_of(upstream.get("base_url")) if upstream is not None else None


def _applied_refs(r: ExperimentDiff) -> dict[str, str]:
    """variant id -> the key reference expsync last applied (empty when not managed)."""
    m = r.pair.managed
    variants = m.last_applied.get("variants") if m is not None else None
    out: dict[str, str] = {}
    for v in variants if isinstance(variants, list) else []:
        if isinstance(v, dict) and isinstance(v.get("id"), str) and isinstance(v.get("api_key"), str):
            out[str(v["id"])] = str(v["api_key"])
    return out


def _origins_before(a: ActualExperiment | None) -> dict[uuid.UUID, str | None]:
    """variant id -> the origin of its latest version (what the gateway sends to, or will)."""
    out: dict[uuid.UUID, str | None] = {}
    for v in a.variants if a is not None else ():
        latest = v.pending or v.current
        out[v.id] = _upstream_origin(latest.upstream if latest else None)
    return out


def security_items(r: ExperimentDiff, *, hidden: bool = False) -> tuple[SecurityItem, ...]:
    """The security-relevant changes of one checked experiment diff, in variant order.

    ``hidden``: the experiment is not managed by expsync and its values must not be shown;
    old origins are then neither shown nor compared."""
    d = r.pair.desired
    if not r.ops or d is None:
        # no op: the ownership record (which holds the references) is unchanged, no version is
        # written; removed from git: no key goes anywhere new
        return ()
    versions: Mapping[uuid.UUID, InsertVersion] = {op.variant_id: op for op in r.ops if isinstance(op, InsertVersion)}
    # wanted completed: only the versions the plan writes before the transition count (a
    # reference alone changes nothing that can route again)
    keys_sent = rules.keys_matter(d.status)
    if not keys_sent and not versions:
        return ()
    refs_before = _applied_refs(r)
    added = {op.variant_id for op in r.ops if isinstance(op, AddVariant)}
    if not versions and all(refs_before.get(str(d.variant_id(v)), str(v.api_key)) == str(v.api_key) for v in d.variants):
        return ()  # nothing new is sent anywhere (most experiments of a large plan): no URL parsed
    origins_before = {} if hidden else _origins_before(r.pair.actual)
    used_before = {o for o in origins_before.values() if o is not None}
    out: list[SecurityItem] = []
    for i, v in enumerate(d.variants):
        vid = d.variant_id(v)
        ref, ref_before = str(v.api_key), refs_before.get(str(vid))
        version = versions.get(vid)
        origin = _upstream_origin(v.upstream)
        origin_before = origins_before.get(vid)
        code: Security | None = None
        if version is None and not keys_sent:
            continue
        if vid in added or (version is not None and vid not in origins_before):
            # a new variant (or a first version, or a hidden experiment's version)
            if version is not None and (origin is None or origin not in used_before):
                code = Security.NEW_ORIGIN
                origin_before = None
        else:
            # no applied reference (adopted): a key written afresh differs from the stored one
            ref_changed = (ref_before != ref if ref_before is not None
                           else version is not None and version.key_change in _KEY_WRITTEN)
            origin_changed = version is not None and origin_before != origin
            if ref_changed and origin_changed:
                code = Security.KEY_SENT_TO_NEW_ORIGIN
            elif origin_changed:
                code = Security.ORIGIN_CHANGED
            elif ref_changed:
                code = Security.KEY_REF_CHANGED
        if code is None:
            continue
        out.append(SecurityItem(
            code=code, experiment_key=r.pair.key, experiment_id=r.experiment_id, variant_key=v.key, label=v.label,
            api_key_ref_before=ref_before if ref_before != ref else None, api_key_ref=ref,
            origin_before=origin_before if origin_before != origin else None, origin=origin, source=d.source(f"variants[{i}].api_key"),
            values_hidden=hidden,
        ))
    return tuple(out)


#: the order items are listed in: where an existing variant's key goes first (a warning
#: first), new variants last (those of experiments wanted active or paused before drafts'), so
#: that a flood of new draft variants cannot push a key that goes out on apply out of a
#: shortened comment or past the annotation limit
_RANK: Final = {Security.KEY_SENT_TO_NEW_ORIGIN: 0, Security.ORIGIN_CHANGED: 1, Security.KEY_REF_CHANGED: 1,
                Security.NEW_ORIGIN: 2}


def _rank(item: SecurityItem, r: ExperimentDiff) -> int:
    d = r.pair.desired
    routes = d is not None and d.status in rules.ROUTING_STATUSES
    return _RANK[item.code] + (1 if item.code is Security.NEW_ORIGIN and not routes else 0)


def all_security_items(results: Iterable[tuple[ExperimentDiff, bool]]) -> tuple[SecurityItem, ...]:
    """Every experiment's items: by :func:`_rank`, then experiment key, then variant order."""
    ranked = [(_rank(x, r), x) for r, hidden in sorted(results, key=lambda t: t[0].pair.key)
              for x in security_items(r, hidden=hidden)]
    return tuple(x for _, x in sorted(ranked, key=lambda t: t[0]))  # stable: keys and variant order stay
