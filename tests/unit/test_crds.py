"""The CRDs: generated from the models, committed, and as strict as the models.

No API server runs here, so what it would enforce is checked with libraries:
kubernetes-validate for the CRD objects themselves, jsonschema for the
OpenAPI schema, cel-python for the ``x-kubernetes-validations`` rules and
jsonpath-ng for the printer columns.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from jsonpath_ng.ext import parse as jsonpath

from cel_rules import broken_rules
from redis_audiences.cli import main
from redis_audiences.resources.crds import KINDS, crd_manifests, crd_yaml, crds_yaml
from redis_audiences.resources.models import GROUP
from redis_audiences.resources.status import RedisAudienceActivationStatus

ROOT = Path(__file__).resolve().parents[2]
CRDS = {crd["spec"]["names"]["kind"]: crd for crd in crd_manifests()}
KUBERNETES_VERSIONS = ["1.35.0", "1.37.0"]


def schema_of(kind: str) -> dict[str, Any]:
    schema: dict[str, Any] = CRDS[kind]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


def walk(node: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    yield path, node
    for name, child in node.get("properties", {}).items():
        yield from walk(child, f"{path}.{name}")
    if "items" in node:
        yield from walk(node["items"], f"{path}[]")


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.kind)
def test_committed_crds_match_the_models(kind: Any) -> None:
    committed = ROOT / "crds" / f"{kind.plural}.{GROUP}.yaml"

    assert committed.read_text() == crd_yaml(kind), "run: redis-audiences crds, then commit"


def test_crds_command_prints_every_crd(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["crds"]) == 0

    printed = [doc for doc in yaml.safe_load_all(capsys.readouterr().out) if doc]
    assert printed == crd_manifests()
    assert capsys.readouterr().err == ""
    assert crds_yaml().count("kind: CustomResourceDefinition") == 2


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("kind", sorted(CRDS))
def test_crds_are_valid_custom_resource_definitions(kind: str, version: str) -> None:
    kubernetes_validate.validate(CRDS[kind], version, strict=True)


@pytest.mark.parametrize("kind", sorted(CRDS))
def test_every_schema_field_is_described_and_has_no_default(kind: str) -> None:
    for path, node in walk(schema_of(kind)):
        assert "default" not in node, path
        if path.count(".") >= 2 and not path.endswith("[]"):
            assert node.get("description"), f"{path} has no description"


@pytest.mark.parametrize(("kind", "short", "columns"), [
    ("RedisAudienceActivation", "raa",
     ["Audience", "Mode", "Members", "Ready", "Last Sync", "Age"]),
    ("RedisDestination", "rdst", ["Mode", "Ready", "Version", "Age"]),
])  # fmt: skip
def test_crds_declare_names_category_status_and_columns(
    kind: str, short: str, columns: list[str]
) -> None:
    spec = CRDS[kind]["spec"]
    version = spec["versions"][0]

    assert spec["names"]["shortNames"] == [short]
    assert spec["names"]["categories"] == ["audiences"]
    assert version["subresources"] == {"status": {}}
    assert [c["name"] for c in version["additionalPrinterColumns"]] == columns


SYNCED = {
    "metadata": {"name": "vip", "creationTimestamp": "2026-12-01T00:00:00Z"},
    "spec": {"audienceName": "vip_customers"},
    "status": {
        "members": 93,
        "lastSyncTime": "2026-12-03T10:00:00Z",
        "lastRun": {"mode": "Full"},
        "conditions": [
            {"type": "Reconciling", "status": "False"},
            {"type": "Ready", "status": "True"},
        ],
    },
}


def test_activation_printer_columns_read_a_synced_object() -> None:
    columns = CRDS["RedisAudienceActivation"]["spec"]["versions"][0]["additionalPrinterColumns"]

    shown = {
        c["name"]: [m.value for m in jsonpath(c["jsonPath"].lstrip(".")).find(SYNCED)]
        for c in columns
    }

    assert shown == {
        "Audience": ["vip_customers"],
        "Mode": ["Full"],
        "Members": [93],
        "Ready": ["True"],
        "Last Sync": ["2026-12-03T10:00:00Z"],
        "Age": ["2026-12-01T00:00:00Z"],
    }


def load_example_specs() -> list[tuple[str, dict[str, Any]]]:
    specs = []
    for path in sorted((ROOT / "examples").rglob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            if document and document.get("kind") in CRDS:
                specs.append((document["kind"], document["spec"]))
    return specs


@pytest.mark.parametrize(("kind", "spec"), load_example_specs())
def test_example_manifests_pass_the_schema_and_rules(kind: str, spec: dict[str, Any]) -> None:
    spec_schema = schema_of(kind)["properties"]["spec"]

    jsonschema.validate(spec, spec_schema)
    assert broken_rules(spec_schema, spec) == []


ACTIVATION = {
    "destinationRef": {"name": "redis"},
    "audienceName": "vip",
    "source": {"inline": {"keys": ["a"]}},
}


@pytest.mark.parametrize(("change", "field"), [
    ({"audienceName": "vip customers"}, "audienceName"),
    ({"audienceName": "_vip"}, "audienceName"),
    ({"audienceName": "v" * 129}, "audienceName"),
    ({"syncMode": "full"}, "syncMode"),
    ({"safety": {"maxRemovalPercent": 120}}, "maxRemovalPercent"),
    ({"schedule": {"interval": "15x"}}, "interval"),
    ({"schedule": {"cron": "* * *"}}, "cron"),
    ({"onWrongType": "Ignore"}, "onWrongType"),
])  # fmt: skip
def test_schema_rejects_bad_activation_fields(change: dict[str, Any], field: str) -> None:
    spec_schema = schema_of("RedisAudienceActivation")["properties"]["spec"]

    with pytest.raises(jsonschema.ValidationError) as error:
        jsonschema.validate({**ACTIVATION, **change}, spec_schema)
    assert field in str(error.value.path) or field in error.value.message


@pytest.mark.parametrize(("kind", "spec", "message"), [
    ("RedisAudienceActivation", {**ACTIVATION, "source": {}}, "exactly one of inline"),
    ("RedisAudienceActivation",
     {**ACTIVATION, "source": {"inline": {"keys": []}, "configMap": {"name": "a", "key": "b"}}},
     "exactly one of inline"),
    ("RedisAudienceActivation", {**ACTIVATION, "schedule": {"cron": "* * * * *",
                                                            "interval": "1h"}},
     "exactly one of cron"),
    ("RedisAudienceActivation", {**ACTIVATION, "schedule": {"interval": "1h",
                                                            "timeZone": "Europe/Paris"}},
     "timeZone applies to cron only"),
    ("RedisAudienceActivation",
     {**ACTIVATION, "source": {"sql": {"connectionSecretRef": {"name": "a", "key": "b"},
                                       "query": "SELECT 1"}}},
     "fieldMapping.redisKey is required"),
    ("RedisAudienceActivation",
     {**ACTIVATION, "source": {"configMap": {"name": "a", "key": "b", "format": "csv"}}},
     "fieldMapping.redisKey is required"),
    ("RedisAudienceActivation",
     {**ACTIVATION, "source": {"configMap": {"name": "a", "key": "b"}},
      "fieldMapping": {"redisKey": "id"}},
     "no effect on a lines configMap"),
    ("RedisDestination", {}, "exactly one of url"),
    ("RedisDestination", {"url": "redis://a", "urlSecretRef": {"name": "a", "key": "b"}},
     "exactly one of url"),
    ("RedisDestination", {"mode": "Sentinel", "url": "redis://a"}, "exactly one of url"),
])  # fmt: skip
def test_cel_rules_reject_what_the_models_reject(
    kind: str, spec: dict[str, Any], message: str
) -> None:
    spec_schema = schema_of(kind)["properties"]["spec"]

    assert any(message in broken for broken in broken_rules(spec_schema, spec))


def test_status_schema_declares_every_field_the_operator_writes() -> None:
    status_schema = schema_of("RedisAudienceActivation")["properties"]["status"]
    declared = {path for path, _ in walk(status_schema)}

    for name in RedisAudienceActivationStatus.model_json_schema(by_alias=True)["properties"]:
        assert f".{name}" in declared
    for field in ("id", "trigger", "mode", "dryRun", "startedAt", "finishedAt",
                  "durationSeconds", "sourceRows", "added", "removed", "unchanged",
                  "skipped", "outcome", "message"):  # fmt: skip
        assert f".lastRun.{field}" in declared
        assert f".history[].{field}" in declared
