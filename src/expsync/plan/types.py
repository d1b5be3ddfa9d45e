"""The Plan: ordered ops plus explanation plus status. Built only by :func:`expsync.plan.plan`.

Fields marked *display only* explain the plan to people; apply must not branch on them.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from fractions import Fraction
from typing import TYPE_CHECKING, overload

from expsync.diagnostics import Diagnostic, has_errors
from expsync.model import JsonValue, Status
from expsync.plan.ops import Action, Explained, Op, action_of, touches_gateway
from expsync.records import dataclass
from expsync.rules import CREATED_AS, exact_shares

if TYPE_CHECKING:
    from expsync.plan.security import SecurityItem


@dataclass(frozen=True, slots=True)
class Share:
    """One variant's traffic share as the gateway computes it (display only): ``exact`` is
    the fraction of the 2^32 bucket values that land on it (:func:`expsync.rules.exact_shares`),
    which is ``weight / total`` up to 1/2^32 while the total is at most 2^32."""

    label: str
    weight: int
    total: int
    exact: Fraction

    @property
    def percent(self) -> float:
        return float(self.exact * 100)


def shares(items: Sequence[tuple[uuid.UUID, str, int]]) -> tuple[Share, ...]:
    """Shares of ``(variant id, label, weight)`` in the gateway's walk order (by id)."""
    ordered = sorted(items)
    weights = [w for _, _, w in ordered]
    exact = exact_shares(weights)
    return tuple(Share(label, w, sum(weights), x) for (_, label, w), x in zip(ordered, exact, strict=True))


@dataclass(frozen=True, slots=True)
class DriftItem:
    """A field changed in the database outside git, relative to what expsync last applied."""

    experiment_key: str
    path: str
    last_applied: JsonValue
    actual: JsonValue
    protective: bool  # paused/completed/archived outside git: never silently undone
    reverted: bool  # the plan puts git's value back


@dataclass(frozen=True, slots=True, kw_only=True)
class ExperimentPlan:
    """Per-experiment explanation (display only) and the ops that belong to it."""

    key: str
    experiment_id: uuid.UUID
    public_model_id: str
    public_model_id_before: str | None
    status_before: Status | None  # None: does not exist yet
    status_after: Status | None  # None: deleted
    archived_before: bool | None
    archived_after: bool | None
    shares_before: tuple[Share, ...]
    shares_after: tuple[Share, ...]
    #: what changes for traffic, as reasons the renderers word
    routing_impact: tuple[Explained, ...]
    #: this experiment's share of :attr:`Plan.cache_keys` (display only)
    cache_keys: tuple[str, ...]
    ops: tuple[Op, ...]
    notes: tuple[Explained, ...] = ()
    #: not managed by expsync and its values are not shown (``--no-secrets``): before-side
    #: values of its ops are ``None`` (labels: the variant id), ``shares_before`` is empty
    values_hidden: bool = False

    @property
    def status_path(self) -> str:
        before = self.status_before.value if self.status_before else "(new)"
        after = self.status_after.value if self.status_after else "(deleted)"
        if self.status_before is None and self.status_after is not None and self.status_after is not CREATED_AS:
            return f"(new) -> {CREATED_AS} -> {after}"
        return before if before == after else f"{before} -> {after}"

    @property
    def action(self) -> Action:
        """The one action this experiment is counted under: create > delete > transition >
        update (field, variant, version and archive edits) > manage (bookkeeping only)."""
        actions = {action_of(op) for op in self.ops}
        for a in (Action.CREATE, Action.DELETE, Action.TRANSITION):
            if a in actions:
                return a
        if actions - {Action.MANAGE}:
            return Action.UPDATE
        return Action.MANAGE


class _Digest:
    """One field of :class:`Digests`: given as the digest itself or as a function computing it,
    which runs on the first read only (a text plan with no changes reads no digest; apply and
    the JSON format read each once). Reads always give the string."""

    __slots__ = ("_name", "_default")

    def __init__(self, default: str | None = None) -> None:
        self._default = default
        self._name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self._name = name

    @overload
    def __get__(self, obj: None, owner: type | None = None) -> str: ...
    @overload
    def __get__(self, obj: Digests, owner: type | None = None) -> str: ...

    def __get__(self, obj: Digests | None, owner: type | None = None) -> str:
        if obj is None:  # the dataclass asks for the field's default
            if self._default is None:
                raise AttributeError(self._name)
            return self._default
        value = obj.__dict__[self._name]
        if not isinstance(value, str):
            value = obj.__dict__[self._name] = value()
        return value

    def __set__(self, obj: Digests, value: str | Callable[[], str]) -> None:
        obj.__dict__[self._name] = value


@dataclass(frozen=True)
class Digests:
    """SHA-256 digests binding a plan to its inputs; equal when every digest is equal."""

    desired: _Digest = _Digest()
    actual: _Digest = _Digest()
    #: of the ops as the plan file shows them (:func:`expsync.plan.document.ops_digest`)
    ops: _Digest = _Digest()
    #: keyed digest (HMAC) of the api key values the ops encrypt (``new``/``rotated``), bound
    #: outside the pure planner (:func:`expsync.crypto.api_keys_digest`); ``""`` when the ops
    #: write no key or no BYOK key was available to bind them
    secrets: _Digest = _Digest("")

    def with_secrets(self, secrets: str) -> Digests:
        """These digests with ``secrets`` bound, the others still computed when first read
        (``dataclasses.replace`` would read, and so compute, every one)."""
        out = Digests.__new__(Digests)
        out.__dict__.update(self.__dict__, secrets=secrets)
        return out


@dataclass(frozen=True, slots=True, kw_only=True)
class Plan:
    #: ops in execution order - apply executes exactly these, in this order (it only groups
    #: consecutive ops of one type into one statement batch)
    ops: tuple[Op, ...]
    #: per-experiment explanation, sorted by key (display only)
    experiments: tuple[ExperimentPlan, ...]
    #: changes made in the database outside git (display; protective ones also refuse)
    drift: tuple[DriftItem, ...]
    #: refusals (errors) and warnings, sorted by file and line
    diagnostics: tuple[Diagnostic, ...]
    digests: Digests
    #: every Redis key apply will refresh (membership key first), derived from ``ops`` by
    #: :func:`expsync.plan.cache_keys_for`; apply enqueues exactly these
    cache_keys: tuple[str, ...]
    #: False when api keys were not compared (--no-secrets): such a plan cannot be applied
    secrets_compared: bool = True
    #: where keys go that they did not go before (display only; every format lists it first)
    security: tuple[SecurityItem, ...] = ()
    #: values of experiments expsync does not manage are not shown (``--no-secrets``)
    values_hidden: bool = False
    #: the gateway profile the desired state was validated and diffed for (display only)
    gateway_profile: str = ""

    @property
    def has_changes(self) -> bool:
        return bool(self.ops)

    @property
    def refused(self) -> bool:
        return has_errors(self.diagnostics)

    @property
    def applyable(self) -> bool:
        return not self.refused and self.secrets_compared

    @property
    def gateway_changes(self) -> bool:
        return any(touches_gateway(op) for op in self.ops)

    def counts(self) -> dict[str, int]:
        out = {a.value: 0 for a in Action}
        for e in self.experiments:
            if e.ops:
                out[e.action.value] += 1
        return out

    def op_counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for op in self.ops:
            out[type(op).__name__] = out.get(type(op).__name__, 0) + 1
        return out
