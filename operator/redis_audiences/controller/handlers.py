"""Kopf handlers: when activations run and what their status says.

Each handler is a short paragraph delegating to ``syncing`` (the run itself)
and ``statuses`` (what to write). Runs happen on creation, on a spec change
(never on a status- or metadata-only change: the handler watches ``spec``),
on a new value of the ``audiences.dev/sync-requested-at`` annotation, and on
operator start-up for activations never synced. Kopf runs handlers of one
object one at a time, and the Redis lock keeps runs of one audience apart
across replicas.

Limitations: scheduled runs (``schedule``, ``suspend``), retry backoff after a
failed run, finalizers with ``deletionPolicy``, audience renames and conflicts,
and the ``Syncing`` phase during a run are not handled yet; the status and
schedule logic they need is in ``statuses`` and ``schedules``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import kopf
from pydantic import ValidationError

from redis_audiences.controller import metrics, statuses
from redis_audiences.controller.lookups import IndexedLookup, ObjectIndex, index_data
from redis_audiences.membership import MembershipError, probe
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
from redis_audiences.syncing import Overrides, redis_target, sync_activation

REGISTRY = kopf.OperatorRegistry()
ACTIVATIONS = (GROUP, VERSION, "redisaudienceactivations")
DESTINATIONS = (GROUP, VERSION, "redisdestinations")
SYNC_REQUEST = "audiences.dev/sync-requested-at"
DESTINATION_RECHECK_SECONDS = 60.0


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


@kopf.on.create(*ACTIVATIONS, registry=REGISTRY)
@kopf.on.update(*ACTIVATIONS, field="spec", registry=REGISTRY)
def spec_changed(body: kopf.Body, patch: kopf.Patch, **indexes: Any) -> None:
    run_activation("SpecChange", body, patch, indexes)


@kopf.on.resume(*ACTIVATIONS, registry=REGISTRY)
def resumed(body: kopf.Body, status: kopf.Status, patch: kopf.Patch, **indexes: Any) -> None:
    if not status.get("lastRun"):
        run_activation("Startup", body, patch, indexes)


@kopf.on.field(*ACTIVATIONS, field=("metadata", "annotations", SYNC_REQUEST), registry=REGISTRY)
def sync_requested(
    body: kopf.Body, new: Any, patch: kopf.Patch, status: kopf.Status, **indexes: Any
) -> None:
    if new and new != status.get("lastHandledSyncRequest"):
        run_activation("Manual", body, patch, indexes)
        patch.status["lastHandledSyncRequest"] = new


def run_activation(trigger: str, body: kopf.Body, patch: kopf.Patch, indexes: Any) -> None:
    """Validate, run one sync and write its status and Event."""
    previous, generation = dict(body.get("status") or {}), body["metadata"].get("generation")
    activation = _parse_activation(body, patch, generation)
    if activation is None:
        return
    destination = _ready_destination(activation, indexes["destination_index"], patch, body)
    if destination is None:
        return

    lookup = IndexedLookup(indexes["secret_index"], indexes["config_map_index"])
    report = sync_activation(activation, destination, lookup, Overrides(trigger=trigger))
    patch.status.update(
        statuses.finished(previous, report, generation=generation, next_sync_time=None)
    )
    metrics.record(
        activation.meta.namespace, activation.meta.name, activation.spec.audience_name, report
    )
    counts = f"added {report.added}, removed {report.removed}, members {report.members}"
    if report.outcome == "Succeeded":
        kopf.info(body, reason="Synced", message=f"{report.mode} run {report.id}: {counts}.")
    else:
        kopf.warn(body, reason=report.outcome, message=report.message or report.outcome)


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


def _ready_destination(
    activation: RedisAudienceActivation, index: ObjectIndex, patch: kopf.Patch, body: kopf.Body
) -> RedisDestination | None:
    key = (activation.meta.namespace, activation.spec.destination_ref.name)
    found = list(index.get(key, []))
    ready = found and any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in (found[-1].get("status") or {}).get("conditions") or []
    )
    if not ready:
        message = f"RedisDestination {key[1]!r} is missing or not ready; the sync waits for it."
        patch.status.update(
            {
                "phase": "Pending",
                "conditions": statuses.set_condition(
                    (body.get("status") or {}).get("conditions") or [],
                    "Ready",
                    "False",
                    "DestinationNotReady",
                    message,
                    body["metadata"].get("generation") or 0,
                ),
            }
        )
        raise kopf.TemporaryError(message, delay=30)
    destination = found[-1]
    meta = ObjectMeta.model_validate(destination["metadata"])
    return RedisDestination(meta, RedisDestinationSpec.model_validate(destination["spec"]))


@kopf.on.create(*DESTINATIONS, registry=REGISTRY)
@kopf.on.update(*DESTINATIONS, field="spec", registry=REGISTRY)
@kopf.on.resume(*DESTINATIONS, registry=REGISTRY)
@kopf.timer(*DESTINATIONS, interval=DESTINATION_RECHECK_SECONDS, registry=REGISTRY)
def check_destination(body: kopf.Body, patch: kopf.Patch, **indexes: Any) -> None:
    """PING the destination (no writes); keep ``Ready`` and the version."""
    previous, generation = body.get("status") or {}, body["metadata"].get("generation") or 0
    lookup = IndexedLookup(indexes["secret_index"], indexes["config_map_index"])
    try:
        spec = RedisDestinationSpec.model_validate(dict(body.get("spec") or {}))
        destination = RedisDestination(ObjectMeta.model_validate(dict(body["metadata"])), spec)
        version = probe(redis_target(destination, lookup))
        ready, reason, message = "True", "Reachable", f"Redis {version} answered PING."
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
