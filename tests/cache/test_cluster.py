"""The cache refresh works against a real Redis Cluster (3 masters on loopback): the per-id
keys live in different hash slots, so the refresh must not use a cross-slot MULTI."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import sqlalchemy as sa
from redis.cluster import RedisCluster

from expsync.cache.refresh import connect, drain, enqueue
from expsync.model import membership_key, per_id_key
from expsync.state.tables import experiment


def _free_ports(n: int) -> list[int]:
    """Ports p with p + 10000 free too (the cluster bus port), below 55536."""
    import random

    ports: list[int] = []
    while len(ports) < n:
        p = random.randint(20000, 45000)
        try:
            for q in (p, p + 10000):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", q))
        except OSError:
            continue
        if p not in ports:
            ports.append(p)
    return ports


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = shutil.which("redis-server")
    cli = shutil.which("redis-cli")
    assert server and cli, "redis-server and redis-cli are needed (scripts/services.sh installs them)"
    root = tmp_path_factory.mktemp("cluster")
    ports = _free_ports(3)
    procs = []
    try:
        for p in ports:
            d = root / str(p)
            d.mkdir()
            procs.append(subprocess.Popen(
                [server, "--port", str(p), "--bind", "127.0.0.1", "--cluster-enabled", "yes",
                 "--cluster-config-file", str(d / "nodes.conf"), "--save", "", "--appendonly", "no", "--dir", str(d)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        for p in ports:
            probe = redis.Redis(port=p, socket_connect_timeout=1, retry_on_error=[], retry=None)
            for _ in range(100):
                try:
                    if probe.ping():
                        break
                except redis.ConnectionError:
                    time.sleep(0.05)
        subprocess.run([cli, "--cluster", "create", *[f"127.0.0.1:{p}" for p in ports], "--cluster-replicas", "0",
                        "--cluster-yes"], check=True, capture_output=True, timeout=60)
        for _ in range(200):
            info = redis.Redis(port=ports[0], socket_connect_timeout=1).cluster("info")
            if info.get("cluster_state") == "ok":
                break
            time.sleep(0.05)
        yield f"redis+cluster://127.0.0.1:{ports[0]}"
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()


def test_refresh_and_sync_on_redis_cluster(cluster: str, sqlite_engine: sa.Engine) -> None:
    pids = [f"partner/model-{i}" for i in range(12)]
    with sqlite_engine.begin() as conn:
        conn.execute(sa.insert(experiment), [
            {"public_model_id": pid, "name": pid, "status": "active" if i % 2 else "paused"} for i, pid in enumerate(pids)])
        enqueue(conn, [membership_key("t:"), *(per_id_key(p, "t:") for p in pids)])
    client = RedisCluster.from_url(cluster.replace("+cluster", ""))
    slots = {client.keyslot(per_id_key(p, "t:")) for p in pids}
    assert len({client.get_node_from_key(per_id_key(p, "t:")).name for p in pids}) > 1 and len(slots) > 1
    for p in pids:
        client.set(per_id_key(p, "t:"), "stale")
    result = drain(sqlite_engine, connect(cluster), prefix="t:")
    assert result.outbox_rows == len(pids) + 1
    assert client.get(membership_key("t:")) == json.dumps(sorted(pids), separators=(",", ":")).encode()
    assert all(client.get(per_id_key(p, "t:")) is None for p in pids)
    for p in pids:
        client.set(per_id_key(p, "t:"), "stale")
    drain(sqlite_engine, connect(cluster), prefix="t:", full=True)  # cache sync
    assert all(client.get(per_id_key(p, "t:")) is None for p in pids)
