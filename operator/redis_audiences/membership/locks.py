"""One run at a time per audience and destination, across processes.

The lock is a string holding the run's id, set with NX and an expiry so that
a crashed run frees the audience by itself. While the run holds it, a
heartbeat thread renews it every third of its lifetime, so a source that
takes minutes before its first row (a slow warehouse query) keeps the lock.
The standalone write scripts also check the token atomically before each
batch, so a run that lost its lock cannot land another write.
"""

from __future__ import annotations

import contextlib
import threading
from types import TracebackType

import redis

from redis_audiences.membership.connection import RedisClient
from redis_audiences.membership.errors import AudienceLocked, LockLost

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class AudienceLock:
    """Context manager holding ``key`` for ``token`` while a run writes."""

    def __init__(self, client: RedisClient, key: bytes, token: str, *, ttl: float) -> None:
        self.client = client
        self.key = key
        self.token = token.encode()
        self.ttl_ms = int(ttl * 1000)
        self._lost = False
        self._stop = threading.Event()
        self._heartbeat = threading.Thread(target=self._beat, name="audience-lock", daemon=True)

    def __enter__(self) -> AudienceLock:
        try:
            acquired = self.client.set(self.key, self.token, nx=True, px=self.ttl_ms)
            if acquired:
                self._heartbeat.start()
        except BaseException:  # NB: a SIGTERM can land here; never leave the lock held.
            self._release()
            raise
        if not acquired:
            holder = self.client.get(self.key)
            who = holder.decode(errors="replace") if isinstance(holder, bytes) else "unknown"
            raise AudienceLocked(
                f"audience is locked by run {who}; it runs at most one sync at a time "
                f"(the lock expires {self.ttl_ms // 1000}s after its holder stops)."
            )
        return self

    def keep(self) -> None:
        """Raise ``LockLost`` when the heartbeat found the lock gone."""
        if self._lost:
            raise LockLost("the audience lock expired or was taken over; the run stopped.")

    def _beat(self) -> None:
        while not self._stop.wait(self.ttl_ms / 3000):
            try:
                if not self.client.eval(_RENEW, 1, self.key, self.token, self.ttl_ms):
                    self._lost = True
                    return
            except redis.RedisError:
                continue  # NB: the run itself fails on the same error, or recovers.

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stop.set()
        if self._heartbeat.is_alive():
            self._heartbeat.join()
        self._release()

    def _release(self) -> None:
        # NB: when Redis is unreachable, the expiry frees the audience later.
        with contextlib.suppress(redis.RedisError):
            self.client.eval(_RELEASE, 1, self.key, self.token)
