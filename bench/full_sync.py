"""Benchmark: a Full sync of 1,000,000 new members against redis-benchmark.

In one run against one private ``redis-server`` this times

1. ``redis-audiences sync --mode full`` writing 1,000,000 new members read
   from a SQLite table (the whole command, in a child process, whose peak RSS
   is read from ``getrusage``), and
2. ``redis-benchmark -P 1000`` doing 1,000,000 SADDs on random keys,

then prints both times, their ratio and the sync's peak RSS against the
targets (ratio at most 3, peak RSS under 300 MB). Usage:
``python bench/full_sync.py [--members N]``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / ".bench"
TARGET_RATIO, TARGET_RSS_MB = 3.0, 300.0

MANIFEST = """\
apiVersion: v1
kind: Secret
metadata: {{name: bench-warehouse}}
stringData: {{url: "sqlite:///{db}"}}
---
apiVersion: audiences.dev/v1alpha1
kind: RedisDestination
metadata: {{name: bench}}
spec: {{url: "redis://127.0.0.1:6379"}}
---
apiVersion: audiences.dev/v1alpha1
kind: RedisAudienceActivation
metadata: {{name: bench}}
spec:
  destinationRef: {{name: bench}}
  audienceName: bench_audience
  syncMode: Full
  source:
    sql:
      connectionSecretRef: {{name: bench-warehouse, key: url}}
      query: SELECT redis_key FROM profiles
  fieldMapping: {{redisKey: redis_key}}
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=1_000_000)
    members = parser.parse_args().members

    WORK.mkdir(exist_ok=True)
    database = build_warehouse(WORK / f"profiles-{members}.db", members)
    manifest = WORK / "bench.yaml"
    manifest.write_text(MANIFEST.format(db=database))

    port = free_port()
    server = start_redis(port)
    try:
        sync_seconds, rss_mb, report = time_sync(manifest, port)
        redis.Redis(port=port).flushall()
        benchmark_seconds = time_redis_benchmark(port, members)
    finally:
        server.terminate()
        server.wait(timeout=10)

    print_results(members, sync_seconds, benchmark_seconds, rss_mb, report)
    ratio = sync_seconds / benchmark_seconds
    return 0 if ratio <= TARGET_RATIO and rss_mb < TARGET_RSS_MB else 1


def build_warehouse(path: Path, members: int) -> Path:
    """A SQLite table of ``members`` distinct keys (kept between runs)."""
    if path.exists():
        return path
    partial = path.with_suffix(".partial")
    partial.unlink(missing_ok=True)
    with sqlite3.connect(partial) as db:
        db.execute("CREATE TABLE profiles (redis_key TEXT NOT NULL)")
        db.executemany(
            "INSERT INTO profiles VALUES (?)", ((f"customer:{n:08d}",) for n in range(members))
        )
    partial.rename(path)
    return path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def start_redis(port: int) -> subprocess.Popen[bytes]:
    server = subprocess.Popen(
        [
            shutil.which("redis-server") or "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        stdout=subprocess.DEVNULL,
    )
    client = redis.Redis(port=port)
    for _ in range(200):
        try:
            client.ping()
            return server
        except redis.ConnectionError:
            time.sleep(0.05)
    server.kill()
    raise SystemExit(f"redis-server did not start on port {port}")


def time_sync(manifest: Path, port: int) -> tuple[float, float, dict[str, object]]:
    """Run the sync in a child; return seconds, peak RSS (MB), report."""
    command = [
        sys.executable,
        "-m",
        "redis_audiences.cli",
        "sync",
        "-f",
        str(manifest),
        "--redis-url",
        f"redis://127.0.0.1:{port}",
        "--output",
        "json",
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "operator")}
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"sync failed ({done.returncode}): {done.stderr or done.stdout}")
    rss_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    report: dict[str, object] = json.loads(done.stdout)[0]
    return seconds, rss_mb, report


def time_redis_benchmark(port: int, requests: int) -> float:
    command = [
        shutil.which("redis-benchmark") or "redis-benchmark",
        "-p",
        str(port),
        "-n",
        str(requests),
        "-P",
        "1000",
        "-r",
        "1000000000",
        "-q",
        "SADD",
        "customer:__rand_int__.dinmo_segments",
        "bench_audience",
    ]
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - started


def print_results(
    members: int, sync_s: float, bench_s: float, rss_mb: float, report: dict[str, object]
) -> None:
    ratio = sync_s / bench_s
    print(f"members:                         {members:,}")
    print(
        f"redis-audiences sync (Full):     {sync_s:.2f} s wall "
        f"(run {report['durationSeconds']} s, added {report['added']:,})"
    )
    print(f"redis-benchmark -P 1000 SADD:    {bench_s:.2f} s")
    print(
        f"ratio sync / redis-benchmark:    {ratio:.2f}  (target <= {TARGET_RATIO:g}) "
        f"{'OK' if ratio <= TARGET_RATIO else 'MISSED'}"
    )
    print(
        f"sync peak RSS:                   {rss_mb:.0f} MB  (target < {TARGET_RSS_MB:g} MB) "
        f"{'OK' if rss_mb < TARGET_RSS_MB else 'MISSED'}"
    )


if __name__ == "__main__":
    sys.exit(main())
