"""The Kopf registry of the operator and the in-memory indexes it keeps.

Kopf indexes the Secrets and ConfigMaps it watches, the destinations and who
claims which audience, so handlers answer references and conflicts without
an API call. Values of Secrets stay in memory and are never logged.
"""

from __future__ import annotations

from typing import Any

import kopf

from redis_audiences.controller.lookups import index_data
from redis_audiences.resources import GROUP, VERSION

REGISTRY = kopf.OperatorRegistry()
ACTIVATIONS = (GROUP, VERSION, "redisaudienceactivations")
DESTINATIONS = (GROUP, VERSION, "redisdestinations")


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
    """Who claims which audience on which destination, in the order they win.

    Sorted, the values put first the activation that already writes the
    audience (``status.appliedAudience``), then the oldest, then by name.
    """
    audience, destination = spec.get("audienceName"), (spec.get("destinationRef") or {}).get("name")
    applied = (body.get("status") or {}).get("appliedAudience") or {}
    writes = applied == {"audienceName": audience, "destinationName": destination}
    place = (meta.get("namespace"), destination, audience)
    return {place: (not writes, meta.get("creationTimestamp") or "", meta.get("name"))}
