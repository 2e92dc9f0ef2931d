"""Opening a Redis client for a destination: Standalone, Cluster or Sentinel.

The caller hands over already-resolved values (URL, credentials, PEM data);
this module knows nothing of Secrets. Clients are opened with
``decode_responses=False`` because profile keys are bytes: a key that is not
valid UTF-8 elsewhere in the database must not break a scan.

Limitations: redis-py reads client certificates from files, so PEM data is
written to a private temporary folder for the client's lifetime.
"""

from __future__ import annotations

import contextlib
import os
import ssl
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

import redis
from redis.cluster import RedisCluster
from redis.exceptions import RedisClusterException
from redis.sentinel import Sentinel

from redis_audiences.membership.errors import ConnectionFailed, describe_redis_error

Mode = Literal["Standalone", "Cluster", "Sentinel"]
RedisClient = redis.Redis | RedisCluster


@dataclass(frozen=True)
class RedisTarget:
    """How to reach one Redis deployment. Holds secrets: never log it."""

    mode: Mode = "Standalone"
    url: str | None = field(default=None, repr=False)
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: bool = False
    ca_pem: str | None = field(default=None, repr=False)
    client_cert_pem: str | None = field(default=None, repr=False)
    client_key_pem: str | None = field(default=None, repr=False)
    insecure_skip_verify: bool = False
    sentinel_master: str | None = None
    sentinels: tuple[tuple[str, int], ...] = ()
    sentinel_password: str | None = field(default=None, repr=False)
    socket_timeout: float = 60.0

    def describe(self) -> str:
        """Where this target points, safe for logs: no credentials, no URL."""
        if self.mode == "Sentinel":
            nodes = ", ".join(f"{host}:{port}" for host, port in self.sentinels)
            return f"Sentinel master {self.sentinel_master!r} via {nodes}"
        parts = urlsplit(self.url or "")
        try:
            where = f"{parts.hostname}:{parts.port or 6379}"
        except ValueError:
            where = str(parts.hostname)
        return f"{self.mode} Redis at {where}"


@contextlib.contextmanager
def open_client(target: RedisTarget) -> Iterator[RedisClient]:
    """Open a client for ``target`` and close it (and its temp files) after."""
    with tempfile.TemporaryDirectory(prefix="redis-audiences-") as folder:
        client = _connect(target, _common_options(target, folder))
        try:
            yield client
        finally:
            _close(client)


def _close(client: RedisClient) -> None:
    """Close every socket: ``close`` alone leaves pools it did not make open.

    A Cluster's node clients and a Sentinel master share pools that redis-py
    does not disconnect on ``close``; a long-running operator would leak a
    socket per node and run.
    """
    if isinstance(client, RedisCluster):
        client.disconnect_connection_pools()  # type: ignore[no-untyped-call]
        client.close()
    else:
        client.close()
        client.connection_pool.disconnect()


def _connect(target: RedisTarget, options: dict[str, Any]) -> RedisClient:
    """Build the client; a bad URL or an unreachable Cluster fails the run."""
    try:
        if target.mode == "Sentinel":
            return _sentinel_master(target, options)
        if target.mode == "Cluster":
            return RedisCluster.from_url(_url_with_scheme(target), **options)
        return redis.Redis.from_url(_url_with_scheme(target), **options)
    except ValueError:
        # NB: urllib's message can quote part of the URL, such as a password.
        raise ConnectionFailed(
            f"{target.mode} destination url is not a valid redis:// or rediss:// URL."
        ) from None
    except (RedisClusterException, redis.RedisError) as error:
        # NB: RedisCluster connects to its seed nodes while it is being built.
        if isinstance(error, RedisClusterException) and not isinstance(error, redis.RedisError):
            first_line = (str(error).splitlines() or [""])[0]
            if "Cluster mode is not enabled" in first_line:
                first_line += " (not a Cluster node, or the user may not run CLUSTER SLOTS)"
            raise ConnectionFailed(f"Redis unreachable: {first_line}") from None
        raise ConnectionFailed(describe_redis_error(error)) from None


def _url_with_scheme(target: RedisTarget) -> str:
    """The URL, as ``rediss://`` when the destination asks for TLS."""
    if not target.url:
        raise ConnectionFailed(f"{target.mode} destination has no url.")
    if target.tls and target.url.startswith("redis://"):
        return "rediss://" + target.url.removeprefix("redis://")
    return target.url


def _common_options(target: RedisTarget, folder: str) -> dict[str, Any]:
    options: dict[str, Any] = {
        "decode_responses": False,
        "socket_connect_timeout": 5.0,
        "socket_timeout": target.socket_timeout,
    }
    if target.username:
        options["username"] = target.username
    if target.password:
        options["password"] = target.password
    if target.tls or (target.url or "").startswith("rediss://"):
        options.update(_tls_options(target, folder))
    return options


def _tls_options(target: RedisTarget, folder: str) -> dict[str, Any]:
    """Certificate options; a URL's ``rediss://`` scheme itself turns TLS on."""
    options: dict[str, Any] = {}
    if target.insecure_skip_verify:
        options.update(ssl_cert_reqs=ssl.CERT_NONE, ssl_check_hostname=False)
    if target.ca_pem:
        options["ssl_ca_data"] = target.ca_pem
    if target.client_cert_pem and target.client_key_pem:
        options["ssl_certfile"] = _private_file(folder, "tls.crt", target.client_cert_pem)
        options["ssl_keyfile"] = _private_file(folder, "tls.key", target.client_key_pem)
    return options


def _private_file(folder: str, name: str, content: str) -> str:
    path = os.path.join(folder, name)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(content)
    return path


def _sentinel_master(target: RedisTarget, options: dict[str, Any]) -> redis.Redis:
    if not target.sentinel_master or not target.sentinels:
        raise ConnectionFailed("Sentinel destination needs sentinel.masterName and sentinels.")
    sentinel_options = {key: options[key] for key in ("socket_connect_timeout",) if key in options}
    if target.sentinel_password:
        sentinel_options["password"] = target.sentinel_password
    # NB: redis-py leaves Sentinel unannotated; the ignores are for that alone.
    if target.tls:
        options = {**options, "ssl": True}
    sentinel = Sentinel(  # type: ignore[no-untyped-call]
        list(target.sentinels), sentinel_kwargs=sentinel_options, **options
    )
    master: redis.Redis = sentinel.master_for(  # type: ignore[no-untyped-call]
        target.sentinel_master
    )
    return master


def probe(client: RedisClient) -> str:
    """PING Redis (no writes); return its ``redis_version``."""
    try:
        client.ping()
        info = client.info("server")
    except redis.RedisError as error:
        raise ConnectionFailed(describe_redis_error(error)) from None
    if isinstance(client, RedisCluster):
        info = next(iter(info.values())) if info and "redis_version" not in info else info
    version = info.get("redis_version", "unknown")
    return version.decode() if isinstance(version, bytes) else str(version)
