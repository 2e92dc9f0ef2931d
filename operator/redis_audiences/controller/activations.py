"""Kopf handlers of activations: when they run and what their status says.

Each handler is a short paragraph delegating to ``syncing`` (the run itself)
and ``statuses`` (what to write). Runs happen on creation, on a spec change
(never on a status- or metadata-only change: the handler watches ``spec``),
on a new value of the ``audiences.dev/sync-requested-at`` annotation, on a
due schedule or retry, and on operator start-up for activations never synced
or caught mid-run. Kopf runs handlers of one object one at a time, and the
Redis lock keeps runs of one audience apart across replicas.

Kopf writes a handler's status patch when the handler returns, so a run is
announced first: each run-triggering handler has an ``announce`` twin,
registered before it, that sets phase ``Syncing`` (Kopf's default lifecycle
runs one handler per cycle and applies its patch before the next). A timer
marks a due run ``Syncing`` on one tick and runs it on the next.

``status.appliedAudience`` records where a run wrote; deletion and renames
remove the audience from there, so an invalid edit or a stalled duplicate
never removes what another spec wrote.

Limitations: changing a destination's ``url`` (not the ``destinationRef``)
moves nothing: the old Redis keeps the audience. A cron time that a
daylight-saving change repeats (02:30 on the autumn night in Europe) runs
twice, as croniter reports it twice.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import kopf
from pydantic import ValidationError

from redis_audiences.controller import metrics, statuses
from redis_audiences.controller.indexes import ACTIVATIONS, REGISTRY
from redis_audiences.controller.lookups import IndexedLookup, ObjectIndex
from redis_audiences.controller.schedules import next_retry_delay, next_run
from redis_audiences.membership import RunReport
from redis_audiences.resources import (
    ObjectMeta,
    RedisAudienceActivation,
    RedisAudienceActivationSpec,
    RedisDestination,
    RedisDestinationSpec,
    describe_validation_error,
)
from redis_audiences.syncing import (
    Overrides,
    remove_audience_from,
    sync_activation,
)

SYNC_REQUEST = "audiences.dev/sync-requested-at"
SKIP_CLEANUP = "audiences.dev/skip-cleanup"
SCHEDULE_TICK_SECONDS = 2.0
TIMER_TRIGGERS = ("Schedule", "Retry")
DESTINATION_WAIT_SECONDS = 10.0
CONFLICT_RECHECK_SECONDS = 30.0
_RUNNING: dict[Any, threading.Lock] = {}
_DELETING: set[Any] = set()
_LAST_STATUS: dict[Any, dict[str, Any]] = {}
_RAN_SPEC: dict[Any, dict[str, Any]] = {}


@kopf.on.create(*ACTIVATIONS, registry=REGISTRY)
@kopf.on.update(*ACTIVATIONS, field="spec", registry=REGISTRY)
def spec_announced(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
    _announce("SpecChange", body, patch)


@kopf.on.create(*ACTIVATIONS, registry=REGISTRY)
@kopf.on.update(*ACTIVATIONS, field="spec", registry=REGISTRY)
def spec_changed(body: kopf.Body, patch: kopf.Patch, **indexes: Any) -> None:
    """Run on a new spec (a renamed or moved audience moves in the run)."""
    run_activation("SpecChange", body, patch, indexes)


@kopf.on.delete(*ACTIVATIONS, registry=REGISTRY)
def deleted(body: kopf.Body, spec: kopf.Spec, meta: kopf.Meta, **indexes: Any) -> None:
    """Remove the audience it wrote (deletionPolicy Remove), then let go."""
    if (spec.get("deletionPolicy") or "Remove") == "Remove":
        uid = meta.get("uid", id(body))
        _DELETING.add(uid)  # NB: no run starts from here on, not even a due one.
        with _RUNNING.setdefault(uid, threading.Lock()):  # a run in flight lands first
            written = _written(_newest_status(uid, dict(body.get("status") or {})), spec)
            if written:  # NB: a stalled duplicate never wrote the owner's audience.
                _remove_or_retry(body, indexes, reason="CleanupPending", placement=written)


def _announce(trigger: str, body: kopf.Body, patch: kopf.Patch) -> None:
    """Show phase ``Syncing`` for a run about to start (valid specs only)."""
    if _valid_placement(body.get("spec") or {}) is None:
        return  # NB: the run handler reports the invalid spec as Stalled.
    generation = body["metadata"].get("generation") or 0
    patch.status.update(
        statuses.syncing(dict(body.get("status") or {}), generation=generation, trigger=trigger)
    )


Placement = tuple[str, str]


def _valid_placement(spec: Mapping[str, Any]) -> Placement | None:
    """(audience, destination) of a valid spec; None for an invalid one."""
    try:
        parsed = RedisAudienceActivationSpec.model_validate(dict(spec))
    except ValidationError:
        return None
    return parsed.audience_name, parsed.destination_ref.name


def _written(status: Mapping[str, Any], spec: Mapping[str, Any]) -> Placement | None:
    """Where this activation has written its audience, from its status.

    ``status.appliedAudience`` says it (empty after a move removed it); when
    the field is missing altogether but a run wrote, the valid current spec.
    """
    applied = status.get("appliedAudience")
    if applied and applied.get("audienceName") and applied.get("destinationName"):
        return str(applied["audienceName"]), str(applied["destinationName"])
    wrote = any(not run.get("dryRun") for run in status.get("history") or [])
    return _valid_placement(spec) if applied is None and wrote else None


def _remove_or_retry(body: kopf.Body, indexes: Any, *, reason: str, placement: Placement) -> None:
    """Remove the audience at ``placement``, or retry later (unless skipped)."""
    audience, destination_name = placement
    if (body["metadata"].get("annotations") or {}).get(SKIP_CLEANUP) == "true":
        kopf.info(body, reason="CleanupSkipped", message=f"{SKIP_CLEANUP} is true.")
        return
    meta = body["metadata"]
    entry = _destination_entry(
        indexes["destination_index"], meta.get("namespace"), destination_name
    )
    destination = _destination(entry)
    if destination is None:
        message = (
            f"RedisDestination {destination_name!r} is gone, so audience {audience!r} "
            "cannot be removed from it; its Sets are left as they are."
        )
        kopf.warn(body, reason="AudienceLeftBehind", message=message)
        return
    lookup = IndexedLookup(indexes["secret_index"], indexes["config_map_index"])
    qualified = f"{meta.get('namespace')}/{meta.get('name')}"
    report = remove_audience_from(destination, audience, activation=qualified, lookup=lookup)
    if report.outcome != "Succeeded":
        message = (
            f"cannot remove audience {audience!r} yet: {report.message}; retrying "
            f"(annotate {SKIP_CLEANUP}=true to skip)."
        )
        kopf.warn(body, reason=reason, message=message)
        raise kopf.TemporaryError(message, delay=10)
    removed = f"removed audience {audience!r} from {report.removed} Sets."
    kopf.info(body, reason="AudienceRemoved", message=removed)


@kopf.on.resume(*ACTIVATIONS, registry=REGISTRY)
def resumed(body: kopf.Body, status: kopf.Status, patch: kopf.Patch, **indexes: Any) -> None:
    """Run what was never synced, or was caught mid-run by a restart."""
    if not status.get("lastRun") or status.get("phase") == "Syncing":
        run_activation("Startup", body, patch, indexes)


@kopf.on.field(*ACTIVATIONS, field=("metadata", "annotations", SYNC_REQUEST), registry=REGISTRY)
def sync_announced(
    body: kopf.Body, new: Any, patch: kopf.Patch, status: kopf.Status, **_: Any
) -> None:
    if new and new != status.get("lastHandledSyncRequest"):
        _announce("Manual", body, patch)


@kopf.on.field(*ACTIVATIONS, field=("metadata", "annotations", SYNC_REQUEST), registry=REGISTRY)
def sync_requested(
    body: kopf.Body, new: Any, patch: kopf.Patch, status: kopf.Status, **indexes: Any
) -> None:
    if new and new != status.get("lastHandledSyncRequest"):
        run_activation("Manual", body, patch, indexes)
        patch.status["lastHandledSyncRequest"] = new


@kopf.timer(*ACTIVATIONS, interval=SCHEDULE_TICK_SECONDS, registry=REGISTRY)
def schedule_tick(
    body: kopf.Body, spec: kopf.Spec, status: kopf.Status, patch: kopf.Patch, **indexes: Any
) -> None:
    """Announce a due schedule or retry, run it next tick; mark suspension."""
    marked, generation = _timer_trigger(status), body["metadata"].get("generation") or 0
    due = bool(status.get("nextSyncTime")) and status["nextSyncTime"] <= _now()
    if marked and not spec.get("suspend"):
        trigger = (status.get("lastRun") or {}).get("trigger", "SpecChange")
        run_activation(trigger if marked == "Retry" else marked, body, patch, indexes, wait=False)
    elif spec.get("suspend"):
        _mark_suspended(status, patch, generation=generation, marked=marked is not None)
    elif due and (status.get("phase") == "Pending" or _conflicted(status)):
        # NB: no Syncing flash while it waits for a destination or an audience.
        trigger = (status.get("lastRun") or {}).get("trigger", "SpecChange")
        run_activation(trigger, body, patch, indexes, wait=False)
    elif due and status.get("phase") == "Failed":
        patch.status.update(statuses.syncing(status, generation=generation, trigger="Retry"))
    elif due and spec.get("schedule"):
        patch.status.update(statuses.syncing(status, generation=generation, trigger="Schedule"))
    elif _already_ran(body, status, generation):
        patch.status.update(statuses.observed(status, generation=generation))


def _already_ran(body: kopf.Body, status: Mapping[str, Any], generation: int) -> bool:
    """A newer generation whose spec equals the one the last run used.

    A spec changed and changed back during a run triggers no handler (it
    equals what was handled), yet bumps the generation; without this the
    status would never catch up and kstatus would wait forever.
    """
    if status.get("phase") in (None, "Syncing", "Pending"):
        return False
    if generation <= (status.get("observedGeneration") or 0):
        return False
    return _RAN_SPEC.get(body["metadata"].get("uid")) == dict(body.get("spec") or {})


def _conflicted(status: Mapping[str, Any]) -> bool:
    conditions = status.get("conditions") or []
    return any(c.get("type") == "Stalled" and c.get("reason") == "AudienceConflict"
               and c.get("status") == "True" for c in conditions)  # fmt: skip


def _timer_trigger(status: Mapping[str, Any]) -> str | None:
    """``Schedule`` or ``Retry`` when a tick announced a run not yet started."""
    if status.get("phase") != "Syncing":
        return None
    conditions = status.get("conditions") or []
    reason = next((c.get("reason") for c in conditions if c.get("type") == "Reconciling"), None)
    return reason if reason in TIMER_TRIGGERS else None


def _mark_suspended(
    status: Mapping[str, Any], patch: kopf.Patch, *, generation: int, marked: bool
) -> None:
    """Phase ``Suspended``, unless a run started by a change is on its way."""
    phase = status.get("phase")
    if phase in (None, "Suspended") or (phase == "Syncing" and not marked):
        return
    conditions = statuses.set_condition(
        status.get("conditions") or [], "Reconciling", "False", "Suspended",
        "Scheduled runs are suspended.", generation,
    )  # fmt: skip
    patch.status.update({"phase": "Suspended", "nextSyncTime": None, "conditions": conditions})


def run_activation(
    trigger: str, body: kopf.Body, patch: kopf.Patch, indexes: Any, *, wait: bool = True
) -> None:
    """Validate, run one sync and write its status and Event.

    One run at a time per activation: a scheduled tick that finds a run in
    progress skips (``wait`` false); other triggers wait for it.
    """
    uid = body["metadata"].get("uid", id(body))
    running = _RUNNING.setdefault(uid, threading.Lock())
    if not running.acquire(blocking=wait):
        return
    try:
        if uid not in _DELETING:
            _run_activation(trigger, body, patch, indexes)
    finally:
        running.release()


def _run_activation(trigger: str, body: kopf.Body, patch: kopf.Patch, indexes: Any) -> None:
    uid, generation = body["metadata"].get("uid"), body["metadata"].get("generation")
    previous = _newest_status(uid, dict(body.get("status") or {}))
    activation = _parse_activation(body, patch, generation)
    if activation is None:
        return
    if _refuse_conflict(activation, indexes["claim_index"], patch, body):
        return
    destination = _ready_destination(activation, indexes["destination_index"], patch, body)
    if destination is None:
        return
    _move_if_placed_elsewhere(activation, previous, body, patch, indexes)

    lookup = IndexedLookup(indexes["secret_index"], indexes["config_map_index"])
    report = sync_activation(activation, destination, lookup, Overrides(trigger=trigger))
    _RAN_SPEC[uid] = copy.deepcopy(dict(body.get("spec") or {}))
    status = _status_after(activation, previous, report, generation=generation or 0)
    patch.status.update(status)
    _LAST_STATUS[uid] = {**previous, **status}
    metrics.record(
        activation.meta.namespace, activation.meta.name, activation.spec.audience_name, report
    )
    counts = f"added {report.added}, removed {report.removed}, members {report.members}"
    if report.outcome == "Succeeded":
        kopf.info(body, reason="Synced", message=f"{report.mode} run {report.id}: {counts}.")
    else:
        kopf.warn(body, reason=report.outcome, message=report.message or report.outcome)


def _move_if_placed_elsewhere(
    activation: RedisAudienceActivation,
    previous: dict[str, Any],
    body: kopf.Body,
    patch: kopf.Patch,
    indexes: Any,
) -> None:
    """Remove the audience from where it was written, if not where it goes.

    Runs once the new destination is ready and no one else claims the new
    audience, so a typo or a conflict never takes the live audience down; a
    dry run moves nothing.
    """
    spec = activation.spec
    written = _written(previous, dict(body.get("spec") or {}))
    if spec.dry_run or not written or written == (spec.audience_name, spec.destination_ref.name):
        return
    _remove_or_retry(body, indexes, reason="AudienceMoved", placement=written)
    cleared = {"audienceName": None, "destinationName": None}
    previous["appliedAudience"] = patch.status["appliedAudience"] = cleared
    _LAST_STATUS[activation.meta.uid] = {**previous}


def _status_after(
    activation: RedisAudienceActivation,
    previous: Mapping[str, Any],
    report: RunReport,
    *,
    generation: int,
) -> dict[str, Any]:
    """The status a run leaves: counts, next run or retry, where it wrote."""
    status = statuses.finished(
        previous, report, generation=generation, next_sync_time=_next_sync(activation)
    )
    if report.outcome == "Failed":
        status["nextSyncTime"] = _retry_time(previous)
    if activation.spec.suspend:
        status["phase"] = "Suspended"
    if not report.dry_run and report.outcome != "Blocked":
        placement = (activation.spec.audience_name, activation.spec.destination_ref.name)
        status["appliedAudience"] = {"audienceName": placement[0], "destinationName": placement[1]}
    return status


def _newest_status(uid: Any, seen: dict[str, Any]) -> dict[str, Any]:
    """The status this replica last wrote, when newer than the one ``seen``.

    A run that waited for another works from an older snapshot; without this
    it would overwrite the other run's entry in ``history``.
    """
    written = _LAST_STATUS.get(uid) or {}
    mine = (written.get("lastRun") or {}).get("finishedAt") or ""
    theirs = (seen.get("lastRun") or {}).get("finishedAt") or ""
    return dict(written) if mine > theirs else seen


def _next_sync(activation: RedisAudienceActivation) -> str | None:
    """The next scheduled run; None without a schedule or when suspended."""
    schedule = activation.spec.schedule
    if schedule is None or activation.spec.suspend:
        return None
    moment = next_run(schedule, after=datetime.now(UTC))
    return statuses.rfc3339(moment)


def _retry_time(previous: Mapping[str, Any]) -> str:
    """When to retry a failed run: double the last wait after a failure."""
    waited, last = None, previous.get("lastRun") or {}
    if last.get("outcome") == "Failed" and last.get("finishedAt") and previous.get("nextSyncTime"):
        waited = (_parse(previous["nextSyncTime"]) - _parse(last["finishedAt"])).total_seconds()
    return statuses.rfc3339_in(next_retry_delay(waited))


def _parse(moment: str) -> datetime:
    return datetime.fromisoformat(moment.replace("Z", "+00:00"))


def _now() -> str:
    return statuses.now_rfc3339()


def _parse_activation(
    body: kopf.Body, patch: kopf.Patch, generation: int | None
) -> RedisAudienceActivation | None:
    try:
        meta = ObjectMeta.model_validate(dict(body["metadata"]))
        return RedisAudienceActivation(
            meta, RedisAudienceActivationSpec.model_validate(dict(body.get("spec") or {}))
        )
    except ValidationError as error:
        message = describe_validation_error(error, "spec")
        patch.status.update(
            statuses.stalled(
                dict(body.get("status") or {}),
                reason="InvalidSpec",
                message=message,
                generation=generation or 0,
            )
        )
        kopf.warn(body, reason="InvalidSpec", message=message)
        return None


def _refuse_conflict(
    activation: RedisAudienceActivation, index: ObjectIndex, patch: kopf.Patch, body: kopf.Body
) -> bool:
    """Of two activations of one audience and destination, one runs.

    The one that already wrote the audience keeps it; between two that have
    not, the older (then the first by name). The other stalls, says so once
    and checks again every ``CONFLICT_RECHECK_SECONDS``.
    """
    place = (
        activation.meta.namespace,
        activation.spec.destination_ref.name,
        activation.spec.audience_name,
    )
    claims = sorted(index.get(place, []))
    if not claims or claims[0][-1] == activation.meta.name:
        return False
    message = (
        f"audience {activation.spec.audience_name!r} on destination "
        f"{place[1]!r} is claimed by activation {claims[0][-1]!r}, which "
        f"{'writes it already' if not claims[0][0] else 'is older'}."
    )
    previous = dict(body.get("status") or {})
    stalled = statuses.stalled(
        previous,
        reason="AudienceConflict",
        message=message,
        generation=activation.meta.generation or 0,
    )
    patch.status.update({**stalled, "nextSyncTime": statuses.rfc3339_in(CONFLICT_RECHECK_SECONDS)})
    if not _conflicted(previous):
        kopf.warn(body, reason="AudienceConflict", message=message)
    return True


def _ready_destination(
    activation: RedisAudienceActivation, index: ObjectIndex, patch: kopf.Patch, body: kopf.Body
) -> RedisDestination | None:
    """The activation's destination when Ready; else None, Pending and a retry.

    The retry is the schedule timer's (``nextSyncTime`` in ten seconds), so a
    run from any trigger waits for the destination the same way.
    """
    spec = activation.spec
    entry = _destination_entry(index, activation.meta.namespace, spec.destination_ref.name)
    destination = _destination(entry)
    if destination is None or not _is_ready(entry):
        name = activation.spec.destination_ref.name
        message = f"RedisDestination {name!r} is missing or not ready; the sync waits for it."
        generation = body["metadata"].get("generation") or 0
        conditions = (body.get("status") or {}).get("conditions") or []
        for kind, value in (("Ready", "False"), ("Reconciling", "False")):
            conditions = statuses.set_condition(
                conditions, kind, value, "DestinationNotReady", message, generation
            )
        if (body.get("status") or {}).get("phase") != "Pending":
            kopf.warn(body, reason="DestinationNotReady", message=message)
        retry = statuses.rfc3339_in(DESTINATION_WAIT_SECONDS)
        patch.status.update({"phase": "Pending", "conditions": conditions, "nextSyncTime": retry})
        return None
    return destination


def _destination_entry(index: ObjectIndex, namespace: Any, name: str) -> Mapping[str, Any] | None:
    """The indexed RedisDestination body ``namespace/name``, or None."""
    found = list(index.get((namespace, name), []))
    return found[-1] if found else None


def _destination(entry: Mapping[str, Any] | None) -> RedisDestination | None:
    """The destination of an index entry; None when missing or invalid."""
    if entry is None:
        return None
    try:
        meta = ObjectMeta.model_validate(entry["metadata"])
        return RedisDestination(meta, RedisDestinationSpec.model_validate(entry["spec"]))
    except ValidationError:
        return None


def _is_ready(entry: Mapping[str, Any] | None) -> bool:
    conditions = ((entry or {}).get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
