"""Whole objects (metadata + spec) and reading them from YAML manifests.

The command line reads the same multi-document YAML that ``kubectl apply``
takes. Secrets (``data`` or ``stringData``) and ConfigMaps found beside the
custom resources answer their ``*SecretRef`` and ``configMap`` references, the
way the API server would in a cluster. Documents of other kinds (a Namespace,
a Deployment) are ignored.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import ErrorDetails

from redis_audiences.resources.models import (
    API_VERSION,
    GROUP,
    RedisAudienceActivationSpec,
    RedisDestinationSpec,
    SecretKeyRef,
)

SpecT = TypeVar("SpecT", bound=BaseModel)
_SECRET_HINTS = ("url", "password", "secret", "token")
"""Field names whose bad values are never echoed: they may hold credentials."""


class ManifestError(Exception):
    """A manifest is unreadable or invalid; the message is one line."""


class ObjectMeta(BaseModel):
    """The parts of ``metadata`` the operator uses."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    name: str = Field(min_length=1)
    namespace: str = "default"
    generation: int | None = None
    uid: str | None = None


@dataclass(frozen=True)
class RedisDestination:
    meta: ObjectMeta
    spec: RedisDestinationSpec


@dataclass(frozen=True)
class RedisAudienceActivation:
    meta: ObjectMeta
    spec: RedisAudienceActivationSpec

    @property
    def key(self) -> tuple[str, str]:
        return self.meta.namespace, self.meta.name

    @property
    def qualified_name(self) -> str:
        return f"{self.meta.namespace}/{self.meta.name}"


class ObjectLookup(Protocol):
    """Answers Secret and ConfigMap references, from files or from a cluster."""

    def secret_value(self, namespace: str, ref: SecretKeyRef) -> str: ...

    def config_map_value(self, namespace: str, name: str, key: str) -> str: ...


@dataclass
class ManifestSet(ObjectLookup):
    """Every object read from a set of manifest files."""

    destinations: dict[tuple[str, str], RedisDestination] = field(default_factory=dict)
    activations: list[RedisAudienceActivation] = field(default_factory=list)
    secrets: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)
    config_maps: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)

    def secret_value(self, namespace: str, ref: SecretKeyRef) -> str:
        data = self.secrets.get((namespace, ref.name))
        if data is None:
            raise ManifestError(
                f"Secret {ref.name!r} (key {ref.key!r}) not found in namespace {namespace!r}."
            )
        if ref.key not in data:
            raise ManifestError(
                f"Secret {ref.name!r} in namespace {namespace!r} has no key {ref.key!r} "
                f"(keys: {', '.join(sorted(data)) or 'none'})."
            )
        return data[ref.key]

    def config_map_value(self, namespace: str, name: str, key: str) -> str:
        data = self.config_maps.get((namespace, name))
        if data is None:
            raise ManifestError(
                f"ConfigMap {name!r} (key {key!r}) not found in namespace {namespace!r}."
            )
        if key not in data:
            raise ManifestError(
                f"ConfigMap {name!r} in namespace {namespace!r} has no key {key!r} "
                f"(keys: {', '.join(sorted(data)) or 'none'})."
            )
        return data[key]

    def destination_for(self, activation: RedisAudienceActivation) -> RedisDestination:
        name = activation.spec.destination_ref.name
        found = self.destinations.get((activation.meta.namespace, name))
        if found is None:
            raise ManifestError(
                f"RedisAudienceActivation {activation.meta.name!r} refers to "
                f"RedisDestination {name!r}, which is not in the manifests."
            )
        return found


def load_manifests(paths: Iterable[Path]) -> ManifestSet:
    """Read every document of every file into one ``ManifestSet``."""
    found = ManifestSet()
    for path in paths:
        for number, document in enumerate(_documents(path), start=1):
            _add(found, document, f"{path} (document {number})")
    return found


def _documents(path: Path) -> list[dict[str, Any]]:
    try:
        text = path.read_text(encoding="utf-8")
        documents = list(yaml.safe_load_all(text))
    except OSError as error:
        raise ManifestError(f"cannot read {path}: {error.strerror}.") from None
    except UnicodeDecodeError as error:
        raise ManifestError(f"{path} is not UTF-8 text (byte {error.start}).") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ManifestError(
            f"{path} is not valid YAML{where}: {getattr(error, 'problem', None) or error}."
        ) from None
    for number, document in enumerate(documents, start=1):
        if document is not None and not isinstance(document, dict):
            raise ManifestError(f"{path} (document {number}) is not a mapping.")
    return [d for d in documents if d]


def _add(found: ManifestSet, document: dict[str, Any], where: str) -> None:
    kind, api_version = document.get("kind"), str(document.get("apiVersion", ""))
    if api_version.startswith(f"{GROUP}/") and api_version != API_VERSION:
        raise ManifestError(
            f"{where}: apiVersion {api_version!r} is not served; use {API_VERSION}."
        )
    if api_version == API_VERSION and kind == "RedisDestination":
        meta, destination = _parse(document, RedisDestinationSpec, where)
        _refuse_twice(found.destinations, meta, "RedisDestination", where)
        found.destinations[(meta.namespace, meta.name)] = RedisDestination(meta, destination)
    elif api_version == API_VERSION and kind == "RedisAudienceActivation":
        meta, activation = _parse(document, RedisAudienceActivationSpec, where)
        _refuse_twice({a.key: a for a in found.activations}, meta, kind, where)
        _refuse_shared_audience(found.activations, meta, activation, where)
        found.activations.append(RedisAudienceActivation(meta, activation))
    elif api_version == API_VERSION:
        raise ManifestError(
            f"{where}: kind {kind!r} is not one of RedisDestination and RedisAudienceActivation."
        )
    elif api_version == "v1" and kind == "Secret":
        meta = _meta(document, where)
        found.secrets[(meta.namespace, meta.name)] = _secret_data(document, where)
    elif api_version == "v1" and kind == "ConfigMap":
        meta = _meta(document, where)
        found.config_maps[(meta.namespace, meta.name)] = _string_map(document, "data", where)


def _refuse_twice(known: dict[Any, Any], meta: ObjectMeta, kind: str, where: str) -> None:
    if (meta.namespace, meta.name) in known:
        raise ManifestError(f"{where}: {kind} {meta.namespace}/{meta.name} is defined twice.")


def _refuse_shared_audience(
    activations: list[RedisAudienceActivation],
    meta: ObjectMeta,
    spec: RedisAudienceActivationSpec,
    where: str,
) -> None:
    """Two activations of one audience on one destination undo each other."""
    for other in activations:
        same_place = (other.meta.namespace, other.spec.destination_ref) == (
            meta.namespace,
            spec.destination_ref,
        )
        if same_place and other.spec.audience_name == spec.audience_name:
            raise ManifestError(
                f"{where}: RedisAudienceActivation {meta.namespace}/{meta.name} claims audience "
                f"{spec.audience_name!r} on destination {spec.destination_ref.name!r}, which "
                f"{other.qualified_name} already claims (AudienceConflict)."
            )


def _parse(document: dict[str, Any], model: type[SpecT], where: str) -> tuple[ObjectMeta, SpecT]:
    meta = _meta(document, where)
    label = f"{where}: {document['kind']} {meta.name!r}"
    try:
        return meta, model.model_validate(document.get("spec") or {})
    except ValidationError as error:
        raise ManifestError(f"{label}: {describe_validation_error(error, 'spec')}") from None


def _meta(document: dict[str, Any], where: str) -> ObjectMeta:
    try:
        return ObjectMeta.model_validate(document.get("metadata") or {})
    except ValidationError as error:
        raise ManifestError(f"{where}: {describe_validation_error(error, 'metadata')}") from None


def _secret_data(document: dict[str, Any], where: str) -> dict[str, str]:
    values = {}
    for key, encoded in _string_map(document, "data", where).items():
        try:
            values[key] = base64.b64decode(encoded, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise ManifestError(
                f"{where}: Secret data key {key!r} is not valid base64 of UTF-8 text."
            ) from None
    values.update(_string_map(document, "stringData", where))
    return values


def _string_map(document: dict[str, Any], name: str, where: str) -> dict[str, str]:
    data = document.get(name) or {}
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise ManifestError(f"{where}: {name} must map keys to strings.")
    return {str(k): v for k, v in data.items()}


def describe_validation_error(error: ValidationError, root: str) -> str:
    """One line naming each bad field and value; never secrets or walls."""
    problems = []
    for item in error.errors():
        path = ".".join(str(part) for part in (root, *item["loc"]))
        message = _clipped(item["msg"].removeprefix("Value error, "), 300)
        if _echoable(item):
            message = f"{message} (got {_clipped(repr(item['input']), 100)})"
        problems.append(f"{path}: {message}")
    return _clipped("; ".join(problems), 2000) + "."


def _echoable(item: ErrorDetails) -> bool:
    """Whether the bad value may be shown: no credentials, nothing unbounded."""
    shown = item.get("input")
    if item["type"] in ("value_error", "missing", "extra_forbidden"):
        return False  # NB: our own messages already name the value; unknown fields may be secrets.
    if isinstance(shown, dict | list) or any(mark in str(shown) for mark in ("://", "@")):
        return False
    return not any(hint in str(part).lower() for part in item["loc"] for hint in _SECRET_HINTS)


def _clipped(text: str, limit: int) -> str:
    return text if len(text) <= limit else f"{text[: limit - 3]}..."
