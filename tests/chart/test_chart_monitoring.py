"""The metrics Service and the optional ServiceMonitor.

A ServiceMonitor is a Prometheus Operator object, so the chart renders it only
where the cluster serves that API (`.Capabilities.APIVersions`); these tests
render with and without it. They also follow the scrape path end to end:
ServiceMonitor -> Service -> pod port -> the port the operator serves on.
"""

from __future__ import annotations

from typing import Any

import pytest

from chart.rendering import (
    NAMESPACE,
    SERVICE_MONITOR_API,
    container,
    notes,
    objects,
    of_kind,
    one,
    render,
)
from redis_audiences.cli import _parser

MONITORED = {"serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}}}


@pytest.mark.parametrize(
    ("values", "api_versions", "monitors"),
    [
        ({}, (), 0),
        ({}, (SERVICE_MONITOR_API,), 0),
        (MONITORED, (), 0),
        (MONITORED, (SERVICE_MONITOR_API,), 1),
    ],
    ids=["off-no-api", "off-with-api", "on-no-api", "on-with-api"],
)
def test_service_monitor_needs_the_value_and_the_api(
    values: dict[str, Any], api_versions: tuple[str, ...], monitors: int
) -> None:
    found = objects(render(values, api_versions=api_versions))

    assert len(of_kind(found, "ServiceMonitor")) == monitors


@pytest.mark.parametrize(
    ("api_versions", "warned"),
    [((), True), ((SERVICE_MONITOR_API,), False)],
    ids=["no-api", "with-api"],
)
def test_notes_say_when_a_service_monitor_was_left_out(
    api_versions: tuple[str, ...], warned: bool
) -> None:
    text = notes(render(MONITORED, api_versions=api_versions))

    assert ("so none was created" in text) is warned


@pytest.mark.parametrize("port", [9090, 9100])
def test_prometheus_reaches_the_port_the_operator_serves(port: int) -> None:
    values = {**MONITORED, "metrics": {"port": port}}
    found = objects(render(values, api_versions=(SERVICE_MONITOR_API,)))
    monitor, service = one(found, "ServiceMonitor"), one(found, "Service")
    operator = container(found)
    pod_labels = one(found, "Deployment")["spec"]["template"]["metadata"]["labels"]

    endpoint = monitor["spec"]["endpoints"]
    service_port = {p["name"]: p for p in service["spec"]["ports"]}[endpoint[0]["port"]]
    pod_ports = {p["name"]: p["containerPort"] for p in operator["ports"]}

    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert [e["path"] for e in endpoint] == ["/metrics"]
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert pod_ports[service_port["targetPort"]] == port
    assert _parser().parse_args(operator["args"]).metrics_port == port


def test_service_monitor_carries_the_labels_prometheus_selects_on() -> None:
    found = objects(render(MONITORED, api_versions=(SERVICE_MONITOR_API,)))

    labels = one(found, "ServiceMonitor")["metadata"]["labels"]

    assert labels["release"] == "prometheus"


def test_metrics_off_renders_no_service_and_no_port() -> None:
    found = objects(render({"metrics": {"enabled": False}}))

    assert not of_kind(found, "Service")
    assert [p["name"] for p in container(found)["ports"]] == ["liveness"]
