"""Overlap reading the source with Redis's work on the batch before.

Staging is a loop of "read a batch, send it, wait for Redis". Sending on one
worker thread lets the next batch be read while Redis works, which hides most
of the server's time. At most ``depth`` batches are in flight, so memory
stays bounded by the batch size, not the audience.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType


class OverlappedWriter:
    """Call ``write`` on a worker thread, in order, and add up its results."""

    def __init__(self, write: Callable[[list[bytes]], int], *, depth: int = 2) -> None:
        self._write = write
        self._depth = depth
        self._pending: deque[Future[int]] = deque()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="staging")
        self.total = 0

    def put(self, batch: list[bytes]) -> None:
        """Queue one batch; re-raises the error of an earlier batch."""
        self._pending.append(self._executor.submit(self._write, batch))
        while len(self._pending) > self._depth:
            self.total += self._pending.popleft().result()

    def finish(self) -> int:
        """Wait for every batch and return the sum of ``write``'s results."""
        while self._pending:
            self.total += self._pending.popleft().result()
        return self.total

    def __enter__(self) -> OverlappedWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        for future in self._pending:
            future.cancel()
        self._executor.shutdown(wait=True)
