"""The chart as an API server would see it: linted, and valid for Kubernetes.

No cluster runs here. Helm's strict lint stands in for `helm lint --strict`,
and kubernetes-validate checks every rendered object, in its strict mode (an
unknown field is an error), against the schemas of the oldest Kubernetes the
chart accepts (Chart.yaml `kubeVersion`) and the newest kubernetes-validate
ships. Objects of custom kinds have no schema there: the Kopf peering objects
are checked against the chart's own CRD, ServiceMonitors in
test_chart_monitoring.py, and any other kind fails.
"""

from __future__ import annotations

import re
from typing import Any

import helm_python
import kubernetes_validate
import pytest
import yaml

from chart.rendering import CASES, CHART, NAMESPACE, Case, objects, render_case

CHART_YAML = yaml.safe_load((CHART / "Chart.yaml").read_text())


def oldest_supported() -> str:
    """The floor of Chart.yaml's kubeVersion, e.g. '>=1.28.0-0' -> '1.28.0'."""
    floor = re.fullmatch(r">=(\d+\.\d+\.\d+)(-0)?", CHART_YAML["kubeVersion"])
    assert floor, CHART_YAML["kubeVersion"]
    return floor[1]


OLDEST = oldest_supported()
NEWEST = "1.37.0"
KUBERNETES_VERSIONS = [OLDEST, NEWEST]
CUSTOM_KINDS = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
    ("kopf.dev/v1", "KopfPeering"),
    ("kopf.dev/v1", "ClusterKopfPeering"),
}
WARNING = 2


def kubernetes_objects(case: Case, version: str) -> list[dict[str, Any]]:
    found = objects(render_case(case, kube_version=version))
    return [o for o in found if (o["apiVersion"], o["kind"]) not in CUSTOM_KINDS]


def test_validated_versions_are_ones_kubernetes_validate_ships() -> None:
    shipped = kubernetes_validate.utils.all_versions()

    assert {OLDEST, NEWEST} <= set(shipped)


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_chart_lints_strictly_without_warnings(case: Case, version: str) -> None:
    report = helm_python.lint(
        CHART, case.values, strict=True, namespace=NAMESPACE, kube_version=f"v{version}"
    )

    findings = [m for m in report["messages"] if m["severity"] >= WARNING]
    assert report["errors"] == [] and findings == []


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_every_object_is_valid_for_kubernetes(case: Case, version: str) -> None:
    found = kubernetes_objects(case, version)

    assert found
    for item in found:
        try:
            kubernetes_validate.validate(item, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            name = f"{item['kind']}/{item['metadata']['name']}"
            pytest.fail(f"{name} is invalid for Kubernetes {version}: {error.message}")


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_namespaced_objects_name_their_namespace(case: Case) -> None:
    cluster_scoped = {"ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition"}
    cluster_scoped |= {"ClusterKopfPeering"}

    for item in objects(render_case(case)):
        has_namespace = "namespace" in item["metadata"]
        assert has_namespace is (item["kind"] not in cluster_scoped), item["kind"]
