"""Two operator replicas against one API server, coordinated by Kopf peering.

Each replica is a real ``redis-audiences run --peering`` subprocess logged in
with a kubeconfig, so the replicas share nothing but the emulated API server
and Redis, as two pods would.
"""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from controller.conftest import Cluster, OperatorProcess
from controller.test_operator import (
    activation,
    create_slow_sql_activation,
    destination,
    phase,
    ready,
    runs,
)
from servers import free_port

PEERING = "/apis/kopf.dev/v1/clusterkopfpeerings"
PEER_NAME = "redis-audiences"


def peers(cluster: Cluster) -> dict[str, Any]:
    found: dict[str, Any] = cluster.request("GET", f"{PEERING}/redis-audiences").get("status")
    return found or {}


def wait_for(check: Any, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.1)


@pytest.fixture
def replicas(cluster: Cluster, tmp_path: Path) -> Iterator[list[OperatorProcess]]:
    """Two replicas sharing one ClusterKopfPeering; the first has priority."""
    cluster.request("POST", PEERING, {"apiVersion": "kopf.dev/v1", "kind": "ClusterKopfPeering",
                                      "metadata": {"name": "redis-audiences"}})  # fmt: skip
    options = [("active", "200"), ("standby", "100")]
    started = [
        OperatorProcess(cluster, tmp_path / name, "--peering", PEER_NAME, "--priority", priority)
        for name, priority in options
    ]
    try:
        wait_for(lambda: len(peers(cluster)) == 2)
        wait_for(lambda: cluster.watched("redisaudienceactivations"))
        time.sleep(1)  # NB: the standby has seen the active peer and paused.
        yield started
    finally:
        for replica in started:
            replica.stop()


def synced_events(cluster: Cluster) -> int:
    return sum(e.get("reason") == "Synced" for e in cluster.events())


def test_only_one_of_two_replicas_runs_a_sync_and_the_standby_takes_over(
    cluster: Cluster, replicas: list[OperatorProcess], r: redis.Redis, redis_url: str
) -> None:
    cluster.create(destination(redis_url))
    cluster.wait(destination(redis_url), ready, timeout=30)
    obj = cluster.create(activation(["user:1"]))
    cluster.wait(obj, lambda o: runs(o) == 1, timeout=30)
    time.sleep(3)  # NB: a second replica running the same change would post by now.

    assert synced_events(cluster) == 1
    assert r.smembers("user:1.dinmo_segments") == {b"vip"}

    replicas[0].stop()
    wait_for(lambda: len([p for p in peers(cluster).values() if p.get("lifetime", 1)]) <= 1)
    cluster.patch(obj, {"spec": {"source": {"inline": {"keys": ["user:2"]}}}})
    taken_over = cluster.wait(obj, lambda o: runs(o) == 2, timeout=60)

    assert taken_over["status"]["lastRun"]["trigger"] == "SpecChange"
    assert r.smembers("user:2.dinmo_segments") == {b"vip"}
    assert not r.exists("user:1.dinmo_segments")
    assert synced_events(cluster) == 2


@pytest.mark.postgres
def test_a_replica_killed_mid_run_leaves_nothing_the_next_one_cannot_repair(
    cluster: Cluster, r: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    first = OperatorProcess(cluster, tmp_path / "first")
    wait_for(lambda: cluster.watched("redisaudienceactivations"))
    cluster.create(destination(redis_url))
    cluster.wait(destination(redis_url), ready, timeout=30)
    obj = create_slow_sql_activation(cluster)
    cluster.wait(obj, lambda o: phase(o) == "Syncing", timeout=30)
    time.sleep(0.5)  # NB: the run is reading its source and holds the audience lock.

    first.process.kill()
    first.process.wait(10)
    second = OperatorProcess(cluster, tmp_path / "second")
    try:
        repaired = cluster.wait(obj, lambda o: runs(o) >= 1 and o["status"]["phase"] == "Synced",
                                timeout=150)  # fmt: skip
    finally:
        second.stop()

    assert repaired["status"]["members"] == 3
    assert all(r.smembers(f"user:{n}.dinmo_segments") == {b"vip"} for n in (1, 2, 3))
    assert not r.keys("audiences:{vip}:lock*")


def test_the_operator_command_serves_liveness_and_metrics(
    cluster: Cluster, redis_url: str, tmp_path: Path
) -> None:
    health, metrics = free_port(), free_port()
    liveness = f"http://127.0.0.1:{health}/healthz"
    process = OperatorProcess(
        cluster, tmp_path, "--liveness", liveness, "--metrics-port", str(metrics)
    )
    try:
        wait_for(lambda: cluster.watched("redisaudienceactivations"))
        cluster.create(destination(redis_url))
        obj = cluster.create(activation(["user:1"]))
        cluster.wait(obj, lambda o: runs(o) == 1, timeout=30)
        alive = urllib.request.urlopen(f"http://127.0.0.1:{health}/healthz", timeout=5)
        exposed = urllib.request.urlopen(f"http://127.0.0.1:{metrics}/metrics", timeout=5).read()
    finally:
        process.stop()

    assert alive.status == 200
    assert b'redis_audiences_runs_total{activation="vip"' in exposed
    assert process.process.returncode == 0


def test_an_operator_started_after_its_objects_exist_syncs_each_once(
    cluster: Cluster, r: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    cluster.create(destination(redis_url))
    obj = cluster.create(activation(["user:1"]))

    process = OperatorProcess(cluster, tmp_path)
    try:
        synced = cluster.wait(obj, lambda o: runs(o) == 1, timeout=30)
        time.sleep(3)  # NB: a second run of the same start-up would post by now.
        events = synced_events(cluster)
    finally:
        process.stop()

    assert synced["status"]["phase"] == "Synced"
    assert events == 1
    assert r.smembers("user:1.dinmo_segments") == {b"vip"}
