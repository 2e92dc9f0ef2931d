"""Destinations reach Redis as configured: ACL users, TLS and Sentinel.

Each test runs a real sync through ``syncing.sync_activation`` with Secrets
resolved from manifests, against a real ``redis-server`` set up for it.
"""

from __future__ import annotations

import contextlib
import gc
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import yaml
from redis.cluster import RedisCluster

from redis_audiences.membership import AudienceKeys
from redis_audiences.membership.connection import RedisTarget, open_client, probe
from redis_audiences.membership.permissions import check_permissions
from redis_audiences.resources import load_manifests
from redis_audiences.syncing import sync_activation
from servers import free_port, start_server, stop

README_ACL = (
    "resetkeys ~*.dinmo_segments ~audiences:* resetchannels -@all +ping +info +scan +type "
    "+exists +sadd +srem +sismember +smismember +scard +srandmember +sscan +sdiffstore +rpush "
    "+lrange +del +rename +persist +pexpire +set +get +hset +hget +evalsha +eval +script|load "
    "+acl|whoami +acl|dryrun"
)


def run(tmp_path: Path, destination: str, secrets: dict[str, str] | None = None) -> object:
    """Sync the inline audience ``vip`` (keys a, b) to ``destination``."""
    manifest = tmp_path / "m.yaml"
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "creds"},
        "stringData": secrets or {},
    }
    manifest.write_text(
        yaml.safe_dump(secret)
        + "---"
        + f"""
apiVersion: audiences.dev/v1alpha1
kind: RedisDestination
metadata: {{name: dest}}
spec:
{destination}
---
apiVersion: audiences.dev/v1alpha1
kind: RedisAudienceActivation
metadata: {{name: vip}}
spec:
  destinationRef: {{name: dest}}
  audienceName: vip
  syncMode: Full
  source: {{inline: {{keys: [a, b]}}}}
  safety: {{maxRemovalPercent: 100}}
"""
    )
    found = load_manifests([manifest])
    activation = found.activations[0]
    return sync_activation(activation, found.destination_for(activation), found)


def test_an_acl_user_with_the_documented_rules_can_sync(
    r: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    r.execute_command("ACL", "SETUSER", "audiences", "on", ">pw-for-acl", *README_ACL.split())
    r.sadd("stale.dinmo_segments", "vip")
    try:
        report = run(
            tmp_path,
            f"  url: {redis_url}\n  usernameSecretRef: {{name: creds, key: user}}\n"
            "  passwordSecretRef: {name: creds, key: password}",
            {"user": "audiences", "password": "pw-for-acl"},
        )
    finally:
        r.execute_command("ACL", "DELUSER", "audiences")

    assert report.outcome == "Succeeded", report.message  # type: ignore[attr-defined]
    assert r.smembers("a.dinmo_segments") == {b"vip"}
    assert not r.exists("stale.dinmo_segments")


def test_a_wrong_password_fails_in_one_line_without_the_password(
    redis_url: str, tmp_path: Path
) -> None:
    report = run(
        tmp_path,
        f"  url: {redis_url}\n  usernameSecretRef: {{name: creds, key: user}}\n"
        "  passwordSecretRef: {name: creds, key: password}",
        {"user": "nobody", "password": "not-the-pw-123"},
    )

    assert report.outcome == "Failed"  # type: ignore[attr-defined]
    assert "not-the-pw-123" not in report.message  # type: ignore[attr-defined]
    assert "\n" not in report.message  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def tls_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, str]]:
    folder = tmp_path_factory.mktemp("tls")
    _make_certificates(folder)
    port = free_port()
    process = start_server(
        folder,
        0,
        "--tls-port",
        str(port),
        "--tls-cert-file",
        str(folder / "server.crt"),
        "--tls-key-file",
        str(folder / "server.key"),
        "--tls-ca-cert-file",
        str(folder / "ca.crt"),
        "--tls-auth-clients",
        "no",
        wait_port=port,
    )
    yield port, (folder / "ca.crt").read_text()
    stop(process)


def _make_certificates(folder: Path) -> None:
    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True)

    openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "1",
        "-subj",
        "/CN=redis-audiences test CA",
    )
    openssl(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    )
    (folder / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    openssl(
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.crt",
        "-days",
        "1",
        "-extfile",
        "ext.cnf",
    )


def test_a_rediss_destination_verifies_the_server_with_the_ca_secret(
    tls_redis: tuple[int, str], tmp_path: Path
) -> None:
    port, ca = tls_redis

    report = run(
        tmp_path,
        f"  url: rediss://127.0.0.1:{port}\n  tls:\n    caSecretRef: {{name: creds, key: ca}}",
        {"ca": ca},
    )

    assert report.outcome == "Succeeded", report.message  # type: ignore[attr-defined]


def test_a_rediss_destination_without_the_ca_refuses_the_unknown_certificate(
    tls_redis: tuple[int, str], tmp_path: Path
) -> None:
    port, _ = tls_redis

    report = run(tmp_path, f"  url: rediss://127.0.0.1:{port}")

    assert report.outcome == "Failed"  # type: ignore[attr-defined]
    assert "certificate" in report.message.lower()  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def sentinel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, int]]:
    folder = tmp_path_factory.mktemp("sentinel")
    master_port, sentinel_port = free_port(), free_port()
    master = start_server(folder / "master", master_port)
    config = folder / "sentinel.conf"
    config.write_text(
        f"port {sentinel_port}\nbind 127.0.0.1\nsentinel monitor shop 127.0.0.1 {master_port} 1\n"
    )
    watcher = subprocess.Popen(
        ["redis-server", str(config), "--sentinel"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _wait_for_master(sentinel_port)
    yield master_port, sentinel_port
    stop(watcher)
    stop(master)


def _wait_for_master(sentinel_port: int) -> None:
    client = redis.Redis(port=sentinel_port, socket_connect_timeout=0.2)
    for _ in range(250):
        try:
            if client.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", "shop"):
                return
        except redis.ConnectionError:
            pass
        time.sleep(0.02)
    raise RuntimeError("sentinel did not start")


def test_a_sentinel_destination_writes_to_the_current_master(
    sentinel: tuple[int, int], tmp_path: Path
) -> None:
    master_port, sentinel_port = sentinel

    report = run(
        tmp_path,
        "  mode: Sentinel\n  sentinel:\n    masterName: shop\n"
        f"    sentinels: ['127.0.0.1:{sentinel_port}']",
    )

    assert report.outcome == "Succeeded", report.message  # type: ignore[attr-defined]
    assert redis.Redis(port=master_port).smembers("b.dinmo_segments") == {b"vip"}


@pytest.mark.parametrize(("rules", "missing", "unchecked"), [
    (README_ACL, (), ""),
    ("resetkeys ~* -@all +ping +sadd +srem +acl|whoami +acl|dryrun", ("SCAN", "EVAL"), ""),
    ("resetkeys ~* -@all +ping", (), "ACL WHOAMI refused"),
])  # fmt: skip
def test_permission_check_names_what_the_user_may_not_run_without_writing(
    r: redis.Redis, redis_url: str, rules: str, missing: tuple[str, ...], unchecked: str
) -> None:
    r.execute_command("ACL", "SETUSER", "probe-user", "reset", "on", ">pw", *rules.split())
    before = sorted(r.scan_iter())
    try:
        client = redis.Redis.from_url(redis_url, username="probe-user", password="pw")
        result = check_permissions(client, AudienceKeys("probe"))
    finally:
        r.execute_command("ACL", "DELUSER", "probe-user")

    assert set(missing) <= set(result.missing)
    assert bool(result.missing) == bool(missing)
    assert unchecked in result.unchecked
    assert sorted(r.scan_iter()) == before


def open_sockets() -> int:
    """Sockets this process holds open, from /proc."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(FileNotFoundError):  # NB: listdir's own descriptor
            count += os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
    return count


@pytest.mark.cluster
@pytest.mark.parametrize("mode", ["Standalone", "Cluster"])
def test_a_run_s_client_closes_every_socket_it_opened(
    mode: str, cluster_url: str, redis_url: str
) -> None:
    target = RedisTarget(mode=mode, url=cluster_url if mode == "Cluster" else redis_url)  # type: ignore[arg-type]
    gc.disable()  # NB: only a cycle collection would close a leaked socket.
    try:
        before = open_sockets()
        for _ in range(5):
            with open_client(target) as client:
                probe(client)
        after = open_sockets()
    finally:
        gc.enable()

    assert after == before


README_CLUSTER_ACL = "+cluster|slots +command"


@pytest.mark.cluster
def test_a_cluster_user_with_the_documented_rules_can_sync(
    rc: RedisCluster, cluster_url: str, tmp_path: Path
) -> None:
    rules = ["on", ">pw-for-acl", *README_ACL.split(), *README_CLUSTER_ACL.split()]
    rc.execute_command("ACL", "SETUSER", "audiences", *rules, target_nodes=RedisCluster.ALL_NODES)
    try:
        report = run(
            tmp_path,
            f"  mode: Cluster\n  url: {cluster_url}\n"
            "  usernameSecretRef: {name: creds, key: user}\n"
            "  passwordSecretRef: {name: creds, key: password}",
            {"user": "audiences", "password": "pw-for-acl"},
        )
    finally:
        rc.execute_command("ACL", "DELUSER", "audiences", target_nodes=RedisCluster.ALL_NODES)

    assert report.outcome == "Succeeded", report.message  # type: ignore[attr-defined]
    assert rc.smembers("a.dinmo_segments") == {b"vip"}
