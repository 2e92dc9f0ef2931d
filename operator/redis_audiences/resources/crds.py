"""CustomResourceDefinitions generated from the pydantic models.

The models are the single source of truth: their JSON schema is turned into a
Kubernetes structural schema here (references inlined, optional fields
unwrapped, titles and defaults dropped so that GitOps tools see no drift),
with the models' CEL rules kept as ``x-kubernetes-validations``. The output of
``redis-audiences crds`` is committed under ``crds/``; a test fails when the
two drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml
from pydantic import BaseModel

from redis_audiences.resources.models import (
    GROUP,
    VERSION,
    RedisAudienceActivationSpec,
    RedisDestinationSpec,
)
from redis_audiences.resources.status import (
    RedisAudienceActivationStatus,
    RedisDestinationStatus,
)

CATEGORY = "audiences"
_KEPT = {
    "type", "description", "properties", "required", "items", "enum", "pattern",
    "minLength", "maxLength", "minimum", "maximum", "minItems", "maxItems",
    "x-kubernetes-validations",
}  # fmt: skip
_READY = '.status.conditions[?(@.type=="Ready")].status'
_AGE = {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}


@dataclass(frozen=True)
class Kind:
    """One custom resource kind and how ``kubectl get`` shows it."""

    kind: str
    plural: str
    short_name: str
    spec: type[BaseModel]
    status: type[BaseModel]
    columns: tuple[dict[str, str], ...]
    description: str


KINDS = (
    Kind(
        kind="RedisDestination",
        plural="redisdestinations",
        short_name="rdst",
        spec=RedisDestinationSpec,
        status=RedisDestinationStatus,
        columns=(
            {"name": "Mode", "type": "string", "jsonPath": ".spec.mode"},
            {"name": "Ready", "type": "string", "jsonPath": _READY},
            {"name": "Version", "type": "string", "jsonPath": ".status.redisVersion"},
            _AGE,
        ),
        description="How to reach one Redis deployment that holds audience membership Sets.",
    ),
    Kind(
        kind="RedisAudienceActivation",
        plural="redisaudienceactivations",
        short_name="raa",
        spec=RedisAudienceActivationSpec,
        status=RedisAudienceActivationStatus,
        columns=(
            {"name": "Audience", "type": "string", "jsonPath": ".spec.audienceName"},
            {"name": "Mode", "type": "string", "jsonPath": ".status.lastRun.mode"},
            {"name": "Members", "type": "integer", "jsonPath": ".status.members"},
            {"name": "Ready", "type": "string", "jsonPath": _READY},
            {"name": "Last Sync", "type": "date", "jsonPath": ".status.lastSyncTime"},
            _AGE,
        ),
        description="One audience exported to one RedisDestination, on a schedule.",
    ),
)


def crd_manifests() -> list[dict[str, Any]]:
    """Every CRD of the project, as objects ready to dump as YAML."""
    return [custom_resource_definition(kind) for kind in KINDS]


def custom_resource_definition(kind: Kind) -> dict[str, Any]:
    """The CRD of one kind, with status subresource and printer columns."""
    schema = {
        "type": "object",
        "description": kind.description,
        "properties": {
            "apiVersion": {"type": "string", "description": "Versioned schema of this object."},
            "kind": {"type": "string", "description": "The kind of this object."},
            "metadata": {"type": "object"},
            "spec": structural_schema(kind.spec),
            "status": structural_schema(kind.status),
        },
        "required": ["spec"],
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{kind.plural}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": kind.kind,
                "listKind": f"{kind.kind}List",
                "plural": kind.plural,
                "singular": kind.kind.lower(),
                "shortNames": [kind.short_name],
                "categories": [CATEGORY],
            },
            "versions": [{
                "name": VERSION,
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "additionalPrinterColumns": list(kind.columns),
                "schema": {"openAPIV3Schema": schema},
            }],
        },
    }  # fmt: skip


def structural_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The model's JSON schema as a Kubernetes structural schema."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    return _convert(raw, raw.get("$defs", {}))


def _convert(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    node = _resolve(node, defs)
    converted = {key: value for key, value in node.items() if key in _KEPT}
    if "properties" in node:
        converted["properties"] = {
            name: _convert(child, defs) for name, child in node["properties"].items()
        }
        converted["type"] = "object"
    if "items" in node:
        converted["items"] = _convert(node["items"], defs)
    if "required" in converted and not converted["required"]:
        del converted["required"]
    return converted


def _resolve(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """Inline ``$ref`` and unwrap ``anyOf [X, null]``, keeping outer keys."""
    outer = {key: value for key, value in node.items() if key not in ("$ref", "anyOf")}
    if "$ref" in node:
        target = _resolve(defs[node["$ref"].rsplit("/", 1)[-1]], defs)
        return {**target, **outer}
    if "anyOf" in node:
        branches = [b for b in node["anyOf"] if b.get("type") != "null"]
        if len(branches) != 1:
            raise TypeError(f"cannot express {node['anyOf']!r} in a structural schema")
        return {**_resolve(branches[0], defs), **outer}
    return node


def crds_yaml() -> str:
    """Every CRD as one multi-document YAML text (``redis-audiences crds``)."""
    return "".join(crd_yaml(kind) for kind in KINDS)


def crd_yaml(kind: Kind) -> str:
    """One CRD as YAML, as committed in ``crds/<plural>.<group>.yaml``."""
    body = yaml.safe_dump(custom_resource_definition(kind), sort_keys=False, width=100)
    return f"{_HEADER}---\n{body}"


_HEADER = "# Generated by `redis-audiences crds` from the pydantic models; do not edit.\n"
