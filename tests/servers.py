"""Private redis-server processes on free loopback ports, for the tests."""

from __future__ import annotations

import random
import shutil
import socket
import subprocess
import time
from pathlib import Path

REDIS_SERVER = shutil.which("redis-server") or "redis-server"
REDIS_CLI = shutil.which("redis-cli") or "redis-cli"


def free_port() -> int:
    """A free loopback port whose Cluster bus port (+10000) is free too."""
    for _ in range(1000):
        port = random.randint(20000, 29999)
        if port not in _HANDED_OUT and _is_free(port) and _is_free(port + 10000):
            _HANDED_OUT.add(port)
            return port
    raise RuntimeError("no free loopback port pair found")


_HANDED_OUT: set[int] = set()


def _is_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def start_server(
    folder: Path, port: int, *extra: str, wait_port: int | None = None
) -> subprocess.Popen[bytes]:
    folder.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(
        [
            REDIS_SERVER,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(folder),
            *extra,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(250):
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", wait_port or port)) == 0:
                return process
        time.sleep(0.02)
    process.kill()
    raise RuntimeError(f"redis-server on port {port} did not start")


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
