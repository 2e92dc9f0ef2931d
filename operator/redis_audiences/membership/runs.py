"""One sync run: survey, stage the source, plan, guard, write, commit.

Every run stages the source keys in Redis (a Set that counts each key once,
and a List of membership keys for fast writing), so memory stays flat however
large the audience. Planning then works on Sets in the audience's hash-tag
slot, where SDIFFSTORE works on a Cluster too:

* Full: a SCAN of every ``*<suffix>`` Set collects the profiles that hold the
  audience now (the survey); removed = holders - source, and every source key
  is written. Removals and adds touch disjoint profiles, so a member that
  stays never loses the audience, not even for a moment.
* Delta: removed = ledger - source and added = source - ledger. Without a
  ledger, a Delta run runs Full.

Guards (empty source, removal share) are decided before the first write; a
blocked run writes nothing. One case needs no guard: a Full run whose survey
found no holders can remove nothing, so its adds are written while the
source is still being read (the first load of an audience, the largest).

Before its first write a run deletes the ledger, and it writes the new ledger
only after every write succeeded: a run that fails half way leaves no ledger,
so the next run is a Full run and converges.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal, Protocol

import redis

from redis_audiences.membership.connection import RedisClient
from redis_audiences.membership.errors import (
    KeyLayoutError,
    MembershipError,
    describe_redis_error,
)
from redis_audiences.membership.keys import AudienceKeys
from redis_audiences.membership.locks import AudienceLock
from redis_audiences.membership.overlap import OverlappedWriter
from redis_audiences.membership.stores import (
    STAGING_TTL_MS,
    Operation,
    Profiles,
    RunKeys,
    store_for,
)

SyncMode = Literal["Full", "Delta"]
Outcome = Literal["Succeeded", "Failed", "Blocked"]
ProgressSink = Callable[[str, int], None]
WRONG_TYPE_SAMPLE = 10


class KeyBatches(Protocol):
    """Key batches; ``rows`` and ``skipped`` are final once exhausted."""

    @property
    def rows(self) -> int: ...

    @property
    def skipped(self) -> int: ...

    def __iter__(self) -> Iterator[list[bytes]]: ...


@dataclass(frozen=True)
class RunOptions:
    """How to run; mirrors the activation's spec."""

    mode: SyncMode = "Delta"
    dry_run: bool = False
    max_removal_percent: float = 50.0
    allow_empty_source: bool = False
    fail_on_wrong_type: bool = False
    activation: str = ""
    trigger: str = "Manual"
    lock_ttl: float = 60.0


@dataclass
class RunReport:
    """What a run did; the fields of ``status.lastRun``."""

    id: str
    trigger: str
    mode: SyncMode
    dry_run: bool
    started_at: datetime
    finished_at: datetime | None = None
    source_rows: int = 0
    added: int = 0
    removed: int = 0
    unchanged: int = 0
    skipped: int = 0
    members: int | None = None
    outcome: Outcome = "Succeeded"
    message: str = ""
    wrong_type_sample: list[str] = field(default_factory=list)

    @property
    def duration_seconds(self) -> float:
        end = self.finished_at or datetime.now(UTC)
        return round((end - self.started_at).total_seconds(), 3)


class _Blocked(Exception):
    """A safety guard refused the run; nothing was written."""


class NoKeys:
    """An empty source: a Full run of it removes the audience everywhere."""

    rows = 0
    skipped = 0

    def __iter__(self) -> Iterator[list[bytes]]:
        return iter(())


def remove_audience(client: RedisClient, keys: AudienceKeys, *, activation: str) -> RunReport:
    """Remove the audience from every membership Set and drop its own keys.

    A Full run of an empty source, so it takes the lock and scans like any
    run; on success the ledger and metadata hash go too.
    """
    options = RunOptions(mode="Full", allow_empty_source=True, max_removal_percent=100.0,
                         activation=activation, trigger="Deletion")  # fmt: skip
    report = run_sync(client, keys, NoKeys(), options)
    if report.outcome == "Succeeded":
        client.delete(keys.meta, keys.ledger)
    return report


def new_run_id() -> str:
    """A short random id, unique enough to tell runs apart."""
    return uuid.uuid4().hex[:12]


def run_sync(
    client: RedisClient,
    keys: AudienceKeys,
    source: KeyBatches,
    options: RunOptions,
    *,
    progress: ProgressSink | None = None,
    run_id: str | None = None,
) -> RunReport:
    """Run one sync of ``source`` into the audience ``keys.audience``.

    Never raises for Redis or source failures: they end the run ``Failed``
    with a one-line message; a guard ends it ``Blocked``.
    """
    report = RunReport(
        id=run_id or new_run_id(),
        trigger=options.trigger,
        mode=options.mode,
        dry_run=options.dry_run,
        started_at=datetime.now(UTC),
    )
    try:
        with AudienceLock(client, keys.lock, report.id, ttl=options.lock_ttl) as lock:
            _Run(client, keys, options, report, lock, progress).execute(source)
    except _Blocked as blocked:
        report.outcome, report.message = "Blocked", str(blocked)
    except MembershipError as error:
        report.outcome, report.message = "Failed", str(error)
    except redis.RedisError as error:
        report.outcome, report.message = "Failed", describe_redis_error(error)
    report.finished_at = datetime.now(UTC)
    return report


class _Run:
    """The steps of one run, sharing its keys, lock and report."""

    def __init__(
        self,
        client: RedisClient,
        keys: AudienceKeys,
        options: RunOptions,
        report: RunReport,
        lock: AudienceLock,
        progress: ProgressSink | None,
    ) -> None:
        self.client, self.keys, self.options, self.report = client, keys, options, report
        self.lock = lock
        self.store = store_for(client)
        self.run_keys = RunKeys(keys, lock.token, keys.staging(report.id, "wrongtype"))
        self.staged = keys.staging(report.id, "source")
        self.queue = keys.staging(report.id, "queue")
        self.holders = keys.staging(report.id, "holders")
        self.adds = Profiles(self.queue, "list")
        self.removals = Profiles(keys.staging(report.id, "remove"))
        self._progress = progress

    def execute(self, source: KeyBatches) -> None:
        try:
            self.check_owned_keys()
            current = self.survey()
            streaming = self.can_stream_adds(current)
            unique = self.stage(source, streaming=streaming)
            self.plan(current)
            self.guard(unique, int(self.client.scard(current)))
            if self.options.dry_run:
                self.estimate(unique, current)
            else:
                self.write(unique, streamed=streaming)
                self.commit()
        finally:
            self.clean_up()

    def check_owned_keys(self) -> None:
        """Fail before any write when another program took an owned key."""
        for key, expected in ((self.keys.meta, b"hash"), (self.keys.ledger, b"set")):
            found: bytes = self.client.type(key)  # type: ignore[assignment]
            if found not in (expected, b"none"):
                name = key.decode(errors="replace")
                raise KeyLayoutError(
                    f"operator key {name!r} holds a {found.decode()}, not a {expected.decode()}; "
                    "another program writes under the metadata prefix: delete it or change "
                    "metadataPrefix."
                )

    def survey(self) -> bytes:
        """Return the Set of current members: the ledger, or scanned holders."""
        if self.options.mode == "Delta":
            why_not = self.ledger_unusable()
            if not why_not:
                return self.keys.ledger
            self.report.mode = "Full"
            self.note(f"{why_not}, so this Delta run ran Full")
        self.store.collect_holders(
            self.run_keys, into=self.holders, progress=lambda n: self.tick("scanned", n)
        )
        return self.holders

    def ledger_unusable(self) -> str:
        """Why the ledger cannot plan a Delta run, or '' when it can."""
        if not self.client.exists(self.keys.ledger):
            return "no ledger from a previous successful run"
        written_for = self.client.hget(self.keys.meta, "membershipSuffix")
        if written_for != self.keys.suffix:
            return "the ledger was written for another membershipSuffix"
        return ""

    def can_stream_adds(self, current: bytes) -> bool:
        """True when no guard can block, so adds may stream while staging."""
        options = self.options
        return (
            self.report.mode == "Full"
            and not options.dry_run
            and not options.fail_on_wrong_type
            and not self.client.exists(current)
        )

    def stage(self, source: KeyBatches, *, streaming: bool) -> int:
        """Stage source keys in the Set and List; return the unique count.

        When ``streaming``, each batch is also written to its membership Sets.
        """
        queued = 0
        with OverlappedWriter() as writer:
            for batch in source:
                if streaming and queued == 0:
                    self.client.delete(self.keys.ledger)
                writer.put(self.store.stage(
                    self.run_keys, batch, into=self.staged, queue=self.queue,
                    write_at=queued if streaming else None,
                ))  # fmt: skip
                queued += len(batch)
                self.tick("staged", len(batch))
            unique, self.report.added = writer.finish()
        self.report.source_rows, self.report.skipped = source.rows, source.skipped
        return unique

    def plan(self, current: bytes) -> None:
        """Fill the removal Set (and for Delta, the add Set)."""
        self.difference(self.removals.key, current, self.staged)
        if current == self.keys.ledger:
            self.adds = Profiles(self.keys.staging(self.report.id, "add"))
            self.difference(self.adds.key, self.staged, current)

    def guard(self, unique: int, current: int) -> None:
        """Refuse an empty source or a removal share above the limit."""
        if unique == 0 and not self.options.allow_empty_source:
            raise _Blocked(
                f"the source returned no keys ({self.report.source_rows} rows, "
                f"{self.report.skipped} skipped); set safety.allowEmptySource to empty "
                "the audience on purpose."
            )
        removing = int(self.client.scard(self.removals.key))
        share = 100.0 * removing / current if current else 0.0
        if unique and share > self.options.max_removal_percent:
            raise _Blocked(
                f"the run would remove {removing} of {current} members ({share:.1f}%), "
                f"above safety.maxRemovalPercent {self.options.max_removal_percent:g}."
            )

    def estimate(self, unique: int, current: bytes) -> None:
        """Dry run: count what the writes would change, writing nothing."""
        # NB: the staging Set, unlike the List, holds each key once.
        adds = self.adds if self.adds.kind == "set" else Profiles(self.staged)
        self.report.removed = self.apply(self.removals, "check-remove")
        self.report.added = self.apply(adds, "check-add")
        self.finish_counts(unique)
        self.report.members = int(self.client.scard(current))
        self.note("dry run: nothing was written")

    def write(self, unique: int, *, streamed: bool) -> None:
        """Invalidate the ledger, then remove stale members and add new ones."""
        if self.options.fail_on_wrong_type:
            self.apply(self.removals, "check-remove")
            self.apply(self.adds, "check-add")
        self.client.delete(self.keys.ledger)
        self.report.removed = self.apply(self.removals, "remove")
        if not streamed:
            self.report.added = self.apply(self.adds, "add")
        self.finish_counts(unique)

    def apply(self, profiles: Profiles, op: Operation) -> int:
        if not self.client.exists(profiles.key):
            return 0
        return self.store.apply(
            self.run_keys,
            profiles,
            op=op,
            fail_on_wrong_type=self.options.fail_on_wrong_type,
            progress=lambda n: self.tick(op, n),
        )

    def finish_counts(self, unique: int) -> None:
        """Derive unchanged and skipped; sample the keys of the wrong type."""
        wrong = int(self.client.scard(self.run_keys.wrongtype))
        sample: list[bytes] = self.client.srandmember(  # type: ignore[assignment]
            self.run_keys.wrongtype, WRONG_TYPE_SAMPLE
        )
        self.report.wrong_type_sample = sorted(k.decode(errors="replace") for k in sample or [])
        self.report.skipped += wrong
        self.report.unchanged = max(unique - self.report.added - wrong, 0)
        if wrong:
            held = (
                "key holds another type and was"
                if wrong == 1
                else "keys hold another type and were"
            )
            self.note(f"{wrong} membership {held} left unchanged")

    def commit(self) -> None:
        """Make the staged keys the ledger and publish the metadata hash."""
        self.lock.keep()
        if self.client.exists(self.run_keys.wrongtype):
            self.difference(self.keys.ledger, self.staged, self.run_keys.wrongtype)
        elif self.client.exists(self.staged):
            self.client.rename(self.staged, self.keys.ledger)
        self.client.persist(self.keys.ledger)
        members = int(self.client.scard(self.keys.ledger))
        self.report.members = members
        self.client.hset(
            self.keys.meta,
            mapping={
                "syncedAt": datetime.now(UTC).isoformat(timespec="seconds"),
                "members": members,
                "runId": self.report.id,
                "mode": self.report.mode,
                "activation": self.options.activation,
                "membershipSuffix": self.keys.suffix,
            },
        )

    def difference(self, into: bytes, first: bytes, second: bytes) -> None:
        """SDIFFSTORE into = first - second (one hash-tag slot).

        Every key but the ledger is temporary and gets the staging expiry.
        """
        # NB: redis-py annotates set keys as str; bytes keys work the same.
        self.client.sdiffstore(into, [first, second])  # type: ignore[arg-type]
        if into != self.keys.ledger:
            self.client.pexpire(into, STAGING_TTL_MS)

    def clean_up(self) -> None:
        temporaries = [self.staged, self.queue, self.holders, self.adds.key, self.removals.key]
        temporaries.append(self.run_keys.wrongtype)
        try:
            for key in dict.fromkeys(temporaries):
                self.client.delete(key)
        except redis.RedisError:
            pass  # NB: every temporary Set has an expiry; Redis drops it later.

    def tick(self, phase: str, count: int) -> None:
        self.lock.keep()
        if self._progress:
            self._progress(phase, count)

    def note(self, text: str) -> None:
        self.report.message = f"{self.report.message}; {text}" if self.report.message else text
