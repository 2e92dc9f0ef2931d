"""The CRDs the chart installs: the project's, unchanged, and Kopf's peering.

Helm reads no file outside the chart, so the chart carries copies of crds/
(scripts/sync_chart_crds.py makes them). The guard is here: the CRDs the chart
renders must equal the generated ones in crds/, object for object, apart from
the `helm.sh/resource-policy` annotation that `crds.keep` adds.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from chart.rendering import ROOT, WATCHED, objects, of_kind, project_crds, render, script

KEEP = "helm.sh/resource-policy"
KOPF_CRDS = {
    "ClusterKopfPeering": ("clusterkopfpeerings.kopf.dev", "Cluster"),
    "KopfPeering": ("kopfpeerings.kopf.dev", "Namespaced"),
}


def chart_crds(values: dict[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    found = of_kind(objects(render(values)), "CustomResourceDefinition")
    return {crd["metadata"]["name"]: crd for crd in found}


def without_keep(crd: dict[str, Any]) -> dict[str, Any]:
    stripped = copy.deepcopy(crd)
    annotations = stripped["metadata"].get("annotations", {})
    annotations.pop(KEEP, None)
    if not annotations:
        stripped["metadata"].pop("annotations", None)
    return stripped


@pytest.mark.parametrize("keep", [True, False])
def test_chart_crds_equal_the_generated_crds(keep: bool) -> None:
    rendered = chart_crds({"crds": {"keep": keep}})

    assert {name: without_keep(crd) for name, crd in rendered.items()} == project_crds(), (
        "run: python scripts/sync_chart_crds.py"
    )


@pytest.mark.parametrize(("keep", "policy"), [(True, "keep"), (False, None)])
def test_crds_keep_marks_every_crd_for_helm_to_leave(keep: bool, policy: str | None) -> None:
    rendered = chart_crds({"crds": {"keep": keep}, "replicaCount": 2})

    assert len(rendered) == len(project_crds()) + 1
    for crd in rendered.values():
        assert crd["metadata"].get("annotations", {}).get(KEEP) == policy


@pytest.mark.parametrize("replicas", [1, 2])
def test_crds_install_off_renders_no_crd(replicas: int) -> None:
    values = {"crds": {"install": False, "keep": False}, "replicaCount": replicas}

    assert chart_crds(values) == {}


@pytest.mark.parametrize(
    ("values", "kopf_crds"),
    [
        ({}, []),
        ({"replicaCount": 2}, ["clusterkopfpeerings.kopf.dev"]),
        ({"replicaCount": 2, "watchNamespaces": WATCHED}, ["kopfpeerings.kopf.dev"]),
        ({"replicaCount": 2, "crds": {"kopfPeering": False}}, []),
    ],
    ids=["one-replica", "cluster-wide", "namespaced", "kopf-crds-off"],
)
def test_kopf_peering_crd_comes_only_with_peering(
    values: dict[str, Any], kopf_crds: list[str]
) -> None:
    rendered = chart_crds(values)

    assert sorted(set(rendered) - set(project_crds())) == kopf_crds


@pytest.mark.parametrize("kind", sorted(KOPF_CRDS))
def test_kopf_peering_crd_has_the_shape_kopf_expects(kind: str) -> None:
    name, scope = KOPF_CRDS[kind]
    values = {"replicaCount": 2, "watchNamespaces": WATCHED if scope == "Namespaced" else []}
    crd = chart_crds(values)[name]
    version = crd["spec"]["versions"]

    assert crd["spec"]["group"] == "kopf.dev"
    assert crd["spec"]["scope"] == scope
    assert crd["spec"]["names"]["kind"] == kind
    assert [(v["name"], v["served"], v["storage"]) for v in version] == [("v1", True, True)]
    status = version[0]["schema"]["openAPIV3Schema"]["properties"]["status"]
    assert status == {"type": "object", "x-kubernetes-preserve-unknown-fields": True}


@pytest.mark.parametrize("kind", sorted(KOPF_CRDS))
def test_peering_objects_fit_their_crd(kind: str) -> None:
    name, scope = KOPF_CRDS[kind]
    values = {"replicaCount": 2, "watchNamespaces": WATCHED if scope == "Namespaced" else []}
    found = objects(render(values))
    crd = chart_crds(values)[name]
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]

    peerings = of_kind(found, kind)

    assert peerings
    for peering in peerings:
        assert peering["apiVersion"] == f"{crd['spec']['group']}/v1"
        assert ("namespace" in peering["metadata"]) is (scope == "Namespaced")
        jsonschema.validate(peering, schema)


def test_sync_script_makes_the_chart_copies_equal_crds(tmp_path: Path) -> None:
    sync = script("sync_chart_crds")
    target = tmp_path / "files" / "crds"
    target.mkdir(parents=True)
    (target / "stale.audiences.dev.yaml").write_text("kind: Gone\n")
    source = ROOT / "crds"

    changes = sync.sync(source, target)

    assert "removed stale.audiences.dev.yaml" in changes
    assert sorted(p.name for p in target.iterdir()) == sorted(p.name for p in source.glob("*.yaml"))
    for copied in target.iterdir():
        assert copied.read_bytes() == (source / copied.name).read_bytes()
    assert sync.sync(source, target) == []
