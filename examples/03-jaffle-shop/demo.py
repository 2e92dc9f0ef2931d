"""Run the Jaffle Shop demo: two audiences synced into Redis at two dates.

The demo shows the whole product loop without Kubernetes: the warehouse is
built as of an early date and synced in Full mode, then rebuilt 25 days later
and synced in Delta mode, so that customers both enter and leave each
audience. It ends with what an application reads: membership Sets and an
audience's metadata hash.

The dates are chosen from the data. Jaffle Shop customers order every week or
two until they churn, and nearly all churn happens around 20 June 2019, so no
one is 60 days lapsed before August. On 7 August 2019 two customers are
lapsed, and one of them orders again later that day: the only customer in the
data who ever comes back after more than 60 days. On 1 September 2019, the
day after the last order, the June churners have lapsed too.

It uses ``$REDIS_URL`` when set and otherwise starts a private, throwaway
``redis-server`` on a free loopback port, stopped at the end even on failure.
The warehouse goes to ``.demo/jaffle.db`` under the repository root, which is
also the working directory of the syncs (the manifests' SQLite URL is
relative).
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import cast

import redis
from build_warehouse import build

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
WAREHOUSE = REPO / ".demo" / "jaffle.db"
MANIFESTS = HERE / "manifests.yaml"

EARLY, LATE = dt.date(2019, 8, 7), dt.date(2019, 9, 1)
AUDIENCES = ("high_value_customers", "lapsed_customers")
SUFFIX = ".dinmo_segments"
# A throwaway server: no persistence, loopback only, in the foreground.
REDIS_FLAGS = ("--save", "", "--appendonly", "no", "--bind", "127.0.0.1", "--daemonize", "no")

Memberships = dict[str, frozenset[str]]
"""Each membership Set's key and the audiences in it."""


class DemoError(Exception):
    """The demo cannot go on; the message says why."""


def main() -> int:
    try:
        with _redis_url() as url:
            return _run_demo(url)
    except DemoError as error:
        print(f"demo: {error}", file=sys.stderr)
        return 1


def _run_demo(url: str) -> int:
    client = redis.Redis.from_url(url, decode_responses=True)
    with client:
        earlier: Memberships = {}
        for number, (as_of, mode) in enumerate([(EARLY, "full"), (LATE, "delta")], start=1):
            _heading(f"{number}a. Build the warehouse as of {as_of}")
            customers, orders = build(WAREHOUSE, as_of)
            print(f"{WAREHOUSE.relative_to(REPO)}: {customers:,} customers, {orders:,} orders")

            _heading(f"{number}b. redis-audiences sync --mode {mode}")
            code = _sync(url, mode)
            if code != 0:
                print(f"demo: the {mode} sync exited with {code}", file=sys.stderr)
                return code
            if mode == "full":
                earlier = _memberships(client)

        _heading("3. What applications read")
        _show_reads(client, earlier)
    return 0


def _heading(text: str) -> None:
    print(f"\n== {text}", flush=True)


def _sync(url: str, mode: str) -> int:
    """Run the command line as a user would; return its exit code."""
    command, env = _cli()
    arguments = ["sync", "-f", str(MANIFESTS.relative_to(REPO)), "--redis-url", url, "--mode", mode]
    return subprocess.run([*command, *arguments], cwd=REPO, env=env, check=False).returncode


def _cli() -> tuple[list[str], dict[str, str]]:
    """Find ``redis-audiences``: beside this Python first, else ``-m``."""
    env = dict(os.environ)
    script = Path(sys.executable).parent / "redis-audiences"
    if script.is_file():
        return [str(script)], env

    # Not installed: run the package from the source tree.
    if importlib.util.find_spec("redis_audiences") is None:
        paths = [str(REPO / "operator"), env.get("PYTHONPATH", "")]
        env["PYTHONPATH"] = os.pathsep.join(path for path in paths if path)
    return [sys.executable, "-m", "redis_audiences.cli"], env


def _show_reads(client: redis.Redis, earlier: Memberships) -> None:
    """Show sample profiles in the audiences, then ones that left them."""
    now = _memberships(client)
    for key in _samples_in(now):
        print(f"SMEMBERS {key} -> {sorted(now[key])}")
    for audience, key in _samples_gone(earlier, now):
        print(f"SMEMBERS {key} -> {sorted(now.get(key, ()))}  (left {audience})")

    meta_key = f"audiences:{{{AUDIENCES[0]}}}:meta"
    print(f"HGETALL {meta_key} -> {client.hgetall(meta_key)}")


def _memberships(client: redis.Redis) -> Memberships:
    """Read every customer's membership Set, sorted by key.

    NB: this scans the whole keyspace, which is fine for the demo's few
    hundred Sets but is not how an application reads membership.
    """
    keys = sorted(client.scan_iter(match=f"customer:*{SUFFIX}", count=1000))
    # The client decodes responses, so members are str, not bytes.
    return {key: frozenset(cast("set[str]", client.smembers(key))) for key in keys}


def _samples_in(now: Memberships) -> list[str]:
    """Pick a profile in both audiences, then one in each alone, if any."""
    wanted = [frozenset(AUDIENCES), *(frozenset([name]) for name in AUDIENCES)]
    return [
        next(key for key, audiences in now.items() if audiences == combination)
        for combination in wanted
        if combination in now.values()
    ]


def _samples_gone(earlier: Memberships, now: Memberships) -> list[tuple[str, str]]:
    """Pick, per audience, one profile that was in it and is no longer."""
    gone = []
    for audience in AUDIENCES:
        left = [
            key
            for key, was in earlier.items()
            if audience in was and audience not in now.get(key, ())
        ]
        gone += [(audience, key) for key in left[:1]]
    return gone


@contextmanager
def _redis_url() -> Iterator[str]:
    """Yield ``$REDIS_URL``, or the URL of a private server run meanwhile."""
    if os.environ.get("REDIS_URL"):
        print("Using the Redis at $REDIS_URL (the demo writes two audiences into it).")
        yield os.environ["REDIS_URL"]
        return

    with _private_redis() as port:
        print(f"Started a private redis-server on 127.0.0.1:{port}; it stops after the demo.")
        yield f"redis://127.0.0.1:{port}/0"


@contextmanager
def _private_redis() -> Iterator[int]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise DemoError("redis-server is not on PATH; install it or set REDIS_URL.")

    port = _free_port()
    server = subprocess.Popen(
        [binary, *REDIS_FLAGS, "--port", str(port)],
        stdout=subprocess.DEVNULL,
    )
    try:
        _wait_for_ping(server, port, timeout=10.0)
        yield port
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def _free_port() -> int:
    # NB: the port could be taken between here and redis-server's bind; the
    # PING wait then fails with a clear message rather than hanging.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _wait_for_ping(server: subprocess.Popen[bytes], port: int, *, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    with redis.Redis(port=port, socket_timeout=1) as client:
        while server.poll() is None and time.monotonic() < deadline:
            try:
                client.ping()
                return
            except redis.ConnectionError:
                time.sleep(0.05)
    raise DemoError(f"redis-server on port {port} did not answer PING (exit code {server.poll()}).")


if __name__ == "__main__":
    sys.exit(main())
