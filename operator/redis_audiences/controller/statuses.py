"""The status of an activation, computed from its previous status and a run.

Pure functions, so that what ``kubectl get raa`` and Argo CD read can be
tested without a cluster. Conditions follow the Kubernetes shape: a
condition's ``lastTransitionTime`` changes only when its status does.
``history`` keeps the last five runs, newest first.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from redis_audiences.membership import RunReport
from redis_audiences.syncing import last_run_fields

HISTORY = 5
_PHASES = {"Succeeded": "Synced", "Failed": "Failed", "Blocked": "Blocked"}
_REASONS = {"Succeeded": "Synced", "Failed": "SyncFailed", "Blocked": "SafetyGuard"}

Status = dict[str, Any]


def rfc3339(moment: datetime) -> str:
    """An aware time as status spells it: seconds, UTC, a ``Z``."""
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def now_rfc3339() -> str:
    return rfc3339(datetime.now(UTC))


def rfc3339_in(seconds: float) -> str:
    """The time ``seconds`` from now, as status spells it."""
    return rfc3339(datetime.now(UTC) + timedelta(seconds=seconds))


def syncing(previous: Mapping[str, Any], *, generation: int, trigger: str) -> Status:
    """Status of a run announced or under way: phase Syncing, Reconciling true.

    The Reconciling reason is the run's trigger (``Retry`` for a retry), so a
    timer can tell a run it announced from one a change announced.
    """
    conditions = set_condition(
        previous.get("conditions") or [],
        "Reconciling",
        "True",
        trigger,
        f"A {trigger} run is in progress.",
        generation,
    )
    return {"phase": "Syncing", "conditions": conditions}


def finished(
    previous: Mapping[str, Any],
    report: RunReport,
    *,
    generation: int,
    next_sync_time: str | None,
) -> Status:
    """Status after a run: counts, history and the three conditions.

    Meant as a merge patch: ``nextSyncTime`` None removes it (no schedule),
    and a run that did not succeed leaves ``members`` as it was.
    """
    summary = last_run_fields(report)
    succeeded = report.outcome == "Succeeded"
    message = report.message or f"{report.mode} run {report.id} {report.outcome.lower()}."
    conditions = list(previous.get("conditions") or [])
    conditions = set_condition(
        conditions, "Reconciling", "False", "Idle", "No run in progress.", generation
    )
    conditions = set_condition(
        conditions,
        "Ready",
        "True" if succeeded else "False",
        _REASONS[report.outcome],
        message,
        generation,
    )
    blocked = report.outcome == "Blocked"
    stalled_reason, stalled_message = (
        ("SafetyGuard", message) if blocked else ("Healthy", "Nothing blocks the sync.")
    )
    conditions = set_condition(
        conditions,
        "Stalled",
        "True" if blocked else "False",
        stalled_reason,
        stalled_message,
        generation,
    )
    status: Status = {
        "observedGeneration": generation,
        "phase": _PHASES[report.outcome],
        "lastSyncTime": summary["finishedAt"],
        "nextSyncTime": next_sync_time,
        "lastRun": summary,
        "history": [summary, *(previous.get("history") or [])][:HISTORY],
        "wrongTypeSample": report.wrong_type_sample[:10],
        "conditions": conditions,
    }
    if succeeded:
        status["lastSuccessfulSyncTime"] = summary["finishedAt"]
        if not report.dry_run:
            status["members"] = report.members
    return status


def observed(previous: Mapping[str, Any], *, generation: int) -> Status:
    """The same status, now about ``generation`` (whose spec already ran)."""
    conditions = [{**c, "observedGeneration": generation} for c in previous.get("conditions") or []]
    return {"observedGeneration": generation, "conditions": conditions}


def stalled(previous: Mapping[str, Any], *, generation: int, reason: str, message: str) -> Status:
    """Status of an activation that cannot run until its spec changes."""
    conditions = list(previous.get("conditions") or [])
    conditions = set_condition(conditions, "Ready", "False", reason, message, generation)
    conditions = set_condition(conditions, "Stalled", "True", reason, message, generation)
    conditions = set_condition(conditions, "Reconciling", "False", reason, message, generation)
    return {
        "observedGeneration": generation,
        "phase": "Failed",
        "nextSyncTime": None,  # NB: no retry and no schedule until the spec changes.
        "conditions": conditions,
    }


def set_condition(
    conditions: Sequence[Mapping[str, Any]],
    kind: str,
    status: str,
    reason: str,
    message: str,
    generation: int,
) -> list[dict[str, Any]]:
    """Conditions with ``kind`` set; transition time moves only on change."""
    old = next((c for c in conditions if c.get("type") == kind), None)
    changed = old is None or old.get("status") != status
    condition = {
        "type": kind,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": now_rfc3339() if changed else old["lastTransitionTime"],  # type: ignore[index]
        "observedGeneration": generation,
    }
    others = [dict(c) for c in conditions if c.get("type") != kind]
    return sorted([*others, condition], key=lambda c: str(c["type"]))
