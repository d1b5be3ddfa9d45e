"""The read side of the pipeline, shared by ``plan`` and ``apply``:

    desired (already loaded) + secrets -> read actual (one snapshot) -> compare keys -> plan

It takes an open connection (apply calls it inside its locked transaction, plan inside a
read-only snapshot) - a SQLAlchemy one, or on Postgres a bare psycopg one
(:mod:`expsync.state.connection`: ``plan`` never imports SQLAlchemy there) - and an explicit
:class:`~expsync.settings.Settings`; nothing here reads ``os.environ``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING

from expsync.crypto import api_keys_digest, load_key
from expsync.diagnostics import Diagnostic
from expsync.keycompare import compare_keys, needs_comparison
from expsync.model import (ActualExperiment, ActualState, ActualVariant, ActualVersion, DesiredState, KeyChange, Secret,
                           SecretRef)
from expsync.plan import Plan, PlanOptions, plan
from expsync.plan.ops import InsertVersion
from expsync.profiles import GatewayProfile
from expsync.records import dataclass
from expsync.settings import Settings
from expsync.state.catalog import (REQUIRED_TABLES, NotInitialized, missing_tables, missing_tables_and_metadata,
                                   raise_missing)
from expsync.state.connection import backend
from expsync.state.reader import read_state

if TYPE_CHECKING:
    from expsync.state.connection import AnyConnection


__all__ = ["REQUIRED_TABLES", "Computed", "NotInitialized", "Settings", "check_initialized", "compute_plan",
           "raise_missing"]


@dataclass(frozen=True, slots=True)
class Computed:
    plan: Plan
    actual: ActualState
    #: E407 and BYOK problems: invalid input (exit 3), not a plan refusal
    key_diagnostics: tuple[Diagnostic, ...]


def check_initialized(conn: AnyConnection) -> None:
    raise_missing(missing_tables(conn, REQUIRED_TABLES))


def initialized_has_metadata(conn: AnyConnection) -> bool:
    """:func:`check_initialized`, and whether ``model_experiment.metadata`` exists (which
    gateway profile fits): one question to the database."""
    missing, has_column = missing_tables_and_metadata(conn, REQUIRED_TABLES)
    raise_missing(missing)
    return has_column


def as_routed(actual: ActualState, profile: GatewayProfile | None) -> ActualState:
    """The actual state with every stored upstream as the profile's routing reads it (keys a
    non-strict routing drops are left out), so they neither make a new version nor drift."""
    if profile is None or profile.routing_strict:
        return actual

    def version(v: ActualVersion | None) -> ActualVersion | None:
        routed = profile.as_routed(v.upstream) if v is not None else None
        return v if routed is None or v is None else dataclasses.replace(v, upstream=routed)  # type: ignore[arg-type]

    def variant(v: ActualVariant) -> ActualVariant:
        current, pending = version(v.current), version(v.pending)
        return v if current is v.current and pending is v.pending else \
            dataclasses.replace(v, current=current, pending=pending)

    def experiment(e: ActualExperiment) -> ActualExperiment:
        # unchanged rows are kept as they are (no copies, no deep comparison): the usual case
        variants = tuple(variant(v) for v in e.variants)
        changed = any(a is not b for a, b in zip(variants, e.variants, strict=True))
        return dataclasses.replace(e, variants=variants) if changed else e

    return dataclasses.replace(actual, experiments={k: experiment(e) for k, e in actual.experiments.items()})


def compute_plan(
    conn: AnyConnection,
    desired: DesiredState,
    secrets: Mapping[SecretRef, Secret] | None,
    settings: Settings,
    *,
    now: datetime,
    check_tables: bool = False,
) -> Computed:
    """``secrets=None`` means ``--no-secrets``: keys are not compared, the plan is not applyable.
    ``check_tables``: :func:`check_initialized` first (on Postgres in the reads' own round trip).

    ``now`` is replaced by the database's own clock on Postgres: the gateway decides which
    version is current with the database's ``now()``, and new versions get that clock too, so
    a CI runner's skewed clock must not decide it."""
    now, actual = read_state(
        conn,
        experiment_ids={d.resolved_id for d in desired.experiments.values()},
        public_model_ids={d.public_model_id for d in desired.experiments.values()},
        now=None if backend(conn) == "postgresql" else now,  # Postgres: its now(), same round trip
        with_metadata=settings.with_metadata,
        required_tables=REQUIRED_TABLES if check_tables else (),
    )
    actual = as_routed(actual, settings.profile)
    key_changes: dict[tuple[str, str], object] = {}
    key_diags: list[Diagnostic] = []
    if secrets is not None and needs_comparison(desired, actual):
        byok = load_key(settings.byok_value)  # ConfigError (exit 3) naming how to make one
        key_changes, key_diags = compare_keys(desired, actual, secrets, byok)  # type: ignore[assignment]
    p = plan(
        desired,
        actual,
        now=now,
        key_changes=key_changes,  # type: ignore[arg-type]
        # --no-secrets is the untrusted (fork PR) mode: it also hides unmanaged experiments' values
        options=PlanOptions(redis_prefix=settings.redis_prefix, compare_secrets=secrets is not None,
                            redact_unmanaged=secrets is None, allow_empty=settings.allow_empty,
                            gateway_profile=settings.profile.name if settings.profile else ""),
    )
    return Computed(bind_api_keys(p, secrets, settings), actual, tuple(key_diags))


def bind_api_keys(p: Plan, secrets: Mapping[SecretRef, Secret] | None, settings: Settings) -> Plan:
    """``p`` with ``digests.secrets`` set: a keyed digest of every value its ops encrypt, so
    a value that changes between ``plan --out`` and ``apply --plan`` makes the plan stale even
    when the key change stays ``rotated``. Unbound (``""``) without secrets or a BYOK key."""
    writes = [(o.variant_id, o.api_key_ref) for o in p.ops
              if isinstance(o, InsertVersion) and o.key_change in (KeyChange.NEW, KeyChange.ROTATED)]
    if not writes or secrets is None or not settings.byok_value:
        return p
    bound = api_keys_digest(writes, secrets, load_key(settings.byok_value))
    return dataclasses.replace(p, digests=p.digests.with_secrets(bound))  # the other digests stay unread
