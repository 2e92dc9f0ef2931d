"""Rendering the Helm chart offline, the way `helm template` would.

There is no helm binary and no cluster here: helm-python-sdk renders through
Helm's own Go engine, so `fail`, the values schema, `.Files` and
`.Capabilities` behave as in a real install. The value sets below are the
configurations every chart test runs against.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import helm_python
import yaml
from helm_python import _native

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "redis-audiences"
RELEASE = "audiences"
NAMESPACE = "operators"
FULLNAME = f"{RELEASE}-redis-audiences"
SERVICE_MONITOR_API = "monitoring.coreos.com/v1/ServiceMonitor"
WATCHED = ["marketing", "growth"]


@dataclass(frozen=True)
class Case:
    """One configuration of the chart: values, and what the cluster serves."""

    id: str
    values: dict[str, Any] = field(default_factory=dict)
    api_versions: tuple[str, ...] = ()


CASES = [
    Case("defaults"),
    Case("namespaced", {"watchNamespaces": WATCHED}),
    Case("peering-cluster-wide", {"replicaCount": 3, "strategy": {"type": "RollingUpdate"}}),
    Case("peering-namespaced", {"replicaCount": 2, "watchNamespaces": WATCHED}),
    Case(
        "monitored",
        {"serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}}},
        (SERVICE_MONITOR_API,),
    ),
    Case(
        "bare",
        {
            "metrics": {"enabled": False},
            "crds": {"install": False, "keep": False},
            "rbac": {"create": False},
            "serviceAccount": {"create": False, "name": "audiences-operator"},
        },
    ),
    Case(
        "customised",
        {
            "image": {
                "repository": "registry.example.com/ra",
                "tag": "0.1.1",
                "pullPolicy": "Always",
            },
            "imagePullSecrets": [{"name": "registry"}],
            "fullnameOverride": "ra",
            "serviceAccount": {"annotations": {"iam.example.com/role": "audiences"}},
            "metrics": {"port": 9100, "service": {"annotations": {"scrape": "true"}}},
            "crds": {"keep": False},
            "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}},
            "podAnnotations": {"team": "growth"},
            "podLabels": {"tier": "operators"},
            "priorityClassName": "platform",
            "nodeSelector": {"kubernetes.io/os": "linux"},
            "tolerations": [{"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}],
            "affinity": {
                "nodeAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": {
                        "nodeSelectorTerms": [
                            {
                                "matchExpressions": [
                                    {"key": "pool", "operator": "In", "values": ["a"]}
                                ]
                            }
                        ]
                    }
                }
            },
        },
    ),
]


def render(
    values: dict[str, Any] | None = None,
    *,
    api_versions: Sequence[str] = (),
    kube_version: str | None = None,
) -> dict[str, str]:
    """Template path -> rendered text, NOTES.txt included."""
    options: dict[str, Any] = {"name": RELEASE, "namespace": NAMESPACE}
    if api_versions:
        options["api_versions"] = list(api_versions)
    if kube_version:
        options["kube_version"] = f"v{kube_version}"

    # NB: Chart.render of helm-python-sdk 0.2.2 does not pass api_versions or
    # kube_version on, though libhelm_c's render options accept both.
    with helm_python.Chart.load(CHART) as chart:
        rendered: dict[str, str] = json.loads(
            _native.call_string(
                "helm_render", chart._raw(), json.dumps(values), json.dumps(options)
            )
        )
    return rendered


def project_crds() -> dict[str, dict[str, Any]]:
    """The CRDs generated into the project's crds/, by name."""
    found = [
        document
        for path in sorted((ROOT / "crds").glob("*.yaml"))
        for document in yaml.safe_load_all(path.read_text())
        if document
    ]
    return {crd["metadata"]["name"]: crd for crd in found}


def render_case(case: Case, *, kube_version: str | None = None) -> dict[str, str]:
    return render(case.values, api_versions=case.api_versions, kube_version=kube_version)


def objects(rendered: dict[str, str]) -> list[dict[str, Any]]:
    """Every Kubernetes object in a render, NOTES.txt left out."""
    return [
        document
        for path, text in sorted(rendered.items())
        if not path.endswith("NOTES.txt")
        for document in yaml.safe_load_all(text)
        if document
    ]


def notes(rendered: dict[str, str]) -> str:
    return rendered[f"{CHART.name}/templates/NOTES.txt"]


def of_kind(found: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [item for item in found if item["kind"] == kind]


def one(found: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    matching = of_kind(found, kind)
    assert len(matching) == 1, f"expected one {kind}, found {len(matching)}"
    return matching[0]


def container(found: list[dict[str, Any]]) -> dict[str, Any]:
    """The operator container of the Deployment."""
    containers: list[dict[str, Any]] = one(found, "Deployment")["spec"]["template"]["spec"][
        "containers"
    ]
    assert [c["name"] for c in containers] == ["operator"]
    return containers[0]


def walk_keys(node: dict[str, Any], path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    for key, value in node.items():
        yield (*path, key)
        if isinstance(value, dict):
            yield from walk_keys(value, (*path, key))


def script(name: str) -> ModuleType:
    """A module of scripts/ (not a package), imported from its file."""
    path = ROOT / "scripts" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader, path
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
