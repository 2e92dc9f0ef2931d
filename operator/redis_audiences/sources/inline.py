"""Keys written straight into the activation (``source.inline.keys``).

Meant for small, hand-kept audiences and for demos: the keys already live in
the custom resource, so holding them here costs nothing more.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from redis_audiences.sources.batching import batched


class InlineSource:
    """Stream a list of keys given in the activation, as they are."""

    def __init__(self, keys: Sequence[str]) -> None:
        self.keys = keys

    def describe(self) -> str:
        """Say how many keys the inline list holds."""
        return f"inline list of {len(self.keys)} keys"

    def raw_batches(self, *, batch_size: int) -> Iterator[list[object]]:
        """Yield the keys in order, ``batch_size`` at a time."""
        return batched(self.keys, size=batch_size)
