"""The chart's values: documented, typed by a generated schema, and consistent.

values.schema.json is generated from values.yaml (scripts/
generate_chart_schema.py), so a value added without a `# --` comment, or a
schema edited by hand, fails here. Values that each make sense alone but
contradict each other stop the render with a message naming them.
"""

from __future__ import annotations

import json
import re
from typing import Any

import helm_python
import pytest
import yaml

from chart.rendering import CHART, render, script, walk_keys

generator = script("generate_chart_schema")


def committed_schema() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads((CHART / "values.schema.json").read_text())
    return schema


def test_committed_schema_is_what_the_generator_writes() -> None:
    wanted = generator.render((CHART / "values.yaml").read_text())

    assert (CHART / "values.schema.json").read_text() == wanted, (
        "run: python scripts/generate_chart_schema.py"
    )


def test_every_value_is_described_in_the_schema() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    schema = committed_schema()

    for path in walk_keys(values):
        node = schema
        for key in path:
            if "properties" not in node:
                break  # inside a free-form map such as resources
            node = node["properties"][key]
        else:
            assert node["description"].strip(), f"{'.'.join(path)} has no description"


@pytest.mark.parametrize(
    ("values", "complaint"),
    [
        ({"replicaCount": "two"}, "at '/replicaCount': got string, want integer"),
        ({"replicaCont": 2}, "additional properties 'replicaCont' not allowed"),
        ({"watchNamespaces": "marketing"}, "at '/watchNamespaces': got string, want array"),
        ({"watchNamespaces": [7]}, "at '/watchNamespaces/0': got number, want string"),
        ({"crds": {"instal": False}}, "additional properties 'instal' not allowed"),
        ({"metrics": {"port": "9090"}}, "at '/metrics/port': got string, want integer"),
        ({"peering": {"enabled": "yes"}}, "at '/peering/enabled': got string, want boolean"),
        ({"podAnnotations": ["a"]}, "at '/podAnnotations': got array, want object"),
    ],
    ids=[
        "replicas-text",
        "misspelt-key",
        "namespaces-text",
        "namespace-number",
        "misspelt-nested-key",
        "port-text",
        "flag-text",
        "annotations-list",
    ],
)
def test_schema_rejects_a_wrong_value(values: dict[str, Any], complaint: str) -> None:
    with helm_python.Chart.load(CHART) as chart:
        with pytest.raises(helm_python.HelmValuesError, match=complaint):
            chart.validate_schema(values)
        with pytest.raises(helm_python.HelmValuesError, match=complaint):
            render(values)


def test_schema_accepts_the_defaults_and_free_form_maps() -> None:
    values = {"resources": {"limits": {"ephemeral-storage": "1Gi"}}, "podLabels": {"a": "b"}}

    with helm_python.Chart.load(CHART) as chart:
        chart.validate_schema(values)


@pytest.mark.parametrize(
    ("values_yaml", "complaint"),
    [
        ("# -- Replicas.\nreplicaCount: 1\nimage:\n  # -- Tag.\n  tag: ''\n", "key image has"),
        ("# -- Replicas.\nreplicaCount: 1\n# -- Name.\n\nnameOverride: ''\n", "key nameOverride"),
        ("# -- (list of ints) Ports.\nports: []\n", "declares type '(list of ints)'"),
        ("# -- Nothing.\nempty:\n", "key empty has no default"),
    ],
    ids=["undocumented-map", "comment-not-attached", "unknown-type", "null-default"],
)
def test_generator_refuses_values_it_cannot_describe(values_yaml: str, complaint: str) -> None:
    with pytest.raises(generator.SchemaError, match=re.escape(complaint)):
        generator.generate(values_yaml)


def test_generator_takes_declared_types_and_multi_line_descriptions() -> None:
    values_yaml = (
        "# -- (list of string) Namespaces,\n# one per line.\nnamespaces: []\n"
        "# -- (object) Free-form.\nresources:\n  requests: {cpu: 1}\n"
    )

    properties = generator.generate(values_yaml)["properties"]

    assert properties["namespaces"] == {
        "description": "Namespaces, one per line.",
        "type": "array",
        "items": {"type": "string"},
    }
    assert properties["resources"] == {"description": "Free-form.", "type": "object"}


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            {"serviceMonitor": {"enabled": True}, "metrics": {"enabled": False}},
            "serviceMonitor.enabled is true but metrics.enabled is false",
        ),
        (
            {"replicaCount": 2, "peering": {"enabled": False}},
            "replicaCount is 2 but peering.enabled is false",
        ),
        ({"crds": {"install": False}}, "crds.keep is true but crds.install is false"),
        ({"strategy": {"type": "Rolling"}}, 'strategy.type "Rolling" is not a Deployment'),
        (
            {"strategy": {"type": "RollingUpdate"}},
            "strategy.type is RollingUpdate but the replicas do not use peering",
        ),
        ({"metrics": {"port": 8080}}, "metrics.port and livenessProbe.port are both 8080"),
        (
            {"serviceAccount": {"create": False}},
            "rbac.create is true but serviceAccount.create is false",
        ),
    ],
    ids=[
        "monitor-without-metrics",
        "replicas-without-peering",
        "keep-without-install",
        "unknown-strategy",
        "rolling-single-replica",
        "port-clash",
        "rbac-for-default-account",
    ],
)
def test_contradictory_values_fail_with_a_message(values: dict[str, Any], message: str) -> None:
    with pytest.raises(helm_python.HelmRenderError) as failure:
        render(values)

    assert message in str(failure.value)


@pytest.mark.parametrize(
    "values",
    [
        {"serviceMonitor": {"enabled": False}, "metrics": {"enabled": False}},
        {"replicaCount": 1, "peering": {"enabled": False}},
        {"crds": {"install": False, "keep": False}},
        {"metrics": {"enabled": False, "port": 8080}},
        {"rbac": {"create": False}, "serviceAccount": {"create": False}},
    ],
    ids=["no-metrics", "one-replica", "no-crds", "metrics-off", "no-rbac"],
)
def test_near_misses_of_the_contradictions_render(values: dict[str, Any]) -> None:
    assert render(values)
