"""Activation status after runs: phase, counts, history and conditions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import jsonschema

from redis_audiences.controller import activations, statuses
from redis_audiences.membership import RunReport
from redis_audiences.resources.crds import crd_manifests


def report(outcome: str = "Succeeded", **fields: Any) -> RunReport:
    started = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)
    values: dict[str, Any] = {
        "id": "run1", "trigger": "SpecChange", "mode": "Full", "dry_run": False,
        "started_at": started, "finished_at": started + timedelta(seconds=2),
        "source_rows": 10, "added": 8, "removed": 1, "unchanged": 2, "members": 10,
        "outcome": outcome, **fields,
    }  # fmt: skip
    return RunReport(**values)


def condition(status: dict[str, Any], kind: str) -> dict[str, Any]:
    found: dict[str, Any] = next(c for c in status["conditions"] if c["type"] == kind)
    return found


def stored(status: dict[str, Any]) -> dict[str, Any]:
    """The status as the API server keeps it: a merge patch's nulls delete."""
    return {key: value for key, value in status.items() if value is not None}


def status_schema() -> dict[str, Any]:
    crd = next(
        c for c in crd_manifests() if c["spec"]["names"]["kind"] == "RedisAudienceActivation"
    )
    schema: dict[str, Any] = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema["properties"]["status"]


def test_a_successful_run_makes_the_activation_synced_and_ready() -> None:
    status = statuses.finished({}, report(), generation=3, next_sync_time=None)

    assert status["phase"] == "Synced"
    assert status["members"] == 10
    assert status["observedGeneration"] == 3
    assert status["lastRun"]["added"] == 8
    assert status["lastSyncTime"] == status["lastSuccessfulSyncTime"] == "2026-12-03T10:00:02Z"
    assert condition(status, "Ready")["status"] == "True"
    assert condition(status, "Stalled")["status"] == "False"
    assert condition(status, "Reconciling")["status"] == "False"
    jsonschema.validate(stored(status), status_schema())


def test_a_blocked_run_is_stalled_and_keeps_the_last_member_count() -> None:
    previous = statuses.finished({}, report(), generation=1, next_sync_time=None)

    status = statuses.finished(
        previous,
        report("Blocked", members=None, message="would remove 9 of 10 members"),
        generation=1,
        next_sync_time=None,
    )

    assert status["phase"] == "Blocked"
    assert "members" not in status  # NB: a merge patch keeps the previous count
    assert condition(status, "Ready")["reason"] == "SafetyGuard"
    assert condition(status, "Stalled") | {"lastTransitionTime": ""} == {
        "type": "Stalled", "status": "True", "reason": "SafetyGuard",
        "message": "would remove 9 of 10 members", "lastTransitionTime": "",
        "observedGeneration": 1,
    }  # fmt: skip


def test_history_keeps_the_last_five_runs_newest_first() -> None:
    status: dict[str, Any] = {}
    for number in range(7):
        status = statuses.finished(status, report(id=f"run{number}"), generation=1,
                                   next_sync_time=None)  # fmt: skip

    assert [run["id"] for run in status["history"]] == ["run6", "run5", "run4", "run3", "run2"]


def test_a_condition_keeps_its_transition_time_while_its_status_holds() -> None:
    first = statuses.set_condition([], "Ready", "True", "Synced", "ok", 1)
    first[0]["lastTransitionTime"] = "2020-01-01T00:00:00Z"

    same = statuses.set_condition(first, "Ready", "True", "Synced", "ok again", 2)
    flipped = statuses.set_condition(first, "Ready", "False", "SyncFailed", "down", 2)

    assert same[0]["lastTransitionTime"] == "2020-01-01T00:00:00Z"
    assert same[0]["observedGeneration"] == 2
    assert flipped[0]["lastTransitionTime"] != "2020-01-01T00:00:00Z"


def test_syncing_sets_reconciling_and_keeps_ready() -> None:
    done = statuses.finished({}, report(), generation=1, next_sync_time=None)

    status = statuses.syncing(done, generation=2, trigger="Schedule")

    assert status["phase"] == "Syncing"
    assert condition(status, "Reconciling")["status"] == "True"
    assert condition(status, "Reconciling")["reason"] == "Schedule"
    assert condition(status, "Ready")["status"] == "True"


def test_an_invalid_spec_is_stalled_with_the_reason() -> None:
    status = statuses.stalled({}, generation=4, reason="InvalidSpec",
                              message="spec.audienceName: 'a b' contains a space.")  # fmt: skip

    assert status["phase"] == "Failed"
    assert condition(status, "Stalled")["reason"] == "InvalidSpec"
    assert "spec.audienceName" in condition(status, "Ready")["message"]
    assert "nextSyncTime" in status and status["nextSyncTime"] is None  # no retry, no schedule
    jsonschema.validate(stored(status), status_schema())


def test_a_dry_run_does_not_change_the_member_count() -> None:
    status = statuses.finished({}, report(dry_run=True), generation=1, next_sync_time=None)

    assert "members" not in status
    assert status["lastRun"]["dryRun"] is True


def test_a_run_that_waited_for_another_builds_on_the_status_that_run_wrote() -> None:
    older = statuses.finished({}, report(), generation=1, next_sync_time=None)
    newer = statuses.finished(older, report(), generation=1, next_sync_time=None)
    newer["lastRun"]["finishedAt"] = "2999-01-01T00:00:00Z"
    activations._LAST_STATUS["uid-1"] = newer

    assert activations._newest_status("uid-1", older) == newer
    assert activations._newest_status("uid-2", older) == older


def test_a_retry_started_by_the_timer_still_doubles_the_last_wait() -> None:
    failed = {"outcome": "Failed", "finishedAt": "2026-12-04T10:00:00Z"}
    announced = {"phase": "Syncing", "nextSyncTime": "2026-12-04T10:00:20Z", "lastRun": failed}

    retry = datetime.fromisoformat(activations._retry_time(announced).replace("Z", "+00:00"))

    assert 39 <= (retry - datetime.now(UTC)).total_seconds() <= 41
