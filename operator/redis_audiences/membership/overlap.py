"""Overlap reading the source with Redis's work on the batch before.

Staging is a loop of "read a batch, send it, wait for Redis". The batch is
prepared (packed) on the thread that reads the source and sent from one
worker thread, so the next batch is read while Redis works on this one. At
most ``depth`` batches are in flight, so memory stays bounded by the batch
size, not the audience.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType

Send = Callable[[], tuple[int, int]]


class OverlappedWriter:
    """Run sends on a worker thread, in order; add up their counts."""

    def __init__(self, *, depth: int = 2) -> None:
        self._depth = depth
        self._pending: deque[Future[tuple[int, int]]] = deque()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="staging")
        self._totals = (0, 0)

    def put(self, send: Send) -> None:
        """Queue one send; re-raises the error of an earlier one."""
        self._pending.append(self._executor.submit(send))
        while len(self._pending) > self._depth:
            self._collect()

    def finish(self) -> tuple[int, int]:
        """Wait for every send and return the sums of their counts."""
        while self._pending:
            self._collect()
        return self._totals

    def _collect(self) -> None:
        first, second = self._pending.popleft().result()
        self._totals = (self._totals[0] + first, self._totals[1] + second)

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
