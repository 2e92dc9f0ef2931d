"""Kopf handlers of destinations: whether each can take a sync, kept current.

A destination is checked (PING, INFO and ``ACL DRYRUN``: nothing is written)
on creation, on a spec change, on start-up, every
``DESTINATION_RECHECK_SECONDS``, and within a tick of a change to a Secret it
refers to (noticed through a digest of those Secrets, kept in memory only).
A deleted destination stays until no activation uses it, so that each can
remove its audience first.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import kopf
from pydantic import ValidationError

from redis_audiences.controller import statuses
from redis_audiences.controller.indexes import DESTINATIONS, REGISTRY
from redis_audiences.controller.lookups import IndexedLookup, ObjectIndex
from redis_audiences.membership import MembershipError
from redis_audiences.resources import (
    ManifestError,
    ObjectMeta,
    RedisDestination,
    RedisDestinationSpec,
    describe_validation_error,
)
from redis_audiences.syncing import check_destination

CHECK_TICK_SECONDS = 2.0
DESTINATION_RECHECK_SECONDS = 60.0
_SECRET_DIGESTS: dict[Any, str] = {}


@kopf.on.create(*DESTINATIONS, registry=REGISTRY)
@kopf.on.update(*DESTINATIONS, field="spec", registry=REGISTRY)
@kopf.on.resume(*DESTINATIONS, registry=REGISTRY)
def destination_changed(body: kopf.Body, patch: kopf.Patch, **indexes: Any) -> None:
    check_destination_now(body, patch, indexes)


@kopf.timer(*DESTINATIONS, interval=CHECK_TICK_SECONDS, registry=REGISTRY)
def destination_tick(
    body: kopf.Body, status: kopf.Status, patch: kopf.Patch, **indexes: Any
) -> None:
    """Re-check when the last check is old or a referenced Secret changed."""
    checked = status.get("lastCheckedTime")
    stale = datetime.now(UTC) - timedelta(seconds=DESTINATION_RECHECK_SECONDS)
    digest = _secrets_digest(body, indexes["secret_index"])
    known = _SECRET_DIGESTS.get(body["metadata"].get("uid"))
    old = not checked or checked <= statuses.rfc3339(stale)
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
        if tuple(key[:2]) == place for *_, name in claims
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
    checked = statuses.now_rfc3339()
    status = {
        "conditions": conditions,
        "lastCheckedTime": checked,
        "observedGeneration": generation,
    }
    if version is not None:
        status["redisVersion"] = version
    return status
