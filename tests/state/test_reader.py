"""read_actual: correctness on rows written as the gateway writes them, and a constant number
of statements whatever the number of experiments (spec §5 item 2, §8)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
import sqlalchemy as sa

from expsync.model import ActualState, Status
from bench.pgwire import WireCounter
from expsync.state import core_read
from expsync.state.db import begin, make_engine
from expsync.state.reader import read_actual, read_state
from expsync.state.tables import experiment, managed, variant, version

NOW = datetime(2026, 6, 1, 12, 0, 0, tzinfo=UTC)
KEY = {"iv": "AQEBAQEBAQEBAQEB", "data": "BYqkw/XMmCPg5u8=", "authTag": "c7u4OyVc28JaLeeSWVzpWA=="}


def _u(n: int, prefix: str = "") -> uuid.UUID:
    """A uuid whose byte order is obvious: _u(1) < _u(2) < ... ; prefix sets the first hex digits."""
    h = f"{prefix}{n:x}"
    return uuid.UUID(hex=h + "0" * (32 - len(h)) if prefix else h.rjust(32, "0"))


class Seed:
    """Writes rows the way the gateway does: explicit uuids, jsonb upstream and key."""

    def __init__(self, conn: sa.Connection) -> None:
        self.conn = conn

    def experiment(self, exp_id: uuid.UUID, public_model_id: str, status: str = "draft", **kw: Any) -> uuid.UUID:
        self.conn.execute(
            sa.insert(experiment).values(
                id=exp_id, public_model_id=public_model_id, name=kw.pop("name", f"exp {exp_id}"), status=status, **kw
            )
        )
        return exp_id

    def variant(self, var_id: uuid.UUID, exp_id: uuid.UUID, label: str, weight: int = 1) -> uuid.UUID:
        self.conn.execute(sa.insert(variant).values(id=var_id, experiment_id=exp_id, label=label, weight=weight))
        return var_id

    def version(
        self, ver_id: uuid.UUID, var_id: uuid.UUID, effective_at: datetime, internal_id: str = "m"
    ) -> uuid.UUID:
        self.conn.execute(
            sa.insert(version).values(
                id=ver_id,
                variant_id=var_id,
                upstream={"internal_id": internal_id, "base_url": "https://api.example/v1"},
                encrypted_api_key=KEY,
                effective_at=effective_at,
            )
        )
        return ver_id


def _read(engine: sa.Engine, ids: list[uuid.UUID], pids: list[str], now: datetime = NOW) -> ActualState:
    with begin(engine, snapshot=True) as conn:
        return read_actual(conn, experiment_ids=ids, public_model_ids=pids, now=now)


def test_current_is_latest_past_version_and_pending_is_future_one(db_engine: sa.Engine) -> None:
    e, a = _u(1, "e"), _u(1, "a")
    with db_engine.begin() as conn:
        s = Seed(conn)
        s.experiment(e, "partner/foo", "active", started_at=NOW - timedelta(days=3))
        s.variant(a, e, "rc1", 3)
        s.version(_u(1, "1"), a, NOW - timedelta(days=2), "old")
        s.version(_u(2, "1"), a, NOW - timedelta(days=1), "cur")
        s.version(_u(3, "1"), a, NOW + timedelta(hours=1), "next")
        s.version(_u(4, "1"), a, NOW + timedelta(hours=2), "later")

    state = _read(db_engine, [e], ["partner/foo"])

    exp = state.experiments[e]
    assert (exp.status, exp.is_archived, exp.public_model_id) == (Status.ACTIVE, False, "partner/foo")
    assert exp.started_at == NOW - timedelta(days=3)
    (var,) = exp.variants
    assert (var.label, var.weight) == ("rc1", 3)
    assert var.current is not None and var.current.id == _u(2, "1")
    assert var.current.upstream == {"internal_id": "cur", "base_url": "https://api.example/v1"}
    assert var.current.encrypted_api_key == KEY
    assert var.current.effective_at == NOW - timedelta(days=1)
    assert var.pending is not None and var.pending.id == _u(4, "1")


def test_version_effective_exactly_now_is_current(db_engine: sa.Engine) -> None:
    e, a = _u(1, "e"), _u(1, "a")
    with db_engine.begin() as conn:
        s = Seed(conn)
        s.experiment(e, "p/x")
        s.variant(a, e, "a")
        s.version(_u(1, "1"), a, NOW - timedelta(seconds=1))
        s.version(_u(2, "1"), a, NOW)
    (var,) = _read(db_engine, [e], []).experiments[e].variants
    assert var.current is not None and var.current.id == _u(2, "1")
    assert var.pending is None


def test_ties_on_effective_at_are_broken_by_id_descending(db_engine: sa.Engine) -> None:
    e, a, b = _u(1, "e"), _u(1, "a"), _u(2, "a")
    at, later = NOW - timedelta(minutes=5), NOW + timedelta(minutes=5)
    with db_engine.begin() as conn:
        s = Seed(conn)
        s.experiment(e, "p/x")
        s.variant(a, e, "a")
        s.variant(b, e, "b")
        # inserted highest id first, so insertion order cannot be what decides
        s.version(uuid.UUID("ff000000-0000-4000-8000-000000000000"), a, at)
        s.version(uuid.UUID("0f000000-0000-4000-8000-000000000000"), a, at)
        s.version(uuid.UUID("f0000000-0000-4000-8000-000000000000"), a, at)
        s.version(uuid.UUID("00000000-0000-4000-8000-0000000000ff"), b, later)
        s.version(uuid.UUID("00000000-0000-4000-8000-000000000f00"), b, later)
    va, vb = _read(db_engine, [e], []).experiments[e].variants
    assert va.current is not None and va.current.id == uuid.UUID("ff000000-0000-4000-8000-000000000000")
    assert va.pending is None
    assert vb.current is None
    assert vb.pending is not None and vb.pending.id == uuid.UUID("00000000-0000-4000-8000-000000000f00")


def test_variant_without_versions_has_neither(db_engine: sa.Engine) -> None:
    e, a = _u(1, "e"), _u(1, "a")
    with db_engine.begin() as conn:
        s = Seed(conn)
        s.experiment(e, "p/x")
        s.variant(a, e, "a")
    (var,) = _read(db_engine, [e], []).experiments[e].variants
    assert var.current is None and var.pending is None


def test_variants_and_experiments_come_in_uuid_byte_order(db_engine: sa.Engine) -> None:
    ids = [
        uuid.UUID("f0000000-0000-4000-8000-000000000000"),
        uuid.UUID("00000000-0000-4000-8000-00000000000a"),
        uuid.UUID("8fffffff-ffff-4fff-bfff-ffffffffffff"),
        uuid.UUID("90000000-0000-4000-8000-000000000000"),
    ]
    exps = [uuid.UUID("c0000000-0000-4000-8000-000000000000"), uuid.UUID("10000000-0000-4000-8000-000000000000")]
    with db_engine.begin() as conn:
        s = Seed(conn)
        for e in exps:
            s.experiment(e, f"p/{e.hex[:4]}")
        for n, v in enumerate(ids):
            s.variant(v, exps[0], f"v{n}")
        pg_order = (
            conn.execute(sa.select(variant.c.id).order_by(variant.c.id)).scalars().all()
            if conn.dialect.name == "postgresql"
            else sorted(ids, key=lambda u: u.bytes)
        )
    state = _read(db_engine, exps, [])
    assert list(state.experiments) == sorted(exps, key=lambda u: u.bytes)
    got = [v.id for v in state.experiments[exps[0]].variants]
    assert got == sorted(ids, key=lambda u: u.bytes) == pg_order
    assert state.experiments[exps[1]].variants == ()


def test_reads_routing_rows_on_desired_public_ids_managed_or_not(db_engine: sa.Engine) -> None:
    desired, managed_id = _u(1, "d"), _u(1, "b")
    unmanaged_active, unmanaged_paused, unmanaged_draft = _u(1, "c"), _u(2, "c"), _u(3, "c")
    other_active, completed = _u(4, "c"), _u(5, "c")
    with db_engine.begin() as conn:
        s = Seed(conn)
        s.experiment(desired, "p/wanted")
        s.experiment(managed_id, "p/elsewhere", "paused", is_archived=True)
        s.experiment(unmanaged_active, "p/wanted", "active")
        s.experiment(unmanaged_paused, "p/also", "paused")
        s.experiment(unmanaged_draft, "p/wanted", "draft")
        s.experiment(completed, "p/wanted", "completed")
        s.experiment(other_active, "p/unrelated", "active")
        conn.execute(
            sa.insert(managed).values(
                key="old-exp", experiment_id=managed_id, last_applied={"status": "paused"}, applied_at=NOW
            )
        )

    state = _read(db_engine, [desired], ["p/wanted", "p/also"])

    assert set(state.experiments) == {desired, managed_id, unmanaged_active, unmanaged_paused}
    assert state.experiments[managed_id].is_archived is True
    assert state.experiments[managed_id].status is Status.PAUSED
    record = state.managed["old-exp"]
    assert (record.experiment_id, record.last_applied, record.applied_at) == (managed_id, {"status": "paused"}, NOW)


def test_empty_inputs_read_only_managed_rows(db_engine: sa.Engine) -> None:
    with db_engine.begin() as conn:
        Seed(conn).experiment(_u(1, "e"), "p/x", "active")
    state = _read(db_engine, [], [])
    assert state.experiments == {} and state.managed == {}


def test_timestamps_are_utc_aware_whatever_the_session_time_zone(db_engine: sa.Engine) -> None:
    e = _u(1, "e")
    local = timezone(timedelta(hours=-5))
    with db_engine.begin() as conn:
        Seed(conn).experiment(e, "p/x", "completed", started_at=NOW.astimezone(local), ended_at=NOW)
    with begin(db_engine) as conn:
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql("SET LOCAL TIME ZONE 'Asia/Kolkata'")
        exp = read_actual(conn, experiment_ids=[e], public_model_ids=[], now=NOW).experiments[e]
    for value in (exp.started_at, exp.ended_at, exp.created_at, exp.updated_at):
        assert value is not None and value.utcoffset() == timedelta(0)
    assert exp.started_at == NOW and exp.ended_at == NOW


def test_now_must_be_timezone_aware(sqlite_engine: sa.Engine) -> None:
    with sqlite_engine.connect() as conn, pytest.raises(ValueError, match="tz-aware"):
        read_actual(conn, experiment_ids=[], public_model_ids=[], now=datetime(2026, 1, 1))


def test_long_id_lists_travel_as_one_parameter(db_engine: sa.Engine, count_statements: Any) -> None:
    # Far beyond SQLite's bound-variable limit (32,766) if each id were its own parameter.
    ids = [uuid.uuid4() for _ in range(40_000)]
    pids = [f"p/{n}" for n in range(40_000)]
    with db_engine.begin() as conn:
        Seed(conn).experiment(ids[-1], "p/x")
    with count_statements(db_engine) as log:
        state = _read(db_engine, ids, pids)
    assert list(state.experiments) == [ids[-1]]
    assert all(len(s) < 5_000 for s in log.statements)


# --------------------------------------------------------------------------------------
# Statement budget
# --------------------------------------------------------------------------------------


def _seed_many(engine: sa.Engine, n: int, *, prefix: str) -> tuple[list[uuid.UUID], list[str]]:
    exp_rows, var_rows, ver_rows = [], [], []
    for i in range(n):
        e = uuid.uuid5(uuid.NAMESPACE_URL, f"{prefix}/{i}")
        exp_rows.append({"id": e, "public_model_id": f"{prefix}/m{i}", "name": f"e{i}", "status": "active"})
        for j in range(3):
            v = uuid.uuid5(e, str(j))
            var_rows.append({"id": v, "experiment_id": e, "label": f"v{j}", "weight": j + 1})
            for k in range(4):
                ver_rows.append(
                    {
                        "id": uuid.uuid5(v, str(k)),
                        "variant_id": v,
                        "upstream": {"internal_id": f"m{k}", "base_url": "https://x.example"},
                        "encrypted_api_key": KEY,
                        "effective_at": NOW + timedelta(hours=k - 2),
                    }
                )
    with engine.begin() as conn:
        conn.execute(sa.insert(experiment), exp_rows)
        conn.execute(sa.insert(variant), var_rows)
        conn.execute(sa.insert(version), ver_rows)
        conn.execute(
            sa.insert(managed),
            [{"key": f"{prefix}-{i}", "experiment_id": r["id"], "last_applied": {}} for i, r in enumerate(exp_rows)],
        )
    return [r["id"] for r in exp_rows], [r["public_model_id"] for r in exp_rows]


def test_statement_count_does_not_grow_with_experiments(db_engine: sa.Engine, count_statements: Any) -> None:
    """SQLite: statements SQLAlchemy runs; Postgres: what reaches the server (the reads run on
    psycopg directly), counted by the wire proxy: executions and round trips."""
    counts = {}
    seeded = 0
    for n in (1, 200):
        ids, pids = _seed_many(db_engine, n, prefix=f"n{n}")
        seeded += n
        if db_engine.dialect.name == "postgresql":
            with WireCounter() as w:
                engine = make_engine(w.url(db_engine.url.render_as_string(hide_password=False)))
                try:
                    with begin(engine, snapshot=True) as conn:
                        conn.exec_driver_sql("SELECT 1")  # BEGIN and the connection's set-up first
                        before = w.stats()
                        state = read_actual(conn, experiment_ids=ids, public_model_ids=pids, now=NOW)
                        after = w.stats()
                finally:
                    engine.dispose()
            counts[n] = (after["executes"] - before["executes"], after["round_trips"] - before["round_trips"])
        else:
            with count_statements(db_engine) as log:
                state = _read(db_engine, ids, pids)
            counts[n] = (log.count, log.count)
        assert len(state.experiments) == seeded  # earlier rows are managed: read too
        for exp in state.experiments.values():
            assert len(exp.variants) == 3
            assert all(v.current is not None and v.pending is not None for v in exp.variants)
    print(f"read_actual statements, round trips on {db_engine.dialect.name}: {counts}")
    if db_engine.dialect.name == "postgresql":
        assert counts[1] == counts[200] == (5, 1)  # the clock + 4 reads (the clock unused here), one batch
    else:
        assert counts[1] == counts[200] == (4, 4)


def test_pipelined_postgres_read_equals_the_core_read(pg_engine: sa.Engine) -> None:
    """The Postgres path (raw psycopg, one pipeline) and the portable SQLAlchemy Core path
    return equal states on the same rows, with UTC datetimes either way."""
    ids, pids = _seed_many(pg_engine, 30, prefix="eq")
    with pg_engine.begin() as conn:
        conn.execute(sa.update(experiment).values(started_at=NOW - timedelta(days=1), status="active"))
    with begin(pg_engine, snapshot=True) as conn:
        conn.exec_driver_sql("SET LOCAL TimeZone = 'Asia/Kolkata'")  # a host's own setting
        fast = read_actual(conn, experiment_ids=ids[:20], public_model_ids=pids[20:], now=NOW)
        core = core_read.read_core(conn, ids[:20], pids[20:], NOW)
    assert fast == core
    assert len(fast.experiments) == 30
    times = [e.created_at for e in fast.experiments.values()] + [
        v.current.effective_at for e in fast.experiments.values() for v in e.variants if v.current]
    assert times and all(t is not None and t.tzinfo is timezone.utc for t in times)


def test_read_state_uses_the_database_clock_in_the_same_batch(pg_engine: sa.Engine) -> None:
    e, a = _u(7, "e"), _u(7, "a")
    with pg_engine.begin() as conn:
        s = Seed(conn)
        s.experiment(e, "partner/clock")
        s.variant(a, e, "a")
        s.version(_u(1, "c"), a, datetime.now(UTC) - timedelta(minutes=5), "past")
        s.version(_u(2, "c"), a, datetime.now(UTC) + timedelta(minutes=5), "future")
    with begin(pg_engine, snapshot=True) as conn:
        db_now = conn.exec_driver_sql("SELECT now()").scalar_one()
        now, state = read_state(conn, experiment_ids=[e], public_model_ids=[], now=None)
    assert now == db_now and now.tzinfo is timezone.utc
    v = state.experiments[e].variants[0]
    assert v.current is not None and v.current.upstream["internal_id"] == "past"
    assert v.pending is not None and v.pending.upstream["internal_id"] == "future"


def test_read_state_needs_a_clock_on_sqlite(sqlite_engine: sa.Engine) -> None:
    with begin(sqlite_engine) as conn, pytest.raises(ValueError, match="no server clock"):
        read_state(conn, experiment_ids=[], public_model_ids=[], now=None)


def test_selected_columns_follow_the_model_field_order() -> None:
    # reader.assemble builds the frozen model types positionally from these column tuples.
    import dataclasses

    from expsync.model import (
        ActualExperiment,
        ActualVariant,
        ActualVersion,
        ManagedRecord,
    )
    def names(cls: type) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    # the two trailing fields (variants, metadata) are not plain columns of the experiment query
    assert [c.name for c in core_read.EXPERIMENT_COLUMNS] == names(ActualExperiment)[:-2]
    assert names(ActualExperiment)[-2:] == ["variants", "metadata"]
    assert [c.name for c in core_read.VARIANT_COLUMNS] == names(ActualVariant)[:4]
    assert names(ActualVariant)[4:] == ["current", "pending"]
    assert [c.name for c in core_read.VERSION_COLUMNS] == names(ActualVersion)
    assert [c.name for c in core_read.MANAGED_COLUMNS] == names(ManagedRecord)


def test_postgres_read_runs_no_garbage_collection(pg_engine: sa.Engine) -> None:
    """Decoding rows makes no cycles: the cyclic collector stays paused meanwhile (it would
    otherwise rescan the whole loaded desired state many times at 5,000 experiments)."""
    import gc

    ids, pids = _seed_many(pg_engine, 20, prefix="gc")
    runs: list[str] = []

    def seen(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            runs.append(phase)

    old = gc.get_threshold()
    with begin(pg_engine, snapshot=True) as conn:
        conn.exec_driver_sql("SELECT 1")
        gc.callbacks.append(seen)
        gc.set_threshold(200)  # decoding 20 experiments allocates far more than that
        try:
            state = read_actual(conn, experiment_ids=ids, public_model_ids=pids, now=NOW)
        finally:
            gc.set_threshold(*old)
            gc.callbacks.remove(seen)
    assert len(state.experiments) == 20
    # none while rows decode; at most one (the young generation) as the collector comes back on
    assert len(runs) <= 1 and gc.isenabled()


def test_jsonb_numbers_come_back_exactly(pg_engine: sa.Engine) -> None:
    e, a = _u(9, "e"), _u(9, "a")
    up = {"internal_id": "m", "extra_body": {"seed": 2**70, "t": 0.1, "n": -0.0}}
    with pg_engine.begin() as conn:
        s = Seed(conn)
        s.experiment(e, "partner/big")
        s.variant(a, e, "a")
        conn.execute(sa.insert(version).values(id=_u(3, "c"), variant_id=a, upstream=up, encrypted_api_key=KEY,
                                               effective_at=NOW - timedelta(days=1)))
    with begin(pg_engine, snapshot=True) as conn:
        fast = read_actual(conn, experiment_ids=[e], public_model_ids=[], now=NOW)
        core = core_read.read_core(conn, [e], [], NOW)
    got = fast.experiments[e].variants[0].current
    assert got is not None and got.upstream == up and got.upstream["extra_body"]["seed"] == 2**70
    assert fast == core


def test_pipelined_read_with_metadata_equals_the_core_read(pg_engine: sa.Engine) -> None:
    from expsync.state.tables import add_metadata_column_ddl

    e, a = _u(11, "e"), _u(11, "a")
    with pg_engine.begin() as conn:
        conn.exec_driver_sql(add_metadata_column_ddl("postgresql"))
        s = Seed(conn)
        s.experiment(e, "partner/meta")
        s.variant(a, e, "a")
        s.version(_u(4, "c"), a, NOW - timedelta(days=1))
        conn.exec_driver_sql("UPDATE model_experiment SET metadata = '{\"team\": \"x\", \"n\": 1}'::jsonb")
    with begin(pg_engine, snapshot=True) as conn:
        fast = read_actual(conn, experiment_ids=[e], public_model_ids=[], now=NOW, with_metadata=True)
        core = core_read.read_core(conn, [e], [], NOW, with_metadata=True)
    assert fast.experiments[e].metadata == {"team": "x", "n": 1}
    assert fast == core
