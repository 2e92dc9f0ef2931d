"""Sync runs against a real redis-server, standalone and Cluster alike."""

from __future__ import annotations

import threading
import time

import pytest
import redis
from redis.cluster import RedisCluster

from integration.membership_helpers import ListBatches, holders, snapshot, sync
from redis_audiences.membership import AudienceKeys, RunOptions, run_sync

Client = redis.Redis | RedisCluster


@pytest.fixture(params=["standalone", "cluster"])
def client(request: pytest.FixtureRequest) -> Client:
    fixture = "r" if request.param == "standalone" else "rc"
    return request.getfixturevalue(fixture)  # type: ignore[no-any-return]


def test_full_sync_gives_every_source_key_the_audience(client: Client) -> None:
    report = sync(client, "vip", ["user:1", "user:2", "user:2", "user:3"], mode="Full")

    assert report.outcome == "Succeeded", report.message
    assert holders(client, "vip") == {b"user:1", b"user:2", b"user:3"}
    assert (report.source_rows, report.added, report.unchanged, report.members) == (4, 3, 0, 3)


def test_full_sync_removes_stale_members_and_leaves_other_audiences(client: Client) -> None:
    client.sadd("user:1.dinmo_segments", "vip", "newsletter")
    client.sadd("user:2.dinmo_segments", "vip", "newsletter")
    client.sadd("user:3.dinmo_segments", "newsletter")

    report = sync(client, "vip", ["user:2", "user:3"], mode="Full")

    assert report.outcome == "Succeeded", report.message
    assert (report.added, report.removed, report.unchanged) == (1, 1, 1)
    assert client.smembers("user:1.dinmo_segments") == {b"newsletter"}
    assert client.smembers("user:2.dinmo_segments") == {b"vip", b"newsletter"}
    assert client.smembers("user:3.dinmo_segments") == {b"vip", b"newsletter"}


def test_full_sync_scan_reaches_every_key_over_many_pages(client: Client) -> None:
    for number in range(4500):
        client.sadd(f"old:{number}.dinmo_segments", "vip")

    report = sync(client, "vip", ["user:1"], mode="Full")

    assert report.removed == 4500
    assert holders(client, "vip") == {b"user:1"}


@pytest.mark.parametrize(
    "key",
    [
        "a*b",
        "a?b",
        "a[bc]d",
        "back\\slash",
        "with space",
        "ünïcødé:客户",
        "*",
        "[",
        "\\",
    ],
)
def test_keys_with_glob_characters_spaces_and_non_ascii_are_written_as_they_are(
    client: Client, key: str
) -> None:
    client.sadd("ab.dinmo_segments", "vip")

    sync(client, "vip", [key, "ab"], mode="Full")
    assert holders(client, "vip") == {key.encode(), b"ab"}

    sync(client, "vip", ["ab"], mode="Full")
    assert holders(client, "vip") == {b"ab"}


def test_decoy_keys_that_only_look_like_membership_sets_are_untouched(client: Client) -> None:
    decoys = ["x.dinmo_segments_old", "X.DINMO_SEGMENTS", "x.dinmo_segmentsx", "x_dinmo_segments"]
    for decoy in decoys:
        client.sadd(decoy, "vip")

    sync(client, "vip", ["user:1"], mode="Full")

    for decoy in decoys:
        assert client.smembers(decoy) == {b"vip"}, decoy


def test_glob_characters_in_the_suffix_are_escaped_when_scanning(r: redis.Redis) -> None:
    keys = AudienceKeys("vip", suffix=b"[seg]")
    r.sadd("decoys", "vip")
    r.sadd("stale[seg]", "vip")

    report = run_sync(
        r, keys, ListBatches(["user:1"]), RunOptions(mode="Full", max_removal_percent=100)
    )

    assert report.outcome == "Succeeded", report.message
    assert r.smembers("decoys") == {b"vip"}
    assert r.smembers("user:1[seg]") == {b"vip"}
    assert not r.exists("stale[seg]")


def test_keys_that_are_not_utf8_do_not_break_a_full_run(client: Client) -> None:
    client.sadd(b"\xff\xfe.dinmo_segments", "vip")
    client.sadd(b"\xc3(.dinmo_segments", "other")

    report = sync(client, "vip", [b"\xfa\xfb"], mode="Full")

    assert report.outcome == "Succeeded", report.message
    assert holders(client, "vip") == {b"\xfa\xfb"}
    assert client.smembers(b"\xc3(.dinmo_segments") == {b"other"}


def test_a_string_at_a_membership_key_is_skipped_and_left_as_it_was(client: Client) -> None:
    client.set("user:2.dinmo_segments", "not a set")

    report = sync(client, "vip", ["user:1", "user:2"], mode="Full")

    assert report.outcome == "Succeeded", report.message
    assert client.get("user:2.dinmo_segments") == b"not a set"
    assert (report.added, report.skipped, report.members) == (1, 1, 1)
    assert report.wrong_type_sample == ["user:2"]


def test_on_wrong_type_fail_fails_the_run_before_any_write(client: Client) -> None:
    client.set("user:2.dinmo_segments", "not a set")
    client.sadd("user:9.dinmo_segments", "vip")
    before = snapshot(client)

    report = sync(client, "vip", ["user:1", "user:2"], mode="Full", fail_on_wrong_type=True)

    assert report.outcome == "Failed"
    assert "user:2.dinmo_segments" in report.message
    assert snapshot(client) == before


def test_delta_writes_only_the_difference_from_the_ledger(client: Client) -> None:
    sync(client, "vip", ["a", "b", "c"], mode="Delta")
    client.sadd("b.dinmo_segments", "other")

    report = sync(client, "vip", ["b", "c", "d"], mode="Delta")

    assert report.mode == "Delta"
    assert (report.added, report.removed, report.unchanged, report.members) == (1, 1, 2, 3)
    assert holders(client, "vip") == {b"b", b"c", b"d"}
    assert client.smembers("b.dinmo_segments") == {b"vip", b"other"}


def test_delta_without_a_ledger_runs_full_and_says_so(client: Client) -> None:
    client.sadd("stale.dinmo_segments", "vip")

    report = sync(client, "vip", ["a"], mode="Delta")

    assert report.mode == "Full"
    assert "ran Full" in report.message
    assert holders(client, "vip") == {b"a"}


def test_metadata_hash_tells_readers_when_and_what_was_synced(client: Client) -> None:
    report = sync(client, "vip", ["a", "b"], mode="Full", activation="shop/vip")

    meta = client.hgetall("audiences:{vip}:meta")
    assert meta[b"members"] == b"2"
    assert meta[b"runId"] == report.id.encode()
    assert meta[b"mode"] == b"Full"
    assert meta[b"activation"] == b"shop/vip"
    assert meta[b"syncedAt"].startswith(b"20")


def test_a_run_leaves_no_temporary_keys_behind(client: Client) -> None:
    client.set("user:2.dinmo_segments", "string")
    sync(client, "vip", ["a", "b", "user:2"], mode="Full")
    sync(client, "vip", ["a", "c"], mode="Delta")

    owned = {k for k in snapshot(client) if k.startswith(b"audiences:")}
    assert owned == {b"audiences:{vip}:meta", b"audiences:{vip}:ledger"}


def test_empty_source_is_blocked_and_writes_nothing(client: Client) -> None:
    sync(client, "vip", ["a", "b"], mode="Full")
    before = snapshot(client)

    report = sync(client, "vip", [], mode="Full")

    assert report.outcome == "Blocked"
    assert "allowEmptySource" in report.message
    assert snapshot(client) == before


def test_allowed_empty_source_empties_the_audience(client: Client) -> None:
    sync(client, "vip", ["a", "b"], mode="Full")

    report = sync(client, "vip", [], mode="Delta", allow_empty_source=True, max_removal_percent=50)

    assert report.outcome == "Succeeded", report.message
    assert holders(client, "vip") == set()


@pytest.mark.parametrize("mode", ["Full", "Delta"])
def test_removal_guard_blocks_a_large_removal_and_writes_nothing(client: Client, mode: str) -> None:
    sync(client, "vip", ["a", "b", "c", "d"], mode="Full")
    before = snapshot(client)

    report = sync(client, "vip", ["a", "e"], mode=mode, max_removal_percent=50)

    assert report.outcome == "Blocked"
    assert "3 of 4 members (75.0%)" in report.message
    assert snapshot(client) == before


def test_removal_guard_lets_a_share_at_the_limit_through(client: Client) -> None:
    sync(client, "vip", ["a", "b", "c", "d"], mode="Full")

    report = sync(client, "vip", ["a", "b"], mode="Delta", max_removal_percent=50)

    assert report.outcome == "Succeeded", report.message


@pytest.mark.parametrize("mode", ["Full", "Delta"])
def test_dry_run_reports_the_plan_and_writes_nothing(client: Client, mode: str) -> None:
    sync(client, "vip", ["a", "b", "c"], mode="Full")
    client.set("w.dinmo_segments", "string")
    before = snapshot(client)

    report = sync(client, "vip", ["b", "c", "d", "e", "w"], mode=mode, dry_run=True)

    assert report.outcome == "Succeeded", report.message
    assert (report.added, report.removed, report.unchanged, report.skipped) == (2, 1, 2, 1)
    assert snapshot(client) == before


def test_members_that_stay_never_lose_the_audience_during_a_full_run(r: redis.Redis) -> None:
    stayers = [f"stay:{n}" for n in range(3000)]
    sync(r, "vip", stayers + [f"leave:{n}" for n in range(3000)], mode="Full")
    watched = [f"{key}.dinmo_segments" for key in stayers[::97]]
    misses: list[str] = []
    done = threading.Event()

    def read_while_syncing() -> None:
        reader = redis.Redis(connection_pool=r.connection_pool)
        while not done.is_set():
            misses.extend(k for k in watched if not reader.sismember(k, "vip"))

    thread = threading.Thread(target=read_while_syncing)
    thread.start()
    try:
        report = sync(r, "vip", stayers + [f"new:{n}" for n in range(3000)], mode="Full")
    finally:
        done.set()
        thread.join()

    assert (report.removed, report.added) == (3000, 3000)
    assert misses == []


@pytest.mark.parametrize("mode", ["Full", "Delta"])
def test_a_run_that_fails_half_way_converges_when_run_again(r: redis.Redis, mode: str) -> None:
    old = [f"old:{n}" for n in range(12000)]
    new = [f"new:{n}" for n in range(12000)]
    sync(r, "vip", old, mode="Full")

    def fail_after_first_page(phase: str, count: int) -> None:
        if phase == "add":
            r.config_set("maxmemory", 1)  # every later write script is refused (OOM)

    try:
        failed = run_sync(
            r,
            AudienceKeys("vip"),
            ListBatches(new),
            RunOptions(mode=mode, max_removal_percent=100),
            progress=fail_after_first_page,
        )  # type: ignore[arg-type]
    finally:
        r.config_set("maxmemory", 0)
    assert failed.outcome == "Failed"
    assert "maxmemory" in failed.message or "OOM" in failed.message
    assert 0 < len(holders(r, "vip")) < len(new)

    again = sync(r, "vip", new, mode="Delta")

    assert again.outcome == "Succeeded", again.message
    assert holders(r, "vip") == {k.encode() for k in new}
    assert sync(r, "vip", new, mode="Delta").mode == "Delta"


def test_a_second_concurrent_run_of_one_audience_reports_it_is_locked(client: Client) -> None:
    entered, release = threading.Event(), threading.Event()

    class SlowBatches(ListBatches):
        def __iter__(self):  # type: ignore[no-untyped-def]
            entered.set()
            release.wait(10)
            yield from super().__iter__()

    results = {}
    first = threading.Thread(
        target=lambda: results.update(
            first=run_sync(client, AudienceKeys("vip"), SlowBatches(["a"]), RunOptions(mode="Full"))
        )
    )
    first.start()
    entered.wait(10)

    second = sync(client, "vip", ["b"], mode="Full")
    release.set()
    first.join()

    assert second.outcome == "Failed"
    assert "locked" in second.message
    assert results["first"].outcome == "Succeeded"
    assert holders(client, "vip") == {b"a"}


@pytest.mark.parametrize(
    ("first_load", "phase"), [(True, "staged"), (False, "add")], ids=["streamed", "planned"]
)
def test_a_run_that_loses_its_lock_stops_writing(
    r: redis.Redis, first_load: bool, phase: str
) -> None:
    keys = AudienceKeys("vip")
    if not first_load:
        r.sadd("stale.dinmo_segments", "vip")

    def steal_lock(reached: str, count: int) -> None:
        if reached == phase:
            r.set(keys.lock, "someone-else")

    report = run_sync(
        r,
        keys,
        ListBatches([f"k:{n}" for n in range(12000)]),
        RunOptions(mode="Full", max_removal_percent=100),
        progress=steal_lock,
    )

    assert report.outcome == "Failed"
    assert "lock" in report.message
    assert len(holders(r, "vip") - {b"stale"}) < 12000  # what landed before the theft, no more
    assert r.get(keys.lock) == b"someone-else"


def test_unreachable_redis_fails_the_run_with_one_line() -> None:
    unreachable = redis.Redis(port=1, socket_connect_timeout=0.5)

    report = sync(unreachable, "vip", ["a"], mode="Full")

    assert report.outcome == "Failed"
    assert report.message.startswith("Redis unreachable")
    assert "\n" not in report.message


def test_cluster_runs_spread_members_over_every_primary(rc: RedisCluster) -> None:
    keys = [f"user:{n}" for n in range(300)]
    rc.sadd("stale:1.dinmo_segments", "vip")
    rc.sadd("stale:2.dinmo_segments", "vip")

    full = sync(rc, "vip", keys, mode="Full")
    delta = sync(rc, "vip", [*keys[50:], "user:new"], mode="Delta")

    assert (full.added, full.removed) == (300, 2)
    assert (delta.mode, delta.added, delta.removed) == ("Delta", 1, 50)
    assert holders(rc, "vip") == {k.encode() for k in [*keys[50:], "user:new"]}
    per_node = [rc.get_redis_connection(node).dbsize() for node in rc.get_primaries()]
    assert len(per_node) == 3 and min(per_node) > 50


def test_a_source_slower_than_the_lock_expiry_keeps_the_lock(r: redis.Redis) -> None:
    class SlowFirstRow(ListBatches):
        def __iter__(self):  # type: ignore[no-untyped-def]
            time.sleep(1.0)  # NB: three lock lifetimes of 0.3 s pass before the first row.
            yield from super().__iter__()

    report = run_sync(
        r, AudienceKeys("vip"), SlowFirstRow(["a", "b"]), RunOptions(mode="Full", lock_ttl=0.3)
    )

    assert report.outcome == "Succeeded", report.message
    assert holders(r, "vip") == {b"a", b"b"}


def test_a_changed_membership_suffix_makes_delta_run_full(r: redis.Redis) -> None:
    old, new = AudienceKeys("vip", suffix=b".A"), AudienceKeys("vip", suffix=b".B")
    run_sync(r, old, ListBatches(["k1", "k2"]), RunOptions(mode="Delta"))

    report = run_sync(r, new, ListBatches(["k1", "k2"]), RunOptions(mode="Delta"))

    assert report.mode == "Full"
    assert "another membershipSuffix" in report.message
    assert r.smembers("k1.B") == r.smembers("k2.B") == {b"vip"}


@pytest.mark.parametrize("owned", ["audiences:{vip}:meta", "audiences:{vip}:ledger"])
def test_an_operator_key_of_another_type_fails_the_run_before_any_write(
    client: Client, owned: str
) -> None:
    client.set(owned, "taken by someone else")
    before = snapshot(client)

    report = sync(client, "vip", ["a"], mode="Delta")

    assert report.outcome == "Failed"
    assert owned in report.message
    assert snapshot(client) == before
