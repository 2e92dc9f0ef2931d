"""Batched reads and writes of membership Sets, one way per topology.

A run walks collections of profiles held in Redis (the holders found by a
scan, the staged source, the difference Sets of a Delta run) and adds or
removes the audience for each. How that walk is done decides the speed:

* ``ScriptedStore`` (Standalone, Sentinel) runs each page as one Lua script
  inside Redis (a SCAN, SSCAN or LRANGE page plus its SADD/SREM), so Python
  does constant work per page instead of per key. Each script first checks
  the run's lock token, so a run that lost its lock writes nothing more.
* ``ClusterStore`` cannot run a script over keys of many slots, so it reads
  each page into Python and sends one single-key command per profile through
  redis-py's cluster pipeline, which groups commands by node: no command ever
  spans two slots, so no CROSSSLOT error can occur. The lock is checked
  between pages rather than atomically.

Both count exactly what changed (SADD and SREM replies), and neither modifies
a key that is not a Set: such keys are recorded in the run's ``wrongtype`` Set.

Limitations: SCAN and SSCAN may return an element twice while Redis resizes
a table; writes and Set sizes stay exact, but dry-run estimates can then be
slightly high.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol, cast

import hiredis
import redis
from redis.cluster import RedisCluster
from redis.commands.core import Script

from redis_audiences.membership.connection import RedisClient
from redis_audiences.membership.errors import LockLost, WrongTypeKey
from redis_audiences.membership.keys import AudienceKeys

Operation = Literal["add", "remove", "check-add", "check-remove"]
Progress = Callable[[int], None]
StagingSend = Callable[[], tuple[int, int]]
PAGE = 1000
LIST_PAGE = 5000
STAGING_TTL_MS = 6 * 3600 * 1000


@dataclass(frozen=True)
class Profiles:
    """Profiles held in Redis: a Set of profile keys (walked by SSCAN), or a
    List of their membership keys (walked by LRANGE from ``start``, up to
    ``stop`` when given).

    The List is the fast path for a Full run's adds: LRANGE costs a fraction
    of SSCAN's microsecond per element, and the suffix is already appended.
    It may hold duplicates, which SADD absorbs.
    """

    key: bytes
    kind: Literal["set", "list"] = "set"
    start: int = 0
    stop: int | None = None

    def page_size(self, cursor: int) -> int:
        """How many items the page at ``cursor`` takes."""
        page = LIST_PAGE if self.kind == "list" else PAGE
        return page if self.stop is None else min(page, self.stop - cursor)


@dataclass(frozen=True)
class RunKeys:
    """The keys and token of one run, as the store needs them."""

    audience: AudienceKeys
    token: bytes
    wrongtype: bytes


class MembershipStore(Protocol):
    """What a run needs from Redis beyond single commands."""

    def stage(
        self, run: RunKeys, keys: list[bytes], *, into: bytes, queue: bytes, write_at: int | None
    ) -> StagingSend:
        """Prepare staging one batch: ``keys`` into the Set ``into``, their
        membership keys onto the List ``queue``; when ``write_at`` is the
        batch's offset in ``queue``, also add the audience to each of them.

        Returns the call that sends it (made on the staging worker thread),
        which returns how many keys were new to the Set and how many
        membership Sets gained the audience.
        """
        ...

    def collect_holders(self, run: RunKeys, *, into: bytes, progress: Progress) -> None:
        """Scan every membership Set; put the profiles holding the audience
        into the Set ``into``."""
        ...

    def apply(
        self,
        run: RunKeys,
        profiles: Profiles,
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


def staging_commands(
    run: RunKeys, keys: list[bytes], *, into: bytes, queue: bytes
) -> list[tuple[str | bytes | int, ...]]:
    """The commands that stage one batch; the first replies the new count."""
    suffix = run.audience.suffix
    return [
        ("SADD", into, *keys),
        ("RPUSH", queue, *[key + suffix for key in keys]),
        ("PEXPIRE", into, STAGING_TTL_MS),
        ("PEXPIRE", queue, STAGING_TTL_MS),
    ]


_FENCE = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return redis.error_reply('LOCKLOST') end
"""

_COLLECT_HOLDERS = (
    _FENCE
    + """
local page = redis.call('SCAN', ARGV[2], 'MATCH', ARGV[3], 'COUNT', ARGV[4], 'TYPE', 'set')
local cut = #ARGV[6]
for _, key in ipairs(page[2]) do
  if redis.call('SISMEMBER', key, ARGV[5]) == 1 then
    redis.call('SADD', KEYS[2], string.sub(key, 1, #key - cut))
  end
end
if redis.call('EXISTS', KEYS[2]) == 1 then redis.call('PEXPIRE', KEYS[2], ARGV[7]) end
return {page[1], #page[2]}
"""
)

_APPLY = (
    _FENCE
    + """
local items, cursor
if ARGV[9] == 'list' then
  local start, count = tonumber(ARGV[2]), tonumber(ARGV[3])
  items = redis.call('LRANGE', KEYS[2], start, start + count - 1)
  cursor = (#items < count) and '0' or tostring(start + #items)
else
  local page = redis.call('SSCAN', KEYS[2], ARGV[2], 'COUNT', ARGV[3])
  items, cursor = page[2], page[1]
end
local audience, suffix, op, fail = ARGV[4], ARGV[5], ARGV[6], ARGV[7] == '1'
local command = ({add = 'SADD', remove = 'SREM'})[op] or 'SISMEMBER'
local listed = ARGV[9] == 'list'
local changed = 0
for _, item in ipairs(items) do
  local key = listed and item or item .. suffix
  local reply = redis.pcall(command, key, audience)
  if type(reply) == 'table' and reply.err then
    if string.sub(reply.err, 1, 9) ~= 'WRONGTYPE' then return redis.error_reply(reply.err) end
    local profile = string.sub(key, 1, #key - #suffix)
    if fail then return {'WRONGTYPE', profile} end
    redis.call('SADD', KEYS[3], profile)
    redis.call('PEXPIRE', KEYS[3], ARGV[8])
  elseif command ~= 'SISMEMBER' then changed = changed + reply
  elseif (op == 'check-add') == (reply == 0) then changed = changed + 1 end
end
return {cursor, changed}
"""
)


_ADD_SLICE = (
    _FENCE
    + """
local items = redis.call('LRANGE', KEYS[2], ARGV[2], ARGV[2] + ARGV[3] - 1)
local audience, cut, added = ARGV[4], #ARGV[5], 0
for i = 1, #items do
  local reply = redis.pcall('SADD', items[i], audience)
  if type(reply) == 'number' then
    added = added + reply
  elseif string.sub(reply.err, 1, 9) == 'WRONGTYPE' then
    redis.call('SADD', KEYS[3], string.sub(items[i], 1, #items[i] - cut))
    redis.call('PEXPIRE', KEYS[3], ARGV[6])
  else
    return redis.error_reply(reply.err)
  end
end
return added
"""
)
"""The hot path of a first load: add the audience to a slice of the List of
membership keys; the general ``_APPLY`` with its branches is a fifth slower."""


class ScriptedStore:
    """Standalone and Sentinel: each page is one Lua script call."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self._collect = client.register_script(_COLLECT_HOLDERS)
        self._apply = client.register_script(_APPLY)
        self._add_slice = client.register_script(_ADD_SLICE)
        self._add_slice_loaded = False

    def stage(
        self, run: RunKeys, keys: list[bytes], *, into: bytes, queue: bytes, write_at: int | None
    ) -> StagingSend:
        # NB: packed here, on the thread reading the source, and sent by hiredis
        # as one write with the batch's write script: the worker thread only
        # waits for Redis, so reading and Redis's work overlap.
        commands: list[tuple[Any, ...]] = list(staging_commands(run, keys, into=into, queue=queue))
        if write_at is not None:
            commands.append(self._write_slice(run, queue, write_at, len(keys)))
        packed = [hiredis.pack_command(command) for command in commands]

        def send() -> tuple[int, int]:
            replies = self._send_packed(packed)
            return int(replies[0]), int(replies[-1]) if write_at is not None else 0

        return send

    def _send_packed(self, packed: list[bytes]) -> list[Any]:
        pool = self.client.connection_pool
        connection = pool.get_connection()
        try:
            connection.send_packed_command(packed)  # type: ignore[no-untyped-call]
            replies = [connection.read_response() for _ in packed]
        except redis.ResponseError as error:
            connection.disconnect()  # type: ignore[no-untyped-call]
            raise _lock_lost() if str(error).startswith("LOCKLOST") else error from None
        except BaseException:
            connection.disconnect()  # type: ignore[no-untyped-call]
            raise
        finally:
            pool.release(connection)
        return replies

    def _write_slice(self, run: RunKeys, queue: bytes, start: int, count: int) -> tuple[Any, ...]:
        """EVALSHA of the write script adding the audience to a List slice."""
        if not self._add_slice_loaded:
            self.client.script_load(_ADD_SLICE)
            self._add_slice_loaded = True
        keys = run.audience
        return (
            "EVALSHA", self._add_slice.sha, 3, keys.lock, queue, run.wrongtype, run.token,
            start, count, keys.audience, keys.suffix, STAGING_TTL_MS,
        )  # fmt: skip

    def collect_holders(self, run: RunKeys, *, into: bytes, progress: Progress) -> None:
        keys = run.audience
        cursor: bytes | int = b"0"
        while True:
            cursor, scanned = _call(
                self._collect,
                [keys.lock, into],
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
            progress(int(scanned))
            if int(cursor) == 0:
                return

    def apply(
        self,
        run: RunKeys,
        profiles: Profiles,
        *,
        op: Operation,
        fail_on_wrong_type: bool,
        progress: Progress,
    ) -> int:
        keys = run.audience
        cursor, changed = profiles.start, 0
        while profiles.stop is None or cursor < profiles.stop:
            reply = _call(
                self._apply,
                [keys.lock, profiles.key, run.wrongtype],
                [
                    run.token,
                    cursor,
                    profiles.page_size(cursor),
                    keys.audience,
                    keys.suffix,
                    op,
                    int(fail_on_wrong_type),
                    STAGING_TTL_MS,
                    profiles.kind,
                ],
            )
            if reply[0] == b"WRONGTYPE":
                raise _wrong_type(keys, reply[1])
            cursor, done = int(reply[0]), int(reply[1])
            changed += done
            progress(done)
            if cursor == 0:
                break
        return changed


class ClusterStore:
    """Cluster: pages read into Python, written by node-grouped pipelines."""

    def __init__(self, client: RedisCluster) -> None:
        self.client = client

    def stage(
        self, run: RunKeys, keys: list[bytes], *, into: bytes, queue: bytes, write_at: int | None
    ) -> StagingSend:
        def send() -> tuple[int, int]:
            pipe = self.client.pipeline()  # type: ignore[no-untyped-call]
            for command in staging_commands(run, keys, into=into, queue=queue):
                pipe.execute_command(*command)
            unique = int(pipe.execute()[0])
            if write_at is None:
                return unique, 0
            written = Profiles(queue, "list", start=write_at, stop=write_at + len(keys))
            added = self.apply(run, written, op="add", fail_on_wrong_type=False,
                               progress=lambda n: None)  # fmt: skip
            return unique, added

        return send

    def collect_holders(self, run: RunKeys, *, into: bytes, progress: Progress) -> None:
        keys = run.audience
        for node in self.client.get_primaries():  # type: ignore[no-untyped-call]
            node_client = self.client.get_redis_connection(node)
            page: list[bytes] = []
            for member_key in node_client.scan_iter(
                match=keys.scan_pattern, count=PAGE, _type="set"
            ):
                page.append(member_key)
                if len(page) >= PAGE:
                    self._collect_page(run, node_client, page, into)
                    progress(len(page))
                    page = []
            self._collect_page(run, node_client, page, into)
            progress(len(page))

    def _collect_page(
        self, run: RunKeys, node_client: redis.Redis, page: list[bytes], into: bytes
    ) -> None:
        if not page:
            return
        self._check_lock(run)
        keys = run.audience
        pipe = node_client.pipeline(transaction=False)
        for member_key in page:
            pipe.sismember(member_key, keys.audience)
        held = [keys.profile_key(k) for k, yes in zip(page, pipe.execute(), strict=True) if yes]
        if held:
            self.client.sadd(into, *held)
            self.client.pexpire(into, STAGING_TTL_MS)

    def apply(
        self,
        run: RunKeys,
        profiles: Profiles,
        *,
        op: Operation,
        fail_on_wrong_type: bool,
        progress: Progress,
    ) -> int:
        cursor, changed = profiles.start, 0
        while profiles.stop is None or cursor < profiles.stop:
            self._check_lock(run)
            cursor, page = self._page(run, profiles, cursor)
            done = self._apply_page(run, page, op=op, fail_on_wrong_type=fail_on_wrong_type)
            changed += done
            progress(done)
            if cursor == 0:
                break
        return changed

    def _page(self, run: RunKeys, profiles: Profiles, cursor: int) -> tuple[int, list[bytes]]:
        """A page of profile keys and the next cursor (0 at the end)."""
        size = profiles.page_size(cursor)
        if profiles.kind == "set":
            next_cursor, page = self.client.sscan(profiles.key, cursor, count=size)
            return int(next_cursor), cast(list[bytes], page)
        items = cast(list[bytes], self.client.lrange(profiles.key, cursor, cursor + size - 1))
        cut = len(run.audience.suffix)
        return (0 if len(items) < size else cursor + len(items)), [k[:-cut] for k in items]

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
            raise _lock_lost() from None
        raise
    return reply


def _lock_lost() -> LockLost:
    return LockLost("the audience lock expired or was taken over; the run stopped.")


def _wrong_type(keys: AudienceKeys, profile: object) -> WrongTypeKey:
    name = keys.member_key(profile if isinstance(profile, bytes) else b"")
    return WrongTypeKey(
        f"membership key {name.decode(errors='replace')!r} holds a value that is not a Set; "
        "it was left unchanged (onWrongType: Fail)."
    )
