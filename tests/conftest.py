"""Real Redis servers for tests: standalone and a three-primary Cluster.

Each is a private ``redis-server`` on free loopback ports, started once per
test session and stopped after; tests get a flushed database.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator

import pytest
import redis
from redis.cluster import RedisCluster

from servers import REDIS_CLI, free_port, start_server, stop


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    process = start_server(tmp_path_factory.mktemp("redis"), port)
    yield f"redis://127.0.0.1:{port}/0"
    stop(process)


@pytest.fixture
def r(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    client.flushall()
    yield client
    client.close()


@pytest.fixture(scope="session")
def cluster_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    ports = [free_port() for _ in range(3)]
    base = tmp_path_factory.mktemp("cluster")
    processes = [
        start_server(
            base / str(port),
            port,
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            "nodes.conf",
            "--cluster-node-timeout",
            "2000",
        )
        for port in ports
    ]
    try:
        subprocess.run(
            [
                REDIS_CLI,
                "--cluster",
                "create",
                *(f"127.0.0.1:{p}" for p in ports),
                "--cluster-replicas",
                "0",
                "--cluster-yes",
            ],
            check=True,
            capture_output=True,
            timeout=30,
        )
        _wait_cluster_ok(ports)
        yield f"redis://127.0.0.1:{ports[0]}"
    finally:
        for process in processes:
            stop(process)


def _wait_cluster_ok(ports: list[int]) -> None:
    for _ in range(300):
        states = [redis.Redis(port=p).cluster("info") for p in ports]
        if all(b"cluster_state:ok" in _as_bytes(s) for s in states):
            return
        time.sleep(0.05)
    raise RuntimeError("the test cluster did not reach cluster_state:ok")


def _as_bytes(info: object) -> bytes:
    if isinstance(info, dict):
        return b"cluster_state:ok" if info.get("cluster_state") == "ok" else b""
    return info if isinstance(info, bytes) else str(info).encode()


@pytest.fixture
def rc(cluster_url: str) -> Iterator[RedisCluster]:
    client = RedisCluster.from_url(cluster_url)
    client.flushall(target_nodes=RedisCluster.PRIMARIES)
    yield client
    client.disconnect_connection_pools()  # NB: close() leaves the node pools open.
    client.close()
