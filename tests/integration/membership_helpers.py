"""Small helpers shared by the membership integration tests."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import redis
from redis.cluster import RedisCluster

from redis_audiences.membership import AudienceKeys, RunOptions, RunReport, run_sync

SUFFIX = b".dinmo_segments"


class ListBatches:
    """Key batches from a list, counting rows like a real ``KeyStream``."""

    def __init__(self, keys: Sequence[bytes | str], *, batch: int = 500) -> None:
        self.keys = [k.encode() if isinstance(k, str) else k for k in keys]
        self.batch = batch
        self.rows = 0
        self.skipped = 0

    def __iter__(self) -> Iterator[list[bytes]]:
        for start in range(0, len(self.keys), self.batch):
            chunk = self.keys[start : start + self.batch]
            self.rows += len(chunk)
            yield chunk


def sync(
    client: redis.Redis | RedisCluster,
    audience: str,
    keys: Sequence[bytes | str],
    **options: object,
) -> RunReport:
    """Run a sync; the removal guard is off unless asked for."""
    options.setdefault("max_removal_percent", 100.0)
    return run_sync(client, AudienceKeys(audience), ListBatches(keys), RunOptions(**options))  # type: ignore[arg-type]


def holders(client: redis.Redis | RedisCluster, audience: str) -> set[bytes]:
    """Profile keys whose membership Set holds ``audience``, found by SCAN."""
    found = set()
    for key in _all_keys(client, b"*" + SUFFIX):
        if client.type(key) == b"set" and client.sismember(key, audience):
            found.add(key[: -len(SUFFIX)])
    return found


def snapshot(client: redis.Redis | RedisCluster) -> dict[bytes, object]:
    """Every key with its type and value, to prove that nothing changed."""
    state: dict[bytes, object] = {}
    for key in _all_keys(client, b"*"):
        kind = client.type(key)
        value: object
        if kind == b"set":
            value = frozenset(client.smembers(key))
        elif kind == b"hash":
            value = tuple(sorted(client.hgetall(key).items()))
        else:
            value = client.get(key)
        state[key] = (kind, value)
    return state


def _all_keys(client: redis.Redis | RedisCluster, pattern: bytes) -> list[bytes]:
    if isinstance(client, RedisCluster):
        return list(client.scan_iter(match=pattern, target_nodes=RedisCluster.PRIMARIES))
    return list(client.scan_iter(match=pattern))
