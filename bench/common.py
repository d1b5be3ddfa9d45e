"""Shared set-up for the benchmarks: the shared corpus and floor, a scratch database, whole-process
timing with each child's own peak RSS.

The corpus and the floor are the shared definitions in ``../shared/bench/`` (``corpus.py``,
``floor.py``); nothing here redefines them. A benchmark database is built the way the corpus
docstring says: one ``expsync apply --yes`` of the folder, then 9 older versions per variant
inserted in SQL (so each variant has 10), then ANALYZE.
"""

from __future__ import annotations

import base64
import importlib.util
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import psycopg

REPO = Path(__file__).resolve().parent.parent
#: the shared definitions: ``../shared/bench`` from the repo (a worktree one level deeper also
#: works), or EXPSYNC_SHARED_BENCH
SHARED = Path(os.environ.get("EXPSYNC_SHARED_BENCH") or REPO.parent / "shared" / "bench")
if not SHARED.is_dir():
    SHARED = REPO.parent.parent / "shared" / "bench"
FLOOR = SHARED / "floor.py"
PEER = SHARED / "peer_replay.py"
HOST, PORT = "127.0.0.1", 5432
USER = os.environ.get("PGUSER") or "postgres"
ADMIN_DSN = f"host={HOST} port={PORT} user={USER} dbname=postgres"
EXPSYNC = str(Path(sys.executable).parent / "expsync")

HISTORY_SQL = """
insert into model_experiment_variant_version (variant_id, upstream, encrypted_api_key, effective_at)
select v.variant_id, v.upstream, v.encrypted_api_key, v.effective_at - (g * interval '1 day')
from model_experiment_variant_version v, generate_series(1, 9) g
"""


def compile_bytecode() -> None:
    """Compile expsync's modules to ``.pyc`` files, as ``pip install`` of a wheel does.

    The virtualenv holds an editable install (``pip install -e``), whose modules are compiled
    on first import and cached in ``__pycache__``, unless ``PYTHONDONTWRITEBYTECODE`` is set (it
    is on some CI machines and on this one): then every run would compile about 60 modules
    again (about 60 ms), a cost no installed expsync pays. Every benchmark calls this first."""
    import compileall

    spec = importlib.util.find_spec("expsync")
    assert spec and spec.submodule_search_locations, "expsync is not installed in this interpreter"
    for folder in spec.submodule_search_locations:
        compileall.compile_dir(folder, quiet=1)


def load_corpus() -> ModuleType:
    spec = importlib.util.spec_from_file_location("shared_corpus", SHARED / "corpus.py")
    assert spec and spec.loader, SHARED
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


corpus = load_corpus()


@contextmanager
def scratch_db(prefix: str = "expsync_bench") -> Iterator[str]:
    """A new empty database on the local server (dropped afterwards); yields its name."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def sa_url(dbname: str) -> str:
    return f"postgresql://{USER}@{HOST}:{PORT}/{dbname}"


def libpq_dsn(dbname: str) -> str:
    return f"host={HOST} port={PORT} user={USER} dbname={dbname}"


def bench_env(url: str) -> dict[str, str]:
    env = {**os.environ, "EXPSYNC_DATABASE_URL": url,
           "BYOK_ENCRYPTION_KEY": base64.b64encode(b"k" * 32).decode(),
           "BENCH_KEY_1": "sk-bench-one-0001", "BENCH_KEY_2": "sk-bench-two-0002", "BENCH_KEY_3": "sk-bench-three-003"}
    for k in ("EXPSYNC_REDIS_URL", "EXPSYNC_ACTOR", "GITHUB_SHA", "GITHUB_ACTIONS", "GITHUB_OUTPUT"):
        env.pop(k, None)
    return env


#: user + system CPU seconds of the last process :func:`run` reaped (the server's work not included)
LAST_CPU = 0.0


def run(cmd: Sequence[str], env: dict[str, str], ok: Sequence[int] = (0,)) -> tuple[float, float, str]:
    """Run a whole process; (wall seconds, its own peak RSS in MiB from wait4, stdout+stderr)."""
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    assert p.stdout is not None
    out = p.stdout.read()
    _, status, usage = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    global LAST_CPU
    LAST_CPU = usage.ru_utime + usage.ru_stime
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode not in ok:
        raise SystemExit(f"{' '.join(cmd[:3])} exited {p.returncode}:\n{out.decode()[-3000:]}")
    return wall, usage.ru_maxrss / 1024, out.decode()


def seed(root: Path, n: int, dbname: str, *, history: bool = True) -> float:
    """Write the shared corpus of ``n`` experiments under ``root`` and apply it to ``dbname``
    (then 9 older versions per variant and ANALYZE). Returns the seconds it took."""
    t0 = time.perf_counter()
    corpus.write(root, n)
    env = bench_env(sa_url(dbname))
    run([EXPSYNC, "db", "init"], env)
    run([EXPSYNC, "apply", "--yes", str(root)], env)
    with psycopg.connect(libpq_dsn(dbname), autocommit=True) as c:
        if history:
            c.execute(HISTORY_SQL)
        c.execute("ANALYZE")
    return time.perf_counter() - t0


#: CPU seconds (user + system) per command of the last :func:`interleaved` call: steadier than
#: wall time when other jobs share the machine
CPU: dict[str, list[float]] = {}


def interleaved(cmds: dict[str, tuple[Sequence[str], dict[str, str], Sequence[int]]], reps: int) -> dict[str, list[float]]:
    """Run each command ``reps`` times, alternating, so noise hits all sides alike; returns the
    wall times (CPU times in :data:`CPU`)."""
    times: dict[str, list[float]] = {k: [] for k in cmds}
    CPU.clear()
    for _ in range(reps):
        for k, (cmd, env, ok) in cmds.items():
            times[k].append(run(cmd, env, ok)[0])
            CPU.setdefault(k, []).append(LAST_CPU)
    return times


def summary(xs: list[float], key: str | None = None) -> str:
    """Median and minimum wall time; with ``key``, also the median CPU time of that command."""
    cpu = f"; CPU median {statistics.median(CPU[key]):.2f}s" if key and CPU.get(key) else ""
    return f"median {statistics.median(xs):.2f}s (min {min(xs):.2f}s, {len(xs)} runs{cpu})"


def med(xs: list[float]) -> float:
    return statistics.median(xs)


def fmt_wire(stats: dict[str, Any]) -> str:
    m = stats["messages"]
    return (f"{stats['round_trips']} round trips, {stats['executes']} executions "
            f"(Execute {m.get('E', 0)}, Query {m.get('Q', 0)}, Parse {m.get('P', 0)}, Sync {m.get('S', 0)}), "
            f"{stats['connections']} connection(s)")
