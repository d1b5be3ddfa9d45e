"""Offline semantic rules across all desired experiments (spec §4, codes E2xx; E411 for
credentials in the upstream JSON).

Each rule is a function ``(experiments) -> Iterable[Diagnostic]`` listed in :data:`RULES`;
none needs the database. The status-related rules are the offline side of rows in
:mod:`expsync.rules` (the edit matrix, the activation guards, the routing statuses); nothing
here restates a status.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Final

from expsync.credentials import is_credential_name
from expsync.diagnostics import Diagnostic
from expsync import rules
from expsync.model import DesiredExperiment


def _first_seen(e: DesiredExperiment, path: str) -> str:
    src = e.source(path)
    return str(src) if src else e.key


def unique_keys(exps: Sequence[DesiredExperiment]) -> Iterable[Diagnostic]:
    first: dict[str, DesiredExperiment] = {}
    for e in exps:
        if e.key in first:
            yield Diagnostic.make(
                "E201",
                f"experiment key {e.key!r} already defined at {_first_seen(first[e.key], 'key')}",
                e.source("key"),
                path="key",
                experiment=e.key,
            )
        else:
            first[e.key] = e


def unique_id_pins(exps: Sequence[DesiredExperiment]) -> Iterable[Diagnostic]:
    first: dict[object, tuple[DesiredExperiment, str]] = {}
    for e in exps:
        pins = [("id", e.id)] + [(f"variants[{i}].id", v.id) for i, v in enumerate(e.variants)]
        for path, pin in pins:
            if pin is None:
                continue
            if pin in first:
                other, other_path = first[pin]
                yield Diagnostic.make(
                    "E208",
                    f"id {pin} is also pinned at {_first_seen(other, other_path)}",
                    e.source(path),
                    path=path,
                    experiment=e.key,
                )
            else:
                first[pin] = (e, path)


def unique_variants(exps: Sequence[DesiredExperiment]) -> Iterable[Diagnostic]:
    for e in exps:
        keys: dict[str, int] = {}
        labels: dict[str, int] = {}
        for i, v in enumerate(e.variants):
            if v.key in keys:
                where = f"variants[{i}].key" if f"variants[{i}].key" in e.sources else f"variants[{i}].label"
                yield Diagnostic.make(
                    "E202",
                    f"variant key {v.key!r} already used by variants[{keys[v.key]}]",
                    e.source(where),
                    path=where,
                    experiment=e.key,
                )
            else:
                keys[v.key] = i
            if v.label in labels:
                yield Diagnostic.make(
                    "E203",
                    f"variant label {v.label!r} already used by variants[{labels[v.label]}]",
                    e.source(f"variants[{i}].label"),
                    path=f"variants[{i}].label",
                    experiment=e.key,
                )
            else:
                labels[v.label] = i


def archivable(exps: Sequence[DesiredExperiment]) -> Iterable[Diagnostic]:
    """The archive row of the edit matrix, checked on the wanted state."""
    for e in exps:
        if e.archived and not rules.may(rules.Change.ARCHIVE, e.status):
            yield Diagnostic.make(
                "E205", f"archived: true with status: {e.status}", e.source("archived"), path="archived", experiment=e.key
            )


def enough_variants(exps: Sequence[DesiredExperiment]) -> Iterable[Diagnostic]:
    """The minimum-variants activation guard, checked on every routing experiment."""
    for e in exps:
        problem = rules.variant_count_problem(len(e.variants)) if e.status in rules.ROUTING_STATUSES else None
        if problem:
            yield Diagnostic.make(
                "E206",
                f"status {e.status} {problem}",
                e.source("variants") or e.source("status"),
                path="variants",
                experiment=e.key,
            )
        elif len(e.variants) == 1 and e.status in rules.ROUTING_STATUSES:
            yield Diagnostic.make(
                "W301",
                f"one variant: all traffic to {e.public_model_id!r} goes to {e.variants[0].label!r}",
                e.source("variants") or e.source("status"),
                path="variants",
                experiment=e.key,
            )


def weight_sum(exps: Sequence[DesiredExperiment]) -> Iterable[Diagnostic]:
    """The weight-sum activation guard, checked on every experiment (a draft is activated later)."""
    for e in exps:
        problem = rules.weight_sum_problem([v.weight for v in e.variants])
        if problem:
            yield Diagnostic.make("E312", problem, e.source("variants"), path="variants", experiment=e.key)


def one_router_per_public_id(exps: Sequence[DesiredExperiment]) -> Iterable[Diagnostic]:
    holders: dict[str, list[DesiredExperiment]] = defaultdict(list)
    for e in exps:
        if e.status in rules.ROUTING_STATUSES:
            holders[e.public_model_id].append(e)
    for pid, group in holders.items():
        for e in group[1:]:
            yield Diagnostic.make(
                "E207",
                f"{pid!r} is also {group[0].status} in experiment {group[0].key!r} ({_first_seen(group[0], 'status')})",
                e.source("status"),
                path="status",
                experiment=e.key,
            )


def no_credentials_in_upstream(exps: Sequence[DesiredExperiment]) -> Iterable[Diagnostic]:
    """The upstream JSON is stored in clear and sent as is: a field named like a credential
    (:func:`expsync.credentials.is_credential_name`) holding a literal, at any depth (e.g.
    ``extra_body.api_key`` or a header map), is refused like credentials in ``base_url``."""
    for e in exps:
        for i, v in enumerate(e.variants):
            for path in credential_literals(v.upstream, f"variants[{i}].upstream"):
                yield Diagnostic.make(
                    "E411",
                    f"{path.rpartition('.')[2]!r} looks like a credential and holds a literal value; the upstream "
                    "JSON is stored and shown in clear",
                    e.source(path),
                    path=path,
                    experiment=e.key,
                )


def credential_literals(value: object, path: str) -> Iterator[str]:
    """Paths of credential-named keys holding a literal (string or number) under ``value``:
    for each, the deepest credential-named key holding it. One walk of ``value``."""
    found: list[str] = []
    _scan(value, path, found)
    return iter(found)


def _scan(value: object, path: str, found: list[str]) -> bool:
    """Append to ``found`` the credential literals under ``value`` (see
    :func:`credential_literals`); return whether ``value`` is or holds a literal (see
    :func:`_is_scalar_literal`), also anywhere inside a list or object: a credential-named key
    holding ``["sk-..."]`` or ``{value: "sk-..."}`` carries the literal all the same."""
    if isinstance(value, dict):
        literal = False
        for k, child in value.items():
            if isinstance(child, dict | list):
                before = len(found)
                child_literal = _scan(child, f"{path}.{k}", found)
                report = child_literal and len(found) == before
            else:  # a scalar, judged here without a call
                child_literal = report = _is_scalar_literal(child)
            if report and is_credential_name(str(k)):
                found.append(f"{path}.{k}")
            literal = literal or child_literal
        return literal
    if isinstance(value, list):
        literal = False
        for j, item in enumerate(value):
            if isinstance(item, dict | list):
                literal = _scan(item, f"{path}[{j}]", found) or literal
            elif not literal:
                literal = _is_scalar_literal(item)
        return literal
    return _is_scalar_literal(value)


def _is_scalar_literal(value: object) -> bool:
    """A non-blank string or a number (not a boolean, not null)."""
    if isinstance(value, str):
        return bool(value.strip())
    return not isinstance(value, bool) and isinstance(value, int | float)


RULES: Final[tuple[Callable[[Sequence[DesiredExperiment]], Iterable[Diagnostic]], ...]] = (
    unique_keys,
    unique_id_pins,
    unique_variants,
    archivable,
    enough_variants,
    weight_sum,
    one_router_per_public_id,
    no_credentials_in_upstream,
)


def check(exps: Sequence[DesiredExperiment]) -> list[Diagnostic]:
    return [d for rule in RULES for d in rule(exps)]
