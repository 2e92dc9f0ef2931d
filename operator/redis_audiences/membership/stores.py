"""Batched reads and writes of membership Sets, one way per topology.

A run stages its source keys in a Set, then walks Sets of profile keys to add
or remove the audience. How that walk is done decides the speed:

* ``ScriptedStore`` (Standalone, Sentinel) runs each step as a Lua script
  inside Redis: one SSCAN or SCAN page plus its SADD/SREM per call, so Python
  does constant work per page of a thousand keys instead of per key. Each
  script first checks the run's lock token, so a run that lost its lock writes
  nothing more.
* ``ClusterStore`` cannot run a script over keys of many slots, so it reads
  each page into Python and sends one single-key command per profile through
  redis-py's cluster pipeline, which groups commands by node: no command ever
  spans two slots, so no CROSSSLOT error can occur. Lock checks happen between
  pages rather than atomically.

Both count exactly what changed (SADD and SREM replies), and neither modifies
a key that is not a Set: such keys are recorded in a ``wrongtype`` Set.

Limitations: SCAN and SSCAN may return an element twice while Redis resizes a
table; writes stay exact, but the holder count used by the removal guard and
dry-run estimates can then be slightly high.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol, cast

import redis
from redis.cluster import RedisCluster
from redis.commands.core import Script

from redis_audiences.membership.connection import RedisClient
from redis_audiences.membership.errors import LockLost, WrongTypeKey
from redis_audiences.membership.keys import AudienceKeys

Operation = Literal["add", "remove", "check-add", "check-remove"]
Progress = Callable[[int], None]
PAGE = 1000
STAGING_TTL_MS = 6 * 3600 * 1000


@dataclass(frozen=True)
class RunKeys:
    """The keys and token of one run, as the store needs them."""

    audience: AudienceKeys
    token: bytes
    wrongtype: bytes


class MembershipStore(Protocol):
    """What a run needs from Redis beyond single commands."""

    def collect_stale(self, run: RunKeys, *, source: bytes, into: bytes, progress: Progress) -> int:
        """Put holders of the audience missing from ``source`` into ``into``.

        Returns how many membership Sets hold the audience now.
        """
        ...

    def apply(
        self,
        run: RunKeys,
        profiles: bytes,
        *,
        op: Operation,
        fail_on_wrong_type: bool,
        progress: Progress,
    ) -> int:
        """Add or remove (``check-*``: count) the audience for each profile.

        Returns the number of Sets changed (or that would change).
        """
        ...


def store_for(client: RedisClient) -> MembershipStore:
    """The fastest store that is correct for this client's topology."""
    if isinstance(client, RedisCluster):
        return ClusterStore(client)
    return ScriptedStore(client)


_FENCE = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return redis.error_reply('LOCKLOST') end
"""

_COLLECT_STALE = (
    _FENCE
    + """
local page = redis.call('SCAN', ARGV[2], 'MATCH', ARGV[3], 'COUNT', ARGV[4], 'TYPE', 'set')
local holders, cut = 0, #ARGV[6]
for _, key in ipairs(page[2]) do
  if redis.call('SISMEMBER', key, ARGV[5]) == 1 then
    holders = holders + 1
    local profile = string.sub(key, 1, #key - cut)
    if redis.call('SISMEMBER', KEYS[2], profile) == 0 then
      redis.call('SADD', KEYS[3], profile)
    end
  end
end
if redis.call('EXISTS', KEYS[3]) == 1 then redis.call('PEXPIRE', KEYS[3], ARGV[7]) end
return {page[1], holders}
"""
)

_APPLY = (
    _FENCE
    + """
local page = redis.call('SSCAN', KEYS[2], ARGV[2], 'COUNT', ARGV[3])
local audience, suffix, op, fail = ARGV[4], ARGV[5], ARGV[6], ARGV[7] == '1'
local changed = 0
for _, profile in ipairs(page[2]) do
  local reply
  if op == 'add' then reply = redis.pcall('SADD', profile .. suffix, audience)
  elseif op == 'remove' then reply = redis.pcall('SREM', profile .. suffix, audience)
  else reply = redis.pcall('SISMEMBER', profile .. suffix, audience) end
  if type(reply) == 'table' and reply.err then
    if string.sub(reply.err, 1, 9) ~= 'WRONGTYPE' then return redis.error_reply(reply.err) end
    if fail then return {'WRONGTYPE', profile} end
    redis.call('SADD', KEYS[3], profile)
    redis.call('PEXPIRE', KEYS[3], ARGV[8])
  elseif op == 'add' or op == 'remove' then changed = changed + reply
  elseif (op == 'check-add') == (reply == 0) then changed = changed + 1 end
end
return {page[1], changed}
"""
)


class ScriptedStore:
    """Standalone and Sentinel: each page is one Lua script call."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self._collect = client.register_script(_COLLECT_STALE)
        self._apply = client.register_script(_APPLY)

    def collect_stale(self, run: RunKeys, *, source: bytes, into: bytes, progress: Progress) -> int:
        keys = run.audience
        cursor, holders = b"0", 0
        while True:
            cursor, found = _call(
                self._collect,
                [keys.lock, source, into],
                [
                    run.token,
                    cursor,
                    keys.scan_pattern,
                    PAGE,
                    keys.audience,
                    keys.suffix,
                    STAGING_TTL_MS,
                ],
            )
            holders += int(found)
            progress(int(found))
            if cursor in (b"0", 0):
                return holders

    def apply(
        self,
        run: RunKeys,
        profiles: bytes,
        *,
        op: Operation,
        fail_on_wrong_type: bool,
        progress: Progress,
    ) -> int:
        keys = run.audience
        cursor, changed = b"0", 0
        while True:
            reply = _call(
                self._apply,
                [keys.lock, profiles, run.wrongtype],
                [
                    run.token,
                    cursor,
                    PAGE,
                    keys.audience,
                    keys.suffix,
                    op,
                    int(fail_on_wrong_type),
                    STAGING_TTL_MS,
                ],
            )
            if reply[0] == b"WRONGTYPE":
                raise _wrong_type(keys, reply[1])
            cursor, done = reply[0], int(reply[1])
            changed += done
            progress(done)
            if cursor in (b"0", 0):
                return changed


class ClusterStore:
    """Cluster: pages read into Python, written by node-grouped pipelines."""

    def __init__(self, client: RedisCluster) -> None:
        self.client = client

    def collect_stale(self, run: RunKeys, *, source: bytes, into: bytes, progress: Progress) -> int:
        keys, holders = run.audience, 0
        for node in self.client.get_primaries():  # type: ignore[no-untyped-call]
            node_client = self.client.get_redis_connection(node)
            page: list[bytes] = []
            for member_key in node_client.scan_iter(
                match=keys.scan_pattern, count=PAGE, _type="set"
            ):
                page.append(member_key)
                if len(page) >= PAGE:
                    holders += self._collect_page(run, node_client, page, source, into)
                    page = []
            holders += self._collect_page(run, node_client, page, source, into)
        return holders

    def _collect_page(
        self,
        run: RunKeys,
        node_client: redis.Redis,
        page: list[bytes],
        source: bytes,
        into: bytes,
    ) -> int:
        if not page:
            return 0
        self._check_lock(run)
        keys = run.audience
        pipe = node_client.pipeline(transaction=False)
        for member_key in page:
            pipe.sismember(member_key, keys.audience)
        held = [keys.profile_key(k) for k, yes in zip(page, pipe.execute(), strict=True) if yes]
        if held:
            in_source = self.client.smismember(source, held)
            stale = [p for p, keep in zip(held, in_source, strict=True) if not keep]
            if stale:
                self.client.sadd(into, *stale)
                self.client.pexpire(into, STAGING_TTL_MS)
        return len(held)

    def apply(
        self,
        run: RunKeys,
        profiles: bytes,
        *,
        op: Operation,
        fail_on_wrong_type: bool,
        progress: Progress,
    ) -> int:
        cursor, changed = 0, 0
        while True:
            self._check_lock(run)
            cursor, page = self.client.sscan(profiles, cursor, count=PAGE)
            done = self._apply_page(
                run, cast(list[bytes], page), op=op, fail_on_wrong_type=fail_on_wrong_type
            )
            changed += done
            progress(done)
            if cursor == 0:
                return changed

    def _apply_page(
        self, run: RunKeys, page: list[bytes], *, op: Operation, fail_on_wrong_type: bool
    ) -> int:
        keys = run.audience
        pipe = self.client.pipeline()  # type: ignore[no-untyped-call]
        command = {"add": pipe.sadd, "remove": pipe.srem}.get(op, pipe.sismember)
        for profile in page:
            command(keys.member_key(profile), keys.audience)
        replies = pipe.execute(raise_on_error=False)
        changed, wrong = 0, []
        for profile, reply in zip(page, replies, strict=True):
            if isinstance(reply, redis.ResponseError):
                if not str(reply).startswith("WRONGTYPE"):
                    raise reply
                if fail_on_wrong_type:
                    raise _wrong_type(keys, profile)
                wrong.append(profile)
            elif op in ("add", "remove"):
                changed += int(reply)
            elif (op == "check-add") == (not reply):
                changed += 1
        if wrong:
            self.client.sadd(run.wrongtype, *wrong)
            self.client.pexpire(run.wrongtype, STAGING_TTL_MS)
        return changed

    def _check_lock(self, run: RunKeys) -> None:
        if self.client.get(run.audience.lock) != run.token:
            raise LockLost("the audience lock expired or was taken over; the run stopped.")


def _call(script: Script, keys: list[bytes], args: list[Any]) -> list[Any]:
    try:
        reply: list[Any] = script(keys=keys, args=args)
    except redis.ResponseError as error:
        if str(error).startswith("LOCKLOST"):
            raise LockLost(
                "the audience lock expired or was taken over; the run stopped."
            ) from None
        raise
    return reply


def _wrong_type(keys: AudienceKeys, profile: object) -> WrongTypeKey:
    name = keys.member_key(profile if isinstance(profile, bytes) else b"")
    return WrongTypeKey(
        f"membership key {name.decode(errors='replace')!r} holds a value that is not a Set; "
        "it was left unchanged (onWrongType: Fail)."
    )
