"""SIGTERM (what Kubernetes sends) stops a sync and cleans up like Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import redis
import yaml

from integration.membership_helpers import holders

ROOT = Path(__file__).resolve().parents[2]


def write_manifests(path: Path, keys: int) -> None:
    lines = "\n".join(f"customer:{n}" for n in range(keys))
    documents = [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "big"},
         "data": {"keys": lines}},
        {"apiVersion": "audiences.dev/v1alpha1", "kind": "RedisDestination",
         "metadata": {"name": "local"}, "spec": {"url": "redis://127.0.0.1:1"}},
        {"apiVersion": "audiences.dev/v1alpha1", "kind": "RedisAudienceActivation",
         "metadata": {"name": "big"},
         "spec": {"destinationRef": {"name": "local"}, "audienceName": "big",
                  "syncMode": "Full", "source": {"configMap": {"name": "big", "key": "keys"}}}},
    ]  # fmt: skip
    path.write_text(yaml.safe_dump_all(documents))


def test_sigterm_stops_a_run_and_leaves_no_lock_or_scratch_keys(
    r: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    manifest = tmp_path / "big.yaml"
    write_manifests(manifest, 250_000)
    env = {**os.environ, "PYTHONPATH": str(ROOT / "operator")}
    command = [sys.executable, "-m", "redis_audiences.cli", "sync", "-f", str(manifest),
               "--redis-url", redis_url]  # fmt: skip
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    deadline = time.monotonic() + 30
    while not r.exists("audiences:{big}:lock") and time.monotonic() < deadline:
        time.sleep(0.005)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)

    assert process.returncode == 130, stderr
    assert b"interrupted" in stderr
    assert b"Traceback" not in stderr
    assert list(r.scan_iter(match="audiences:*")) == []
    assert len(holders(r, "big")) < 250_000
