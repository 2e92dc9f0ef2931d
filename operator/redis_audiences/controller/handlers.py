"""Kopf handlers: when activations run and what their status says.

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

A destination is re-checked (PING, INFO and ``ACL DRYRUN``) on change, every
``DESTINATION_RECHECK_SECONDS``, and within a tick of a change to a Secret it
references (noticed through a digest of the Secrets kept in memory only).
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import kopf
from pydantic import ValidationError

from redis_audiences.controller import metrics, statuses
from redis_audiences.controller.lookups import IndexedLookup, ObjectIndex, index_data
from redis_audiences.controller.schedules import next_run, retry_delay
from redis_audiences.membership import MembershipError
from redis_audiences.resources import (
    GROUP,
    VERSION,
    ManifestError,
    ObjectMeta,
    RedisAudienceActivation,
    RedisAudienceActivationSpec,
    RedisDestination,
    RedisDestinationSpec,
    describe_validation_error,
)
from redis_audiences.syncing import (
    Overrides,
    check_destination,
    remove_activation_audience,
    sync_activation,
)

REGISTRY = kopf.OperatorRegistry()
ACTIVATIONS = (GROUP, VERSION, "redisaudienceactivations")
DESTINATIONS = (GROUP, VERSION, "redisdestinations")
SYNC_REQUEST = "audiences.dev/sync-requested-at"
SKIP_CLEANUP = "audiences.dev/skip-cleanup"
SCHEDULE_TICK_SECONDS = 2.0
DESTINATION_RECHECK_SECONDS = 60.0
TIMER_TRIGGERS = ("Schedule", "Retry")
_RUNNING: dict[Any, threading.Lock] = {}
_DELETING: set[Any] = set()
_SECRET_DIGESTS: dict[Any, str] = {}


@kopf.index("", "v1", "secrets", registry=REGISTRY)
def secret_index(body: kopf.Body, **_: Any) -> dict[tuple[str, str], dict[str, str]]:
    return index_data(body, encoded=True)


@kopf.index("", "v1", "configmaps", registry=REGISTRY)
def config_map_index(body: kopf.Body, **_: Any) -> dict[tuple[str, str], dict[str, str]]:
    return index_data(body, encoded=False)


@kopf.index(*DESTINATIONS, registry=REGISTRY)
def destination_index(body: kopf.Body, **_: Any) -> dict[tuple[str, str], dict[str, Any]]:
    meta = body.get("metadata", {})
    return {(meta.get("namespace", ""), meta.get("name", "")): dict(body)}


@kopf.index(*ACTIVATIONS, registry=REGISTRY)
def claim_index(body: kopf.Body, spec: kopf.Spec, meta: kopf.Meta, **_: Any) -> Any:
    """Who claims which audience on which destination, oldest first."""
    place = (
        meta.get("namespace"),
        (spec.get("destinationRef") or {}).get("name"),
        spec.get("audienceName"),
    )
    return {place: (meta.get("creationTimestamp") or "", meta.get("name"))}


@kopf.on.create(*ACTIVATIONS, registry=REGISTRY)
@kopf.on.update(*ACTIVATIONS, field="spec", registry=REGISTRY)
def spec_announced(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
    _announce("SpecChange", body, patch)


@kopf.on.create(*ACTIVATIONS, registry=REGISTRY)
@kopf.on.update(*ACTIVATIONS, field="spec", registry=REGISTRY)
def spec_changed(body: kopf.Body, patch: kopf.Patch, old: Any, **indexes: Any) -> None:
    """Run on a new spec; a renamed or moved audience drops the old first."""
    if old and _placement(old) != _placement(body.get("spec") or {}):
        _remove_or_retry(body, indexes, reason="AudienceMoved", old=old)
    run_activation("SpecChange", body, patch, indexes)


@kopf.on.delete(*ACTIVATIONS, registry=REGISTRY)
def deleted(body: kopf.Body, spec: kopf.Spec, meta: kopf.Meta, **indexes: Any) -> None:
    """Remove the audience (deletionPolicy Remove) before the finalizer goes."""
    if meta.get("annotations", {}).get(SKIP_CLEANUP) == "true":
        kopf.info(body, reason="CleanupSkipped", message=f"{SKIP_CLEANUP} is true.")
    elif (spec.get("deletionPolicy") or "Remove") == "Remove":
        uid = meta.get("uid", id(body))
        _DELETING.add(uid)  # NB: no run starts from here on, not even a due one.
        with _RUNNING.setdefault(uid, threading.Lock()):  # a run in flight lands first
            _remove_or_retry(body, indexes, reason="CleanupPending")


def _announce(trigger: str, body: kopf.Body, patch: kopf.Patch) -> None:
    """Show phase ``Syncing`` for a run about to start (valid specs only)."""
    try:
        RedisAudienceActivationSpec.model_validate(dict(body.get("spec") or {}))
    except ValidationError:
        return  # NB: the run handler reports the invalid spec as Stalled.
    generation = body["metadata"].get("generation") or 0
    patch.status.update(
        statuses.syncing(dict(body.get("status") or {}), generation=generation, trigger=trigger)
    )


def _placement(spec: Mapping[str, Any]) -> tuple[Any, Any]:
    return spec.get("audienceName"), (spec.get("destinationRef") or {}).get("name")


def _remove_or_retry(
    body: kopf.Body, indexes: Any, *, reason: str, old: Mapping[str, Any] | None = None
) -> None:
    """Remove the audience of ``old`` (default: the spec), or retry later."""
    try:
        meta = ObjectMeta.model_validate(dict(body["metadata"]))
        spec = RedisAudienceActivationSpec.model_validate(dict(old or body.get("spec") or {}))
    except ValidationError:
        return  # NB: an invalid spec never ran, so it wrote nothing to remove.
    activation = RedisAudienceActivation(meta, spec)
    destination = _destination(activation, indexes["destination_index"])
    lookup = IndexedLookup(indexes["secret_index"], indexes["config_map_index"])
    report = remove_activation_audience(activation, destination, lookup) if destination else None
    if report is None or report.outcome != "Succeeded":
        why = (
            report.message if report else f"RedisDestination {spec.destination_ref.name!r} is gone"
        )
        message = (
            f"cannot remove audience {spec.audience_name!r} yet: {why}; retrying "
            f"(annotate {SKIP_CLEANUP}=true to skip)."
        )
        kopf.warn(body, reason=reason, message=message)
        raise kopf.TemporaryError(message, delay=10)
    removed = f"removed audience {spec.audience_name!r} from {report.removed} Sets."
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
        trigger = (status.get("lastRun") or {}).get("trigger", "Schedule")
        run_activation(trigger if marked == "Retry" else marked, body, patch, indexes, wait=False)
    elif spec.get("suspend"):
        _mark_suspended(status, patch, generation=generation, marked=marked is not None)
    elif due and status.get("phase") == "Failed" and status.get("lastRun"):
        patch.status.update(statuses.syncing(status, generation=generation, trigger="Retry"))
    elif due and spec.get("schedule"):
        patch.status.update(statuses.syncing(status, generation=generation, trigger="Schedule"))


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
    previous, generation = dict(body.get("status") or {}), body["metadata"].get("generation")
    activation = _parse_activation(body, patch, generation)
    if activation is None:
        return
    _refuse_conflict(activation, indexes["claim_index"], patch, body)
    destination = _ready_destination(activation, indexes["destination_index"], patch, body)

    lookup = IndexedLookup(indexes["secret_index"], indexes["config_map_index"])
    report = sync_activation(activation, destination, lookup, Overrides(trigger=trigger))
    status = statuses.finished(
        previous, report, generation=generation, next_sync_time=_next_sync(activation)
    )
    if report.outcome == "Failed":
        status["nextSyncTime"] = _retry_time(status)
    patch.status.update(status)
    if activation.spec.suspend:
        patch.status["phase"] = "Suspended"
    metrics.record(
        activation.meta.namespace, activation.meta.name, activation.spec.audience_name, report
    )
    counts = f"added {report.added}, removed {report.removed}, members {report.members}"
    if report.outcome == "Succeeded":
        kopf.info(body, reason="Synced", message=f"{report.mode} run {report.id}: {counts}.")
    else:
        kopf.warn(body, reason=report.outcome, message=report.message or report.outcome)


def _next_sync(activation: RedisAudienceActivation) -> str | None:
    """The next scheduled run; None without a schedule or when suspended."""
    schedule = activation.spec.schedule
    if schedule is None or activation.spec.suspend:
        return None
    moment = next_run(schedule, after=datetime.now(UTC))
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def _retry_time(status: Mapping[str, Any]) -> str:
    """When to retry after a failed run: capped backoff on failures in a row."""
    failures = 0
    for run in status.get("history") or []:
        if run.get("outcome") != "Failed":
            break
        failures += 1
    moment = datetime.now(UTC) + timedelta(seconds=retry_delay(max(failures, 1)))
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


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
) -> None:
    """The newer of two activations of one audience and destination stalls."""
    place = (
        activation.meta.namespace,
        activation.spec.destination_ref.name,
        activation.spec.audience_name,
    )
    claims = sorted(index.get(place, []))
    if not claims or claims[0][1] == activation.meta.name:
        return
    message = (
        f"audience {activation.spec.audience_name!r} on destination "
        f"{place[1]!r} is claimed by the older activation {claims[0][1]!r}."
    )
    patch.status.update(
        statuses.stalled(
            dict(body.get("status") or {}),
            reason="AudienceConflict",
            message=message,
            generation=activation.meta.generation or 0,
        )
    )
    kopf.warn(body, reason="AudienceConflict", message=message)
    raise kopf.TemporaryError(message, delay=30)


def _ready_destination(
    activation: RedisAudienceActivation, index: ObjectIndex, patch: kopf.Patch, body: kopf.Body
) -> RedisDestination:
    """The activation's destination when Ready; else Pending and a retry."""
    destination = _destination(activation, index)
    if destination is None or not _is_ready(index, activation):
        name = activation.spec.destination_ref.name
        message = f"RedisDestination {name!r} is missing or not ready; the sync waits for it."
        generation = body["metadata"].get("generation") or 0
        conditions = (body.get("status") or {}).get("conditions") or []
        for kind, value in (("Ready", "False"), ("Reconciling", "False")):
            conditions = statuses.set_condition(
                conditions, kind, value, "DestinationNotReady", message, generation
            )
        patch.status.update({"phase": "Pending", "conditions": conditions})
        raise kopf.TemporaryError(message, delay=10)
    return destination


def _destination(
    activation: RedisAudienceActivation, index: ObjectIndex
) -> RedisDestination | None:
    """The activation's RedisDestination from the index, or None."""
    found = list(index.get((activation.meta.namespace, activation.spec.destination_ref.name), []))
    if not found:
        return None
    try:
        meta = ObjectMeta.model_validate(found[-1]["metadata"])
        return RedisDestination(meta, RedisDestinationSpec.model_validate(found[-1]["spec"]))
    except ValidationError:
        return None


def _is_ready(index: ObjectIndex, activation: RedisAudienceActivation) -> bool:
    found = list(index.get((activation.meta.namespace, activation.spec.destination_ref.name), []))
    conditions = (found[-1].get("status") or {}).get("conditions") or [] if found else []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


@kopf.on.create(*DESTINATIONS, registry=REGISTRY)
@kopf.on.update(*DESTINATIONS, field="spec", registry=REGISTRY)
@kopf.on.resume(*DESTINATIONS, registry=REGISTRY)
def destination_changed(body: kopf.Body, patch: kopf.Patch, **indexes: Any) -> None:
    check_destination_now(body, patch, indexes)


@kopf.timer(*DESTINATIONS, interval=SCHEDULE_TICK_SECONDS, registry=REGISTRY)
def destination_tick(
    body: kopf.Body, status: kopf.Status, patch: kopf.Patch, **indexes: Any
) -> None:
    """Re-check when the last check is old or a referenced Secret changed."""
    checked = status.get("lastCheckedTime")
    stale = datetime.now(UTC) - timedelta(seconds=DESTINATION_RECHECK_SECONDS)
    digest = _secrets_digest(body, indexes["secret_index"])
    known = _SECRET_DIGESTS.get(body["metadata"].get("uid"))
    old = not checked or checked <= stale.isoformat(timespec="seconds").replace("+00:00", "Z")
    if old or (known is not None and known != digest):
        check_destination_now(body, patch, indexes)


def _secrets_digest(body: kopf.Body, index: ObjectIndex) -> str:
    """A digest of the Secrets the destination references (memory only)."""
    namespace = body["metadata"].get("namespace", "")
    names = sorted(_secret_names(body.get("spec") or {}))
    found = [list(index.get((namespace, name), [])) for name in names]
    text = json.dumps([names, [entry[-1] if entry else None for entry in found]], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def _secret_names(spec: Mapping[str, Any]) -> set[str]:
    """The names in every ``*SecretRef`` of a raw spec, at any depth."""
    names: set[str] = set()
    for key, value in spec.items():
        if isinstance(value, Mapping) and key.endswith("SecretRef") and value.get("name"):
            names.add(str(value["name"]))
        elif isinstance(value, Mapping):
            names |= _secret_names(value)
    return names


@kopf.on.delete(*DESTINATIONS, registry=REGISTRY)
def destination_deleted(body: kopf.Body, meta: kopf.Meta, **indexes: Any) -> None:
    """Keep a destination until no activation uses it, so each can clean up."""
    place = (meta.get("namespace"), meta.get("name"))
    users = sorted(
        name for key, claims in indexes["claim_index"].items()
        if tuple(key[:2]) == place for _, name in claims
    )  # fmt: skip
    if users:
        message = (
            f"RedisDestination {place[1]!r} is still used by {len(users)} "
            f"activation(s) ({', '.join(users[:5])}); it goes once they are deleted."
        )
        kopf.info(body, reason="DestinationInUse", message=message)
        raise kopf.TemporaryError(message, delay=5)


def check_destination_now(body: kopf.Body, patch: kopf.Patch, indexes: Any) -> None:
    """PING the destination (no writes); keep ``Ready`` and the version."""
    previous, generation = body.get("status") or {}, body["metadata"].get("generation") or 0
    _SECRET_DIGESTS[body["metadata"].get("uid")] = _secrets_digest(body, indexes["secret_index"])
    lookup = IndexedLookup(indexes["secret_index"], indexes["config_map_index"])
    try:
        spec = RedisDestinationSpec.model_validate(dict(body.get("spec") or {}))
        destination = RedisDestination(ObjectMeta.model_validate(dict(body["metadata"])), spec)
        version, permissions = check_destination(destination, lookup)
        ready, reason, message = "True", "Reachable", f"Redis {version} answered PING"
        if permissions.missing:
            ready, reason = "False", "MissingPermissions"
            message = f"the Redis user may not run: {', '.join(permissions.missing)}"
        elif permissions.unchecked:
            message += f"; permissions not checked: {permissions.unchecked}"
        message += "."
    except ValidationError as error:
        version, ready, reason = None, "False", "InvalidSpec"
        message = describe_validation_error(error, "spec")
    except (ManifestError, MembershipError) as error:
        version, ready, reason, message = None, "False", "Unreachable", str(error)
    patch.status.update(_destination_status(previous, generation, version, ready, reason, message))


def _destination_status(
    previous: Mapping[str, Any],
    generation: int,
    version: str | None,
    ready: str,
    reason: str,
    message: str,
) -> dict[str, Any]:
    conditions = statuses.set_condition(
        previous.get("conditions") or [], "Ready", ready, reason, message, generation
    )
    checked = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    status = {
        "conditions": conditions,
        "lastCheckedTime": checked,
        "observedGeneration": generation,
    }
    if version is not None:
        status["redisVersion"] = version
    return status
