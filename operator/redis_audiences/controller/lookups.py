"""Secrets and ConfigMaps read from the cluster, through Kopf's indexes.

Kopf keeps an in-memory index of the Secrets and ConfigMaps it watches, so a
run resolves its ``*SecretRef`` and ``configMap`` references without an API
call and without another Kubernetes client. Values never leave this module
except to build the run; they are never logged.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any

from redis_audiences.resources import ManifestError, ObjectLookup, SecretKeyRef

ObjectIndex = Mapping[Any, Any]


def index_data(body: Mapping[str, Any], *, encoded: bool) -> dict[tuple[str, str], dict[str, str]]:
    """The index entry of a Secret (``encoded``) or ConfigMap: its text data."""
    meta = body.get("metadata", {})
    data = dict(body.get("data") or {})
    if encoded:
        data = {key: _decoded(value) for key, value in data.items()}
        data.update(body.get("stringData") or {})
    return {(meta.get("namespace", ""), meta.get("name", "")): data}


def _decoded(value: str) -> str:
    try:
        return base64.b64decode(value, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return ""


class IndexedLookup(ObjectLookup):
    """Answers references from Kopf's Secret and ConfigMap indexes."""

    def __init__(self, secrets: ObjectIndex, config_maps: ObjectIndex) -> None:
        self.secrets = secrets
        self.config_maps = config_maps

    def secret_value(self, namespace: str, ref: SecretKeyRef) -> str:
        return _value(self.secrets, "Secret", namespace, ref.name, ref.key)

    def config_map_value(self, namespace: str, name: str, key: str) -> str:
        return _value(self.config_maps, "ConfigMap", namespace, name, key)


def _value(index: ObjectIndex, kind: str, namespace: str, name: str, key: str) -> str:
    found = list(index.get((namespace, name), []))
    if not found:
        raise ManifestError(f"{kind} {name!r} (key {key!r}) not found in namespace {namespace!r}.")
    data: Mapping[str, str] = found[-1]
    if key not in data:
        raise ManifestError(f"{kind} {name!r} in namespace {namespace!r} has no key {key!r}.")
    return data[key]
