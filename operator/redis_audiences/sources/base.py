"""The one contract every key source meets.

A source yields the raw value of its key field, row by row, in batches; it
never holds the whole audience. ``KeyStream`` turns those raw values into the
byte keys the membership core writes, and counts what it had to skip: nulls,
empty strings and keys over 64 KiB. Duplicates are not its business; the core
counts each key once when it stages them in Redis.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from decimal import Decimal
from typing import Protocol
from uuid import UUID

MAX_KEY_BYTES = 64 * 1024
"""Keys longer than this (UTF-8 encoded) are skipped, not written."""


class SourceError(Exception):
    """A source cannot be read: bad data, a missing column, a failed query."""


class KeySource(Protocol):
    """Anything that can stream the raw key values of an audience."""

    def describe(self) -> str:
        """Say what is read, for messages; never a secret or a URL."""
        ...

    def raw_batches(self, *, batch_size: int) -> Iterator[list[object]]:
        """Yield the key field of each row, ``None`` where a row has none.

        Raises ``SourceError`` before the first batch when the key field does
        not exist at all (a missing column is a configuration error, not a
        skipped row).
        """
        ...


class KeyStream:
    """Encoded, filtered key batches of one source, with counts.

    Iterate it once; ``rows`` and ``skipped`` are final when it is exhausted.
    """

    def __init__(self, source: KeySource, *, batch_size: int = 5000) -> None:
        self.source = source
        self.batch_size = batch_size
        self.rows = 0
        self.skipped = 0

    def __iter__(self) -> Iterator[list[bytes]]:
        for raw in self.source.raw_batches(batch_size=self.batch_size):
            keys = encode_keys(raw)
            self.rows += len(raw)
            self.skipped += len(raw) - len(keys)
            if keys:
                yield keys


def encode_keys(raw: Iterable[object]) -> list[bytes]:
    """Encode raw values as UTF-8 keys; drop null, empty and over-long ones.

    Strings and bytes are keys as they are; numbers and UUIDs as their text.
    Anything else (a boolean, a JSON object or array) is not a key: dropped.
    """
    keys: list[bytes] = []
    append = keys.append
    for value in raw:
        if value.__class__ is str:
            key = value.encode("utf-8", "surrogatepass")
        elif isinstance(value, bytes):
            key = value
        elif isinstance(value, _TEXTUAL) and not isinstance(value, bool):
            key = str(value).encode("utf-8")
        else:
            continue
        if 0 < len(key) <= MAX_KEY_BYTES:
            append(key)
    return keys


_TEXTUAL = (str, int, float, Decimal, UUID)
"""Values whose text is a key (str subclasses included)."""
