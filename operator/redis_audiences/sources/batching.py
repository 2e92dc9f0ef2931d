"""Cut a stream of raw values into the batches sources yield.

Python 3.11 has no ``itertools.batched``; this is the small piece of it every
source needs, with lists (what ``KeySource.raw_batches`` promises) instead of
tuples. It pulls one batch at a time, so a source stays a stream.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import islice


def batched(values: Iterable[object], *, size: int) -> Iterator[list[object]]:
    """Yield lists of at most ``size`` values, in order; never an empty list."""
    if size < 1:
        raise ValueError(f"batch size must be at least 1, got {size}")

    iterator = iter(values)
    while batch := list(islice(iterator, size)):
        yield batch
