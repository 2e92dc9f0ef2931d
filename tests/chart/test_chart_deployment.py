"""The operator's Deployment as the chart renders it.

The container arguments are parsed by the operator's own command-line parser,
so the chart cannot pass a flag `redis-audiences run` does not know; the rest
checks what a cluster admin relies on: a hardened pod, a liveness probe on
Kopf's endpoint, `Recreate` for a single replica and peering for several.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from chart.rendering import (
    CASES,
    CHART,
    FULLNAME,
    WATCHED,
    Case,
    container,
    objects,
    of_kind,
    one,
    render,
    render_case,
)
from redis_audiences import __version__
from redis_audiences.cli import _parser


def run_arguments(values: dict[str, Any]) -> Any:
    """The Deployment's arguments as `redis-audiences` parses them."""
    operator = container(objects(render(values)))
    assert operator["command"] == ["redis-audiences"]
    return _parser().parse_args(operator["args"])


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_every_configuration_passes_arguments_the_operator_accepts(case: Case) -> None:
    operator = container(objects(render_case(case)))

    arguments = _parser().parse_args(operator["args"])

    assert arguments.command == "run"


@pytest.mark.parametrize(
    ("values", "namespaces", "all_namespaces"),
    [
        ({}, [], True),
        ({"watchNamespaces": WATCHED}, WATCHED, False),
        ({"watchNamespaces": ["marketing", "marketing"]}, ["marketing"], False),
    ],
    ids=["cluster-wide", "namespaced", "duplicates-dropped"],
)
def test_watch_scope_follows_watch_namespaces(
    values: dict[str, Any], namespaces: list[str], all_namespaces: bool
) -> None:
    arguments = run_arguments(values)

    assert arguments.namespaces == namespaces
    assert arguments.all_namespaces is all_namespaces


@pytest.mark.parametrize(
    ("values", "peering"),
    [
        ({}, None),
        ({"replicaCount": 1, "watchNamespaces": WATCHED}, None),
        ({"replicaCount": 2}, FULLNAME),
        ({"replicaCount": 3, "watchNamespaces": WATCHED}, FULLNAME),
    ],
    ids=["one-replica", "one-replica-namespaced", "two-replicas", "three-replicas-namespaced"],
)
def test_peering_is_passed_only_to_several_replicas(
    values: dict[str, Any], peering: str | None
) -> None:
    assert run_arguments(values).peering == peering


def test_liveness_probe_calls_the_endpoint_the_operator_serves() -> None:
    operator = container(objects(render({"livenessProbe": {"port": 8181}})))
    served = urlsplit(_parser().parse_args(operator["args"]).liveness)
    ports = {port["name"]: port["containerPort"] for port in operator["ports"]}

    probe = operator["livenessProbe"]["httpGet"]

    assert (served.hostname, served.port, served.path) == ("0.0.0.0", 8181, "/healthz")
    assert probe["path"] == served.path
    assert ports[probe["port"]] == served.port


@pytest.mark.parametrize(
    ("values", "metrics_port"),
    [({}, 9090), ({"metrics": {"port": 9100}}, 9100), ({"metrics": {"enabled": False}}, None)],
    ids=["default", "other-port", "disabled"],
)
def test_metrics_port_is_passed_only_when_metrics_are_on(
    values: dict[str, Any], metrics_port: int | None
) -> None:
    assert run_arguments(values).metrics_port == metrics_port


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_operator_runs_non_root_on_a_read_only_filesystem(case: Case) -> None:
    found = objects(render_case(case))
    pod = one(found, "Deployment")["spec"]["template"]["spec"]
    hardened = container(found)["securityContext"]

    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert hardened["readOnlyRootFilesystem"] is True
    assert hardened["allowPrivilegeEscalation"] is False
    assert hardened["capabilities"] == {"drop": ["ALL"]}
    assert container(found)["volumeMounts"] == [{"name": "tmp", "mountPath": "/tmp"}]
    assert pod["volumes"] == [{"name": "tmp", "emptyDir": {}}]


def test_operator_container_has_resource_requests_and_a_memory_limit() -> None:
    resources = container(objects(render()))["resources"]

    assert set(resources["requests"]) == {"cpu", "memory"}
    assert "memory" in resources["limits"]


@pytest.mark.parametrize(
    ("values", "strategy"),
    [
        ({}, "Recreate"),
        ({"replicaCount": 2}, "Recreate"),
        ({"replicaCount": 2, "strategy": {"type": "RollingUpdate"}}, "RollingUpdate"),
    ],
    ids=["one-replica", "two-replicas", "two-replicas-rolling"],
)
def test_updates_recreate_the_operator_unless_peering_allows_overlap(
    values: dict[str, Any], strategy: str
) -> None:
    deployment = one(objects(render(values)), "Deployment")

    assert deployment["spec"]["strategy"] == {"type": strategy}


def test_replicas_are_named_in_peering_after_their_pod() -> None:
    env = container(objects(render({"replicaCount": 2})))["env"]

    assert {"name": "POD_ID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}} in env


@pytest.mark.parametrize(
    ("values", "image"),
    [
        ({}, f"ghcr.io/redis-audiences/redis-audiences:{__version__}"),
        (
            {"image": {"repository": "registry.example.com/ra", "tag": "1.2.3"}},
            "registry.example.com/ra:1.2.3",
        ),
    ],
    ids=["default", "overridden"],
)
def test_image_defaults_to_the_charts_app_version(values: dict[str, Any], image: str) -> None:
    assert container(objects(render(values)))["image"] == image


def test_chart_app_version_is_the_operators_version() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())

    assert chart["appVersion"] == __version__


@pytest.mark.parametrize(
    ("values", "kind", "namespaces"),
    [
        ({"replicaCount": 2}, "ClusterKopfPeering", [None]),
        ({"replicaCount": 2, "watchNamespaces": WATCHED}, "KopfPeering", WATCHED),
    ],
    ids=["cluster-wide", "namespaced"],
)
def test_peering_objects_exist_where_kopf_looks_for_them(
    values: dict[str, Any], kind: str, namespaces: list[str | None]
) -> None:
    peerings = of_kind(objects(render(values)), kind)

    assert [p["metadata"]["name"] for p in peerings] == [FULLNAME] * len(namespaces)
    assert [p["metadata"].get("namespace") for p in peerings] == namespaces
    for peering in peerings:
        # Created after the release's CRDs, which an ordinary object is not.
        annotations = peering["metadata"]["annotations"]
        assert annotations["helm.sh/hook"] == "post-install,post-upgrade"


@pytest.mark.parametrize("values", [{}, {"watchNamespaces": WATCHED}], ids=["cluster", "ns"])
def test_single_replica_renders_no_peering_objects(values: dict[str, Any]) -> None:
    kinds = {item["kind"] for item in objects(render(values))}

    assert not kinds & {"KopfPeering", "ClusterKopfPeering"}
