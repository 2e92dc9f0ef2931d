"""Checking, without writing, that a Redis user may do what a sync does.

``ACL DRYRUN`` asks Redis whether the current user could run a command on a
key, without running it. The checks use the destination's real key layout:
a membership Set ``probe<suffix>`` and the operator's keys under the prefix.
A user not allowed ``ACL WHOAMI`` and ``ACL DRYRUN`` cannot be checked this
way; the result says so rather than failing the destination.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis
from redis.cluster import RedisCluster

from redis_audiences.membership.connection import RedisClient
from redis_audiences.membership.keys import AudienceKeys


@dataclass(frozen=True)
class PermissionCheck:
    """Commands the user lacks, or why they could not be checked."""

    missing: tuple[str, ...] = ()
    unchecked: str = ""


def check_permissions(client: RedisClient, keys: AudienceKeys) -> PermissionCheck:
    """Ask ``ACL DRYRUN`` about each command a sync sends, on its key layout."""
    try:
        user = _text(_any_node(client).execute_command("ACL", "WHOAMI"))  # type: ignore[no-untyped-call]
    except redis.ResponseError as error:
        return PermissionCheck(unchecked=f"ACL WHOAMI refused ({_first_line(error)})")
    missing = []
    for command in _commands(keys):
        try:
            reply = _any_node(client).execute_command(  # type: ignore[no-untyped-call]
                "ACL", "DRYRUN", user, *command
            )
        except redis.ResponseError as error:
            if "NOPERM" in str(error) and "acl|dryrun" in str(error).lower():
                return PermissionCheck(unchecked=f"ACL DRYRUN refused ({_first_line(error)})")
            reply = str(error)
        if _text(reply) != "OK":
            missing.append(command[0].decode() if isinstance(command[0], bytes) else command[0])
    return PermissionCheck(missing=tuple(dict.fromkeys(missing)))


def _commands(keys: AudienceKeys) -> list[tuple[str | bytes, ...]]:
    member = keys.member_key(b"probe")
    owned = keys.staging("probe", "source")
    return [
        ("SCAN", "0", "MATCH", keys.scan_pattern, "COUNT", "1", "TYPE", "set"),
        ("SADD", member, keys.audience), ("SREM", member, keys.audience),
        ("SISMEMBER", member, keys.audience), ("TYPE", member),
        ("SADD", owned, "x"), ("RPUSH", owned, "x"), ("LRANGE", owned, "0", "1"),
        ("SSCAN", owned, "0"), ("SCARD", owned), ("SRANDMEMBER", owned, "1"),
        ("SDIFFSTORE", keys.ledger, owned, owned), ("RENAME", owned, keys.ledger),
        ("PEXPIRE", owned, "1"), ("PERSIST", owned), ("DEL", owned), ("EXISTS", owned),
        ("SET", keys.lock, "x", "NX", "PX", "1"), ("GET", keys.lock),
        ("HSET", keys.meta, "a", "b"), ("HGET", keys.meta, "a"),
        ("EVALSHA", "0" * 40, "1", keys.lock), ("EVAL", "return 1", "1", keys.lock),
        ("SCRIPT", "LOAD", "return 1"), ("SMISMEMBER", owned, "x"), ("INFO", "server"),
    ]  # fmt: skip


def _any_node(client: RedisClient) -> redis.Redis:
    if isinstance(client, RedisCluster):
        return client.get_redis_connection(client.get_random_node())  # type: ignore[no-untyped-call]
    return client


def _text(value: object) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def _first_line(error: Exception) -> str:
    return (str(error).splitlines() or [""])[0]
