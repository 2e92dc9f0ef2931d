"""The operator end to end: Kopf, KMock and a real redis-server."""

from __future__ import annotations

import base64
import time
import urllib.error
from pathlib import Path
from typing import Any

import pytest
import redis
from prometheus_client import generate_latest

from controller.conftest import Cluster
from redis_audiences.controller.metrics import REGISTRY as METRICS
from servers import free_port, start_server, stop

API = "audiences.dev/v1alpha1"


def destination(redis_url: str) -> dict[str, Any]:
    return {"apiVersion": API, "kind": "RedisDestination",
            "metadata": {"name": "local", "namespace": "default"},
            "spec": {"url": redis_url}}  # fmt: skip


def activation(keys: list[str], **spec: Any) -> dict[str, Any]:
    return {"apiVersion": API, "kind": "RedisAudienceActivation",
            "metadata": {"name": "vip", "namespace": "default"},
            "spec": {"destinationRef": {"name": "local"}, "audienceName": "vip",
                     "syncMode": "Full", "source": {"inline": {"keys": keys}},
                     "safety": {"maxRemovalPercent": 100}, **spec}}  # fmt: skip


def ready(obj: Any) -> bool:
    conditions = (obj.get("status") or {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def synced(cluster: Cluster, redis_url: str, obj: dict[str, Any]) -> Any:
    """Create the local destination and ``obj``; wait for its first run."""
    cluster.create(destination(redis_url))
    cluster.wait(destination(redis_url), ready)
    created = cluster.create(obj)
    cluster.wait(created, lambda o: runs(o) == 1)
    return created


def runs(obj: Any) -> int:
    return len((obj.get("status") or {}).get("history") or [])


def test_a_new_activation_is_synced_with_counts_and_the_right_sets(
    operator: Cluster, r: redis.Redis, redis_url: str
) -> None:
    operator.create(destination(redis_url))
    operator.wait(destination(redis_url), ready)

    obj = operator.create(activation(["user:1", "user:2"]))
    synced = operator.wait(obj, lambda o: (o.get("status") or {}).get("phase") == "Synced")

    assert synced["status"]["members"] == 2
    assert synced["status"]["lastRun"]["trigger"] == "SpecChange"
    assert synced["status"]["observedGeneration"] == 1
    assert r.smembers("user:1.dinmo_segments") == {b"vip"}
    assert not any(key.startswith("kopf") for key in synced["status"])
    assert any(e.get("reason") == "Synced" for e in operator.events())


def test_a_spec_change_runs_again_and_a_status_patch_does_not(
    operator: Cluster, r: redis.Redis, redis_url: str
) -> None:
    obj = synced(operator, redis_url, activation(["user:1"]))

    operator.patch(obj, {"status": {"note": "touched"}}, status=True)
    operator.patch(obj, {"spec": {"source": {"inline": {"keys": ["user:2"]}}}})
    changed = operator.wait(obj, lambda o: runs(o) == 2)

    assert changed["status"]["observedGeneration"] == 2
    assert r.smembers("user:2.dinmo_segments") == {b"vip"}
    assert not r.exists("user:1.dinmo_segments")
    assert runs(operator.get(obj)) == 2


def test_the_annotation_requests_a_manual_run(
    operator: Cluster, r: redis.Redis, redis_url: str
) -> None:
    obj = synced(operator, redis_url, activation(["user:1"]))
    r.srem("user:1.dinmo_segments", "vip")  # someone broke the audience by hand

    operator.patch(
        obj,
        {"metadata": {"annotations": {"audiences.dev/sync-requested-at": "2026-12-03T10:00:00Z"}}},
    )
    manual = operator.wait(obj, lambda o: runs(o) == 2)

    assert manual["status"]["lastRun"]["trigger"] == "Manual"
    assert manual["status"]["lastHandledSyncRequest"] == "2026-12-03T10:00:00Z"
    assert r.smembers("user:1.dinmo_segments") == {b"vip"}


def test_an_invalid_spec_is_stalled_with_a_message_naming_the_field(
    operator: Cluster, redis_url: str
) -> None:
    operator.create(destination(redis_url))
    operator.wait(destination(redis_url), ready)

    obj = operator.create(activation(["user:1"], audienceName="vip customers"))
    stalled = operator.wait(obj, lambda o: (o.get("status") or {}).get("phase") == "Failed")

    time.sleep(5)  # NB: more than two schedule ticks: no retry of an invalid spec.
    warnings = [e for e in operator.events() if e.get("reason") == "InvalidSpec"]
    operator.patch(obj, {"spec": {"audienceName": "vip"}})
    fixed = operator.wait(obj, lambda o: (o.get("status") or {}).get("phase") == "Synced")

    condition = next(c for c in stalled["status"]["conditions"] if c["type"] == "Stalled")
    assert condition["status"] == "True"
    assert condition["reason"] == "InvalidSpec"
    assert "spec.audienceName" in condition["message"]
    assert len(warnings) == 1
    assert fixed["status"]["observedGeneration"] == 2


def test_an_unreachable_destination_is_not_ready_and_says_why(operator: Cluster) -> None:
    unreachable = destination("redis://127.0.0.1:1")

    operator.create(unreachable)
    checked = operator.wait(unreachable, lambda o: bool((o.get("status") or {}).get("conditions")))

    condition = checked["status"]["conditions"][0]
    assert (condition["type"], condition["status"], condition["reason"]) == (
        "Ready",
        "False",
        "Unreachable",
    )
    assert "Redis unreachable" in condition["message"]


def test_an_interval_schedule_runs_again_and_says_when(operator: Cluster, redis_url: str) -> None:
    operator.create(destination(redis_url))
    operator.wait(destination(redis_url), ready)

    obj = operator.create(activation(["user:1"], schedule={"interval": "1s"}))
    first = operator.wait(obj, lambda o: runs(o) >= 1)
    again = operator.wait(obj, lambda o: runs(o) >= 2, timeout=20)

    assert first["status"]["nextSyncTime"].endswith("Z")
    assert again["status"]["lastRun"]["trigger"] == "Schedule"


def test_a_suspended_activation_has_no_scheduled_runs_but_a_manual_run_works(
    operator: Cluster, redis_url: str
) -> None:
    operator.create(destination(redis_url))
    operator.wait(destination(redis_url), ready)
    obj = operator.create(activation(["user:1"], schedule={"interval": "1s"}, suspend=True))
    operator.wait(obj, lambda o: (o.get("status") or {}).get("phase") == "Suspended")

    time.sleep(5)  # NB: more than two schedule ticks and intervals pass.
    assert runs(operator.get(obj)) == 1
    operator.patch(
        obj,
        {"metadata": {"annotations": {"audiences.dev/sync-requested-at": "2026-12-03T11:00:00Z"}}},
    )
    manual = operator.wait(obj, lambda o: runs(o) == 2)

    assert manual["status"]["lastRun"]["trigger"] == "Manual"
    assert "nextSyncTime" not in manual["status"]


def test_redis_down_fails_with_an_event_and_a_retry_recovers(
    operator: Cluster, tmp_path: Path
) -> None:
    port = free_port()
    server = start_server(tmp_path / "first", port)
    url = f"redis://127.0.0.1:{port}/0"
    operator.create(destination(url))
    operator.wait(destination(url), ready)
    obj = operator.create(activation(["user:1"]))
    operator.wait(obj, lambda o: runs(o) == 1)

    stop(server)
    operator.patch(obj, {"spec": {"source": {"inline": {"keys": ["user:2"]}}}})
    failed = operator.wait(obj, lambda o: (o.get("status") or {}).get("phase") == "Failed")
    server = start_server(tmp_path / "second", port)
    try:
        recovered = operator.wait(
            obj, lambda o: (o.get("status") or {}).get("phase") == "Synced", timeout=30
        )
        members = redis.Redis(port=port).smembers("user:2.dinmo_segments")
    finally:
        stop(server)

    assert "Redis unreachable" in failed["status"]["lastRun"]["message"]
    assert failed["status"]["nextSyncTime"] > failed["status"]["lastSyncTime"]
    assert any(e.get("type") == "Warning" and e.get("reason") == "Failed"
               for e in operator.events())  # fmt: skip
    assert recovered["status"]["lastRun"]["trigger"] == "SpecChange"
    assert members == {b"vip"}


def delete(cluster: Cluster, obj: dict[str, Any]) -> None:
    name = obj["metadata"]["name"]
    cluster.request("DELETE", f"/apis/{API}/namespaces/default/redisaudienceactivations/{name}")


def gone(cluster: Cluster, obj: dict[str, Any], timeout: float = 15) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            cluster.get(obj)
        except urllib.error.HTTPError as error:
            return error.code == 404
        time.sleep(0.05)
    return False


@pytest.mark.parametrize(("policy", "annotations", "kept"), [
    ("Remove", {}, False),
    ("Retain", {}, True),
    ("Remove", {"audiences.dev/skip-cleanup": "true"}, True),
])  # fmt: skip
def test_deleting_an_activation_follows_its_deletion_policy(
    operator: Cluster,
    r: redis.Redis,
    redis_url: str,
    policy: str,
    annotations: dict[str, str],
    kept: bool,
) -> None:
    operator.create(destination(redis_url))
    operator.wait(destination(redis_url), ready)
    obj = activation(["user:1", "user:2"], deletionPolicy=policy)
    obj["metadata"]["annotations"] = annotations
    operator.create(obj)
    operator.wait(obj, lambda o: runs(o) == 1)
    r.sadd("user:1.dinmo_segments", "other")

    delete(operator, obj)

    assert gone(operator, obj)
    assert r.smembers("user:1.dinmo_segments") == ({b"vip", b"other"} if kept else {b"other"})
    assert r.exists("user:2.dinmo_segments") == kept
    assert bool(r.exists("audiences:{vip}:meta")) == kept


def test_renaming_the_audience_removes_the_old_name_first(
    operator: Cluster, r: redis.Redis, redis_url: str
) -> None:
    obj = synced(operator, redis_url, activation(["user:1"]))

    operator.patch(obj, {"spec": {"audienceName": "vip2"}})
    operator.wait(obj, lambda o: runs(o) == 2)

    assert r.smembers("user:1.dinmo_segments") == {b"vip2"}
    assert not r.exists("audiences:{vip}:meta")


def test_deletion_waits_while_redis_is_down_until_cleanup_is_skipped(
    operator: Cluster, tmp_path: Path
) -> None:
    port = free_port()
    server = start_server(tmp_path, port)
    url = f"redis://127.0.0.1:{port}/0"
    operator.create(destination(url))
    operator.wait(destination(url), ready)
    obj = operator.create(activation(["user:1"]))
    operator.wait(obj, lambda o: runs(o) == 1)
    stop(server)

    delete(operator, obj)

    assert not gone(operator, obj, timeout=3)
    assert any(e.get("reason") == "CleanupPending" and "Redis unreachable" in e.get("message", "")
               for e in operator.events())  # fmt: skip
    operator.patch(obj, {"metadata": {"annotations": {"audiences.dev/skip-cleanup": "true"}}})
    assert gone(operator, obj, timeout=20)


def test_the_newer_of_two_activations_of_one_audience_is_stalled(
    operator: Cluster, r: redis.Redis, redis_url: str
) -> None:
    synced(operator, redis_url, activation(["user:1"]))

    newer = activation(["user:2"])
    newer["metadata"]["name"] = "vip-copy"
    newer["metadata"]["creationTimestamp"] = "2999-01-01T00:00:00Z"
    operator.create(newer)
    stalled = operator.wait(newer, lambda o: (o.get("status") or {}).get("phase") == "Failed")

    delete(operator, newer)

    condition = next(c for c in stalled["status"]["conditions"] if c["type"] == "Stalled")
    assert condition["reason"] == "AudienceConflict"
    assert "'vip'" in condition["message"]
    assert gone(operator, newer)
    assert not r.exists("user:2.dinmo_segments")
    assert r.smembers("user:1.dinmo_segments") == {b"vip"}  # NB: the duplicate wrote nothing.
    assert r.exists("audiences:{vip}:meta")


def test_an_activation_waits_for_its_destination_to_be_ready(
    operator: Cluster, r: redis.Redis, redis_url: str
) -> None:
    obj = operator.create(activation(["user:1"]))
    pending = operator.wait(obj, lambda o: (o.get("status") or {}).get("phase") == "Pending")
    condition = next(c for c in pending["status"]["conditions"] if c["type"] == "Ready")
    waiting = next(c for c in pending["status"]["conditions"] if c["type"] == "Reconciling")

    operator.create(destination(redis_url))
    synced = operator.wait(obj, lambda o: runs(o) == 1, timeout=45)

    assert condition["reason"] == "DestinationNotReady"
    assert waiting["status"] == "False"  # NB: Argo CD shows Degraded, not Progressing.
    assert synced["status"]["phase"] == "Synced"
    assert r.smembers("user:1.dinmo_segments") == {b"vip"}


def test_configmap_and_secret_references_are_read_from_the_cluster(
    operator: Cluster, r: redis.Redis, redis_url: str
) -> None:
    operator.create(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "redis-url", "namespace": "default"},
            "data": {"url": base64.b64encode(redis_url.encode()).decode()},
        }
    )
    operator.create({"apiVersion": "v1", "kind": "ConfigMap",
                     "metadata": {"name": "lists", "namespace": "default"},
                     "data": {"vip.csv": "id,key\n1,user:7\n2,user:8\n"}})  # fmt: skip
    dest = destination(redis_url)
    dest["spec"] = {"urlSecretRef": {"name": "redis-url", "key": "url"}}
    operator.create(dest)
    operator.wait(dest, ready)

    obj = operator.create(
        activation(
            [],
            source={"configMap": {"name": "lists", "key": "vip.csv", "format": "csv"}},
            fieldMapping={"redisKey": "key"},
        )
    )
    synced = operator.wait(obj, lambda o: runs(o) == 1)

    assert synced["status"]["members"] == 2
    assert r.smembers("user:8.dinmo_segments") == {b"vip"}


def test_runs_are_counted_in_prometheus_metrics(operator: Cluster, redis_url: str) -> None:
    synced(operator, redis_url, activation(["user:1", "user:2"]))

    exposed = generate_latest(METRICS).decode()

    labels = 'activation="vip",audience="vip",namespace="default"'
    assert f"redis_audiences_members{{{labels}}} 2.0" in exposed
    assert f'redis_audiences_runs_total{{{labels},outcome="Succeeded"}}' in exposed
    assert "redis_audiences_last_success_timestamp_seconds" in exposed


def test_a_destination_whose_user_lacks_a_permission_is_not_ready(
    operator: Cluster, r: redis.Redis, redis_url: str
) -> None:
    r.execute_command("ACL", "SETUSER", "weak", "reset", "on", ">pw", "~*", "-@all", "+ping",
                      "+info", "+hello", "+acl|whoami", "+acl|dryrun")  # fmt: skip
    operator.create({"apiVersion": "v1", "kind": "Secret",
                     "metadata": {"name": "weak", "namespace": "default"},
                     "stringData": {"user": "weak", "password": "pw"}})  # fmt: skip
    dest = destination(redis_url)
    dest["spec"] |= {"usernameSecretRef": {"name": "weak", "key": "user"},
                     "passwordSecretRef": {"name": "weak", "key": "password"}}  # fmt: skip
    try:
        operator.create(dest)
        checked = operator.wait(dest, lambda o: bool((o.get("status") or {}).get("conditions")))
    finally:
        r.execute_command("ACL", "DELUSER", "weak")

    condition = checked["status"]["conditions"][0]
    assert (condition["status"], condition["reason"]) == ("False", "MissingPermissions")
    assert "SADD" in condition["message"]
    assert "pw" not in condition["message"].split()


def create_slow_sql_activation(cluster: Cluster) -> Any:
    """An activation whose PostgreSQL query takes two seconds for three keys."""
    warehouse = "postgresql://postgres@127.0.0.1:5432/test"
    cluster.create({"apiVersion": "v1", "kind": "Secret",
                    "metadata": {"name": "warehouse", "namespace": "default"},
                    "stringData": {"url": warehouse}})  # fmt: skip
    slow = "SELECT 'user:' || n AS key FROM generate_series(1, 3) AS n CROSS JOIN pg_sleep(2)"
    return cluster.create(activation([], source={"sql": {
        "connectionSecretRef": {"name": "warehouse", "key": "url"}, "query": slow,
    }}, fieldMapping={"redisKey": "key"}))  # fmt: skip


def phase(obj: Any) -> str | None:
    found: str | None = (obj.get("status") or {}).get("phase")
    return found


@pytest.mark.postgres
def test_a_run_shows_syncing_and_a_deletion_during_it_leaves_no_write_behind(
    operator: Cluster, r: redis.Redis, redis_url: str
) -> None:
    operator.create(destination(redis_url))
    operator.wait(destination(redis_url), ready)
    obj = create_slow_sql_activation(operator)

    syncing = operator.wait(obj, lambda o: phase(o) == "Syncing")
    delete(operator, obj)

    reconciling = next(c for c in syncing["status"]["conditions"] if c["type"] == "Reconciling")
    assert (reconciling["status"], reconciling["reason"]) == ("True", "SpecChange")
    assert gone(operator, obj, timeout=30)
    time.sleep(1)  # NB: a write of the run landing after the cleanup would show by now.
    assert not any(r.exists(f"user:{n}.dinmo_segments") for n in (1, 2, 3))
    assert not r.exists("audiences:{vip}:meta")


def test_a_changed_secret_rechecks_its_destination_at_once(
    operator: Cluster, redis_url: str
) -> None:
    closed = f"redis://127.0.0.1:{free_port()}/0"
    secret = {"apiVersion": "v1", "kind": "Secret",
              "metadata": {"name": "redis-url", "namespace": "default"},
              "data": {"url": base64.b64encode(closed.encode()).decode()}}  # fmt: skip
    operator.create(secret)
    dest = destination(redis_url)
    dest["spec"] = {"urlSecretRef": {"name": "redis-url", "key": "url"}}
    operator.create(dest)
    unreachable = operator.wait(dest, lambda o: bool((o.get("status") or {}).get("conditions")))

    operator.patch(secret, {"data": {"url": base64.b64encode(redis_url.encode()).decode()}})
    rechecked = operator.wait(dest, ready, timeout=10)  # NB: the periodic re-check is 60 s.

    assert unreachable["status"]["conditions"][0]["reason"] == "Unreachable"
    assert closed not in unreachable["status"]["conditions"][0]["message"]
    assert rechecked["status"]["redisVersion"]


def test_a_destination_deleted_before_its_activation_waits_for_the_cleanup(
    operator: Cluster, r: redis.Redis, redis_url: str
) -> None:
    dest = destination(redis_url)
    operator.create(dest)
    operator.wait(dest, ready)
    obj = operator.create(activation(["user:1"]))
    operator.wait(obj, lambda o: runs(o) == 1)

    operator.request("DELETE", f"/apis/{API}/namespaces/default/redisdestinations/local")
    time.sleep(1)  # NB: as a cascading delete or `kubectl delete -f` of both would.
    still_there = operator.get(dest)
    delete(operator, obj)

    assert gone(operator, obj) and gone(operator, dest, timeout=20)
    assert still_there["metadata"].get("deletionTimestamp")
    assert any(e.get("reason") == "DestinationInUse" for e in operator.events())
    assert not r.exists("user:1.dinmo_segments")


def test_a_typo_in_the_audience_name_stalls_without_touching_the_written_audience(
    operator: Cluster, r: redis.Redis, redis_url: str
) -> None:
    operator.create(destination(redis_url))
    operator.wait(destination(redis_url), ready)
    obj = operator.create(activation(["user:1"], schedule={"interval": "1s"}))
    operator.wait(obj, lambda o: runs(o) >= 1 and phase(o) == "Synced")

    operator.patch(obj, {"spec": {"audienceName": "vip customers"}})
    operator.wait(obj, lambda o: phase(o) == "Failed")
    time.sleep(5)  # NB: the 1 s schedule must not retry an invalid spec.
    kept = r.smembers("user:1.dinmo_segments")
    warnings = [e for e in operator.events() if e.get("reason") == "InvalidSpec"]
    delete(operator, obj)

    assert kept == {b"vip"}
    assert len(warnings) == 1
    assert gone(operator, obj)
    assert not r.exists("user:1.dinmo_segments")  # NB: deletion removes what was written.
    assert not r.exists("audiences:{vip}:meta")


@pytest.mark.postgres
def test_a_spec_changed_and_changed_back_during_a_run_is_observed(
    operator: Cluster, redis_url: str
) -> None:
    operator.create(destination(redis_url))
    operator.wait(destination(redis_url), ready)
    obj = create_slow_sql_activation(operator)
    operator.wait(obj, lambda o: phase(o) == "Syncing")

    operator.patch(obj, {"spec": {"syncMode": "Delta"}})
    operator.patch(obj, {"spec": {"syncMode": "Full"}})  # NB: as it was: no handler runs.
    generation = operator.get(obj)["metadata"]["generation"]
    caught_up = operator.wait(obj, lambda o: o["status"].get("observedGeneration") == generation,
                              timeout=30)  # fmt: skip

    assert generation == 3
    assert caught_up["status"]["phase"] == "Synced"
    assert all(c["observedGeneration"] == 3 for c in caught_up["status"]["conditions"])


@pytest.mark.parametrize("change", [
    {"destinationRef": {"name": "lcoal"}},
    {"audienceName": "vip2", "dryRun": True},
])  # fmt: skip
def test_a_move_that_cannot_land_leaves_the_written_audience_in_place(
    operator: Cluster, r: redis.Redis, redis_url: str, change: dict[str, Any]
) -> None:
    obj = synced(operator, redis_url, activation(["user:1"]))

    operator.patch(obj, {"spec": change})
    operator.wait(obj, lambda o: phase(o) == "Pending" or o["status"]["observedGeneration"] == 2)
    time.sleep(2)  # NB: a removal of the old audience would have landed by now.

    assert r.smembers("user:1.dinmo_segments") == {b"vip"}
    assert r.exists("audiences:{vip}:meta")


def test_a_rename_onto_an_audience_another_activation_writes_moves_nothing(
    operator: Cluster, r: redis.Redis, redis_url: str
) -> None:
    operator.create(destination(redis_url))
    operator.wait(destination(redis_url), ready)
    first = operator.create(activation(["user:1"]))
    other = activation(["user:2"], audienceName="other")
    other["metadata"]["name"] = "other"
    operator.create(other)
    operator.wait(first, lambda o: runs(o) == 1)
    operator.wait(other, lambda o: runs(o) == 1)

    operator.patch(first, {"spec": {"audienceName": "other"}})
    stalled = operator.wait(
        first,
        lambda o: any(
            c["type"] == "Stalled" and c["reason"] == "AudienceConflict"
            for c in o["status"].get("conditions") or []
        ),
    )
    delete(operator, first)

    assert stalled["status"]["appliedAudience"]["audienceName"] == "vip"
    assert gone(operator, first)
    assert not r.exists("user:1.dinmo_segments")  # NB: its own audience goes with it,
    assert r.smembers("user:2.dinmo_segments") == {b"other"}  # the other one's stays.


def test_a_stalled_duplicate_says_so_once_and_takes_over_when_the_owner_goes(
    operator: Cluster, r: redis.Redis, redis_url: str
) -> None:
    owner = synced(operator, redis_url, activation(["user:1"]))
    duplicate = activation(["user:2"])
    duplicate["metadata"]["name"] = "vip-copy"
    operator.create(duplicate)
    operator.wait(duplicate, lambda o: phase(o) == "Failed")

    delete(operator, owner)
    taken_over = operator.wait(duplicate, lambda o: phase(o) == "Synced", timeout=60)

    warnings = [e for e in operator.events() if e.get("reason") == "AudienceConflict"]
    assert len(warnings) == 1
    assert taken_over["status"]["appliedAudience"]["audienceName"] == "vip"
    assert r.smembers("user:2.dinmo_segments") == {b"vip"}
    assert not r.exists("user:1.dinmo_segments")
