"""Names of every key a run reads or writes.

Membership Sets are ``<profile key><suffix>``. Everything the operator owns
lives under ``<prefix>{<audience>}:...``: the braces are a Cluster hash tag, so
the ledger, the staging Sets of a run and the lock share one slot and set
algebra (SDIFFSTORE, RENAME) works on a Cluster too. Owned keys never end with
the membership suffix, so a scan for members cannot mistake them for profiles.
"""

from __future__ import annotations

from dataclasses import dataclass

from redis_audiences.membership.errors import KeyLayoutError

DEFAULT_SUFFIX = ".dinmo_segments"
DEFAULT_PREFIX = "audiences:"
_GLOB_CHARACTERS = frozenset("*?[]\\")


def escape_glob(text: bytes) -> bytes:
    """Escape the characters SCAN's MATCH treats as glob syntax."""
    out = bytearray()
    for byte in text:
        if chr(byte) in _GLOB_CHARACTERS:
            out.append(ord("\\"))
        out.append(byte)
    return bytes(out)


@dataclass(frozen=True)
class AudienceKeys:
    """Key names for one audience on one destination."""

    audience: str
    suffix: bytes = DEFAULT_SUFFIX.encode()
    prefix: bytes = DEFAULT_PREFIX.encode()

    def __post_init__(self) -> None:
        if not self.suffix:
            raise KeyLayoutError("membershipSuffix '' is empty; use e.g. '.dinmo_segments'.")
        parts = ("source", "queue", "holders", "add", "remove", "wrongtype")
        owned_keys = (self.meta, self.ledger, self.lock, *(self.staging("x", p) for p in parts))
        for owned in owned_keys:
            if owned.endswith(self.suffix):
                raise KeyLayoutError(
                    f"membershipSuffix {self.suffix.decode(errors='replace')!r} would match "
                    f"the operator's own key {owned.decode(errors='replace')!r}; "
                    "choose a suffix that does not end like ':meta', ':ledger' or ':lock'."
                )

    @property
    def _base(self) -> bytes:
        return self.prefix + b"{" + self.audience.encode() + b"}:"

    @property
    def meta(self) -> bytes:
        """Hash read by applications to check freshness."""
        return self._base + b"meta"

    @property
    def ledger(self) -> bytes:
        """Profile keys the last successful run left in the audience."""
        return self._base + b"ledger"

    @property
    def lock(self) -> bytes:
        """String holding the token of the run that owns the audience."""
        return self._base + b"lock"

    def staging(self, run_id: str, part: str = "source") -> bytes:
        """A temporary key of one run: source, queue, add, remove, wrongtype."""
        return self._base + f"run:{run_id}:{part}".encode()

    @property
    def scan_pattern(self) -> bytes:
        """SCAN MATCH pattern for every membership Set of this destination."""
        return b"*" + escape_glob(self.suffix)

    def member_key(self, profile_key: bytes) -> bytes:
        """Membership Set of one profile."""
        return profile_key + self.suffix

    def profile_key(self, member_key: bytes) -> bytes:
        """Profile key of a membership Set (the inverse of ``member_key``)."""
        return member_key[: -len(self.suffix)]
