"""The examples work as their READMEs say, against the CRDs and real servers.

Examples are what users copy first, so a manifest the API server would
refuse, or a README count that no longer matches a run, costs every new user
an afternoon. No API server runs here, so what it would enforce is checked
with libraries, as in ``unit/test_crds.py``: jsonschema for the committed
CRDs' OpenAPI schema (plus the unknown fields a strict ``kubectl apply``
refuses), cel-python for their ``x-kubernetes-validations`` rules, and
kubernetes-validate for Secrets and ConfigMaps. Argo CD Applications are
checked against the part of their schema the examples use.

Then every example that needs no Kubernetes runs through ``redis-audiences
sync``: dry runs into the test Redis (which must stay empty), the Jaffle
Shop audiences from a fresh PostgreSQL database, and the Cluster example on
the three-primary Cluster fixture.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import kubernetes_validate
import pytest
import redis
import sqlalchemy as sa
import yaml
from redis.cluster import RedisCluster
from sqlalchemy.pool import NullPool

from cel_rules import broken_rules
from integration.membership_helpers import holders, snapshot
from redis_audiences.cli import main
from redis_audiences.resources import load_manifests

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
JAFFLE = EXAMPLES / "03-jaffle-shop"
POSTGRES_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"
KUBERNETES_VERSION = "1.35.0"

Document = dict[str, Any]
CRDS: dict[str, Document] = {
    crd["spec"]["names"]["kind"]: crd
    for crd in (yaml.safe_load(path.read_text()) for path in sorted((ROOT / "crds").glob("*.yaml")))
}

# What each example's activations hold: {activation: members after a run}.
# The READMEs show the same numbers in their `kubectl get raa` output.
MEMBERS = {
    "01-inline": {"beta-testers": 3},
    "02-configmap": {"gold-tier": 4, "churn-risk": 3},
    "03-jaffle-shop": {"high-value-customers": 94, "lapsed-customers": 160},
    "04-redis-cluster": {"mobile-app-users": 8},
    "05-argocd": {"newsletter-subscribers": 4, "vip-customers": 2},
}


def documents() -> list[tuple[str, Document]]:
    """Every YAML document under examples/, with a readable id."""
    found = []
    for path in sorted(EXAMPLES.rglob("*.y*ml")):
        for number, document in enumerate(yaml.safe_load_all(path.read_text())):
            if document:
                found.append((f"{path.relative_to(EXAMPLES)}#{number}", document))
    return found


def documents_of(*kinds: str) -> list[Any]:
    return [pytest.param(doc, id=name) for name, doc in documents() if doc["kind"] in kinds]


def test_examples_hold_every_kind_a_user_applies() -> None:
    kinds = {document["kind"] for _, document in documents()}

    assert kinds == {"RedisDestination", "RedisAudienceActivation", "Secret", "ConfigMap",
                     "Application"}  # fmt: skip


def crd_problems(document: Document) -> list[str]:
    """What the API server would refuse in a custom resource, as messages."""
    crd = CRDS[document["kind"]]
    version = crd["spec"]["versions"][0]
    schema = version["schema"]["openAPIV3Schema"]
    problems = [
        f"{'.'.join(map(str, error.path))}: {error.message}"
        for error in jsonschema.Draft7Validator(schema).iter_errors(document)
    ]
    if document["apiVersion"] != f"{crd['spec']['group']}/{version['name']}":
        problems.append(f"apiVersion {document['apiVersion']!r} is not served")
    return problems + broken_rules(schema, document) + unknown_fields(schema, document)


def unknown_fields(schema: Document, value: Any, path: str = "") -> list[str]:
    """Fields the schema does not declare (strict kubectl refuses them)."""
    if isinstance(value, list) and "items" in schema:
        return [p for item in value for p in unknown_fields(schema["items"], item, f"{path}[]")]
    if not isinstance(value, dict) or "properties" not in schema:
        return []
    found = []
    for name, item in value.items():
        if name not in schema["properties"]:
            found.append(f"{path}.{name} is not a field of the schema")
        else:
            found += unknown_fields(schema["properties"][name], item, f"{path}.{name}")
    return found


@pytest.mark.parametrize("document", documents_of(*CRDS))
def test_every_example_resource_passes_the_crd_schema_and_rules(document: Document) -> None:
    assert crd_problems(document) == []


def example_object(name: str) -> Document:
    """The first example document named ``name``."""
    return next(doc for _, doc in documents() if doc["metadata"]["name"] == name)


def set_field(document: Document, path: str, value: Any) -> Document:
    """A copy of ``document`` with the dotted ``path`` set (None: removed)."""
    copy: Document = json.loads(json.dumps(document))
    *parents, last = path.split(".")
    node = copy
    for name in parents:
        node = node[name]
    if value is None:
        del node[last]
    else:
        node[last] = value
    return copy


@pytest.mark.parametrize(("name", "path", "value", "problem"), [
    ("beta-testers", "spec.audienceName", "beta testers", "does not match"),
    ("gold-tier", "spec.fieldMapping", None, "fieldMapping.redisKey is required"),
    ("gold-tier", "spec.source.inline", {"keys": ["a"]}, "exactly one of inline"),
    ("mobile-app-users", "spec.fieldMaping", {"redisKey": "k"}, "spec.fieldMaping is not a field"),
    ("profiles-cluster", "spec.mode", "cluster", "is not one of"),
    ("local-redis", "apiVersion", "audiences.dev/v1", "is not served"),
])  # fmt: skip
def test_schema_check_refuses_a_broken_copy_of_an_example(
    name: str, path: str, value: Any, problem: str
) -> None:
    broken = set_field(example_object(name), path, value)

    assert any(problem in message for message in crd_problems(broken)), crd_problems(broken)


@pytest.mark.parametrize("document", documents_of("Secret", "ConfigMap"))
def test_example_secrets_and_config_maps_are_valid_kubernetes_objects(document: Document) -> None:
    kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)


def test_example_secret_urls_name_no_password() -> None:
    for document in (doc for _, doc in documents() if doc["kind"] == "Secret"):
        for value in document.get("stringData", {}).values():
            assert urlsplit(value).password is None, document["metadata"]["name"]


# The fields of Argo CD's Application CRD that the examples use, as strict as
# the CRD (which prunes or refuses anything else).
STRING = {"type": "string", "minLength": 1}
SYNC_OPTIONS = ["CreateNamespace=true", "ServerSideApply=true", "SkipDryRunOnMissingResource=true"]
APPLICATION_SCHEMA: Document = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "argoproj.io/v1alpha1"},
        "kind": {"const": "Application"},
        "metadata": {"type": "object", "required": ["name", "namespace"]},
        "spec": {
            "type": "object",
            "additionalProperties": False,
            "required": ["project", "source", "destination"],
            "properties": {
                "project": STRING,
                "source": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["repoURL", "path", "targetRevision"],
                    "properties": {
                        "repoURL": {"type": "string", "pattern": "^https://"},
                        "path": STRING,
                        "targetRevision": STRING,
                        "helm": {
                            "type": "object",
                            "additionalProperties": False,
                            "properties": {
                                "releaseName": STRING,
                                "valuesObject": {"type": "object"},
                            },
                        },
                    },
                },
                "destination": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["server", "namespace"],
                    "properties": {"server": STRING, "namespace": STRING},
                },
                "syncPolicy": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "automated": {
                            "type": "object",
                            "additionalProperties": False,
                            "properties": {
                                "prune": {"type": "boolean"},
                                "selfHeal": {"type": "boolean"},
                            },
                        },
                        "syncOptions": {"type": "array", "items": {"enum": SYNC_OPTIONS}},
                        "retry": {
                            "type": "object",
                            "additionalProperties": False,
                            "properties": {
                                "limit": {"type": "integer"},
                                "backoff": {
                                    "type": "object",
                                    "additionalProperties": False,
                                    "properties": {
                                        "duration": STRING,
                                        "factor": {"type": "integer"},
                                        "maxDuration": STRING,
                                    },
                                },
                            },
                        },
                    },
                },
            },
        },
    },
}


@pytest.mark.parametrize("document", documents_of("Application"))
def test_example_applications_are_well_formed_and_point_at_folders_of_this_repository(
    document: Document,
) -> None:
    jsonschema.validate(document, APPLICATION_SCHEMA)
    source = document["spec"]["source"]
    folder = ROOT / source["path"]

    assert folder.is_dir(), source["path"]
    if "helm" in source:
        assert (folder / "Chart.yaml").is_file()
    else:
        assert list(folder.glob("*.yaml")), f"{source['path']} holds no manifests"


def test_application_schema_check_refuses_a_misspelt_field() -> None:
    [document, *_] = [doc for _, doc in documents() if doc["kind"] == "Application"]
    broken = set_field(document, "spec.syncPolicy.automated.selfHeel", True)

    with pytest.raises(jsonschema.ValidationError, match="selfHeel"):
        jsonschema.validate(broken, APPLICATION_SCHEMA)


def leaves(values: Document, prefix: str = "") -> set[str]:
    """Dotted paths of every leaf of a nested mapping."""
    paths = set()
    for name, value in values.items():
        if isinstance(value, dict) and value:
            paths |= leaves(value, f"{prefix}{name}.")
        else:
            paths.add(f"{prefix}{name}")
    return paths


def test_operator_application_sets_only_values_the_chart_declares() -> None:
    [chart_app] = [
        doc
        for _, doc in documents()
        if doc["kind"] == "Application" and "helm" in doc["spec"]["source"]
    ]
    chart = ROOT / chart_app["spec"]["source"]["path"]
    declared = leaves(yaml.safe_load((chart / "values.yaml").read_text()))

    assert leaves(chart_app["spec"]["source"]["helm"]["valuesObject"]) <= declared


@pytest.mark.parametrize(
    "path", sorted(EXAMPLES.rglob("*.yaml")), ids=lambda p: str(p.relative_to(EXAMPLES))
)
def test_every_example_file_loads_as_the_command_line_reads_it(path: Path) -> None:
    manifests = load_manifests([path])

    kinds = {doc["kind"] for doc in yaml.safe_load_all(path.read_text()) if doc}
    assert bool(manifests.activations) == ("RedisAudienceActivation" in kinds)


def readmes() -> list[Path]:
    return [*sorted(EXAMPLES.rglob("README.md")), ROOT / "argocd" / "README.md"]


@pytest.mark.parametrize("readme", readmes(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_repository_path_a_readme_names_exists(readme: Path) -> None:
    pattern = r"(?<![\w/.])(?:examples|argocd|charts|crds|tests)/(?:[\w.-]+/?)*"
    named = [path.rstrip(".") for path in re.findall(pattern, readme.read_text())]

    assert named, "the README names no file of the repository"
    assert [path for path in named if not (ROOT / path).exists()] == []


def test_examples_index_lists_every_example_folder() -> None:
    index = (EXAMPLES / "README.md").read_text()
    folders = sorted(path.name for path in EXAMPLES.iterdir() if path.is_dir())

    assert folders == sorted(MEMBERS)
    assert [folder for folder in folders if f"`{folder}/`" not in index] == []


def shown_tables(readme: str, command: str) -> list[list[list[str]]]:
    """Tables (header first) shown after ``$ kubectl get COMMAND`` lines."""
    tables = []
    lines = readme.splitlines()
    for number, line in enumerate(lines):
        if re.fullmatch(rf"\$ kubectl get {command}\b.*", line):
            table = []
            for row in lines[number + 1 :]:
                if row.startswith(("$", "```")):
                    break
                table.append(re.split(r"\s{2,}", row.strip()))
            tables.append(table)
    return tables


@pytest.mark.parametrize("example", sorted(MEMBERS))
def test_readme_shows_kubectl_get_raa_for_every_activation_of_the_example(example: str) -> None:
    readme = (EXAMPLES / example / "README.md").read_text()
    columns = CRDS["RedisAudienceActivation"]["spec"]["versions"][0]["additionalPrinterColumns"]
    activations = {
        doc["metadata"]["name"]: doc["spec"]["audienceName"]
        for name, doc in documents()
        if name.startswith(f"{example}/") and doc["kind"] == "RedisAudienceActivation"
    }
    tables = shown_tables(readme, "raa")

    assert tables, "the README shows no `kubectl get raa` output"
    for header, *rows in tables:
        assert header == ["NAME", *(column["name"].upper() for column in columns)]
        shown = {row[0]: (row[1], int(row[3])) for row in rows}
        expected = {
            name: (audience, MEMBERS[example][name]) for name, audience in activations.items()
        }
        assert shown == expected


def sync(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[Document]]:
    """Run ``redis-audiences sync ARGS --output json``: code and reports."""
    code = main(["sync", *args, "--output", "json"])
    captured = capsys.readouterr()
    assert captured.err == ""
    return code, json.loads(captured.out)


def files_of(example: str) -> list[str]:
    args = []
    for path in sorted((EXAMPLES / example).rglob("*.yaml")):
        kinds = {doc["kind"] for doc in yaml.safe_load_all(path.read_text()) if doc}
        if kinds & {"RedisDestination", "RedisAudienceActivation", "ConfigMap"}:
            args += ["-f", str(path)]
    return args


# (sourceRows, skipped) of each activation of the examples that run against
# a standalone Redis as they are; a first run adds every member.
STANDALONE = {
    "01-inline": {"beta-testers": (3, 0)},
    "02-configmap": {"gold-tier": (5, 1), "churn-risk": (3, 0)},
    "05-argocd": {"newsletter-subscribers": (4, 0), "vip-customers": (2, 0)},
}


@pytest.mark.parametrize("example", sorted(STANDALONE))
def test_examples_dry_run_plans_their_audiences_and_writes_nothing(
    example: str, r: redis.Redis, redis_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, reports = sync(capsys, *files_of(example), "--redis-url", redis_url, "--dry-run")

    assert code == 0, reports
    assert {(report["outcome"], report["dryRun"]) for report in reports} == {("Succeeded", True)}
    planned = {
        report["activation"]: (report["sourceRows"], report["added"], report["skipped"])
        for report in reports
    }
    assert planned == {
        f"default/{name}": (rows, MEMBERS[example][name], skipped)
        for name, (rows, skipped) in STANDALONE[example].items()
    }
    assert snapshot(r) == {}


@pytest.mark.parametrize(("example", "profile", "audiences"), [
    ("01-inline", "user:1001", {b"beta_testers"}),
    ("02-configmap", "customer:1002", {b"churn_risk", b"gold_tier"}),
    ("02-configmap", "customer:1005", set()),
    ("05-argocd", "customer:3002", {b"newsletter_subscribers", b"vip_customers"}),
])  # fmt: skip
def test_examples_write_the_memberships_their_readmes_show(
    example: str,
    profile: str,
    audiences: set[bytes],
    r: redis.Redis,
    redis_url: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, reports = sync(capsys, *files_of(example), "--redis-url", redis_url)

    assert code == 0, reports
    assert {report["activation"].split("/")[1]: report["members"] for report in reports} == (
        MEMBERS[example]
    )
    assert r.smembers(f"{profile}.dinmo_segments") == audiences


def with_field(path: Path, tmp_path: Path, kind: str, field: str, value: str) -> str:
    """Copy a manifest file, ``field`` of every ``kind`` document replaced."""
    changed = []
    for document in yaml.safe_load_all(path.read_text()):
        if document and document["kind"] == kind:
            section, key = field.split(".")
            document[section][key] = value
        changed.append(document)
    tmp_path.mkdir(parents=True, exist_ok=True)
    copy = tmp_path / path.name
    copy.write_text(yaml.safe_dump_all(changed, sort_keys=False))
    return str(copy)


@pytest.fixture
def jaffle_database() -> Iterator[str]:
    """A fresh PostgreSQL database for the warehouse, dropped afterwards."""
    name = f"raa_jaffle_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(POSTGRES_ADMIN_URL, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f"CREATE DATABASE {name}"))
    yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    with admin.connect() as connection:
        connection.execute(sa.text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
    admin.dispose()


def build_warehouse(*args: str) -> str:
    """Run the example's build_warehouse.py as its README does."""
    command = [sys.executable, str(JAFFLE / "build_warehouse.py"), *args]
    done = subprocess.run(command, capture_output=True, text=True, check=True, timeout=120)
    return done.stdout


def jaffle_manifests(name: str, tmp_path: Path, url: str) -> str:
    """A copy of the Jaffle Shop file ``name`` reading the warehouse ``url``."""
    return with_field(JAFFLE / name, tmp_path, "Secret", "stringData.url", url)


def test_jaffle_shop_postgresql_manifests_read_a_postgresql_url() -> None:
    [secret] = load_manifests([JAFFLE / "postgresql.yaml"]).secrets.values()

    assert urlsplit(secret["url"]).scheme == "postgresql"


@pytest.mark.postgres
def test_jaffle_shop_audiences_from_postgresql_move_as_the_demo_says(
    jaffle_database: str,
    tmp_path: Path,
    r: redis.Redis,
    redis_url: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    manifests = jaffle_manifests("postgresql.yaml", tmp_path, jaffle_database)

    counts = {}
    for as_of, mode in (("2019-08-07", "full"), ("2019-09-01", "delta")):
        printed = build_warehouse("--url", jaffle_database, "--as-of", as_of)
        assert "postgres@" not in printed  # NB: the URL is never printed.
        code, reports = sync(capsys, "-f", manifests, "--redis-url", redis_url, "--mode", mode)
        assert code == 0, reports
        counts[mode] = {
            report["audience"]: (report["sourceRows"], report["added"], report["removed"])
            for report in reports
        }

    # NB: the numbers of the table in examples/03-jaffle-shop/README.md.
    assert counts == {
        "full": {"high_value_customers": (89, 89, 0), "lapsed_customers": (2, 2, 0)},
        "delta": {"high_value_customers": (94, 10, 5), "lapsed_customers": (160, 159, 1)},
    }


@pytest.mark.postgres
def test_jaffle_shop_audiences_from_postgresql_match_the_sqlite_ones(
    jaffle_database: str,
    tmp_path: Path,
    r: redis.Redis,
    redis_url: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    audiences = ("high_value_customers", "lapsed_customers")
    build_warehouse("--url", jaffle_database, "--as-of", "2019-09-01")
    manifests = jaffle_manifests("postgresql.yaml", tmp_path / "pg", jaffle_database)
    assert sync(capsys, "-f", manifests, "--redis-url", redis_url, "--mode", "full")[0] == 0
    from_postgresql = {audience: holders(r, audience) for audience in audiences}
    r.flushall()

    build_warehouse("--db", str(tmp_path / "jaffle.db"), "--as-of", "2019-09-01")
    manifests = jaffle_manifests("manifests.yaml", tmp_path, f"sqlite:///{tmp_path}/jaffle.db")
    assert sync(capsys, "-f", manifests, "--redis-url", redis_url, "--mode", "full")[0] == 0
    from_sqlite = {audience: holders(r, audience) for audience in audiences}

    assert {audience: len(keys) for audience, keys in from_postgresql.items()} == {
        "high_value_customers": 94,
        "lapsed_customers": 160,
    }
    assert from_postgresql == from_sqlite


def cluster_manifests(tmp_path: Path, url: str) -> str:
    return with_field(EXAMPLES / "04-redis-cluster" / "manifests.yaml", tmp_path,
                      "RedisDestination", "spec.url", url)  # fmt: skip


def membership_keys_per_primary(rc: RedisCluster) -> list[int]:
    return [
        len(list(node.redis_connection.scan_iter(match="*.dinmo_segments")))
        for node in rc.get_primaries()
    ]


@pytest.mark.cluster
def test_cluster_example_spreads_its_audience_over_every_primary(
    tmp_path: Path, rc: RedisCluster, cluster_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    manifests = cluster_manifests(tmp_path, cluster_url)

    code, [planned] = sync(capsys, "-f", manifests, "--dry-run")
    assert (code, planned["outcome"], planned["sourceRows"]) == (0, "Succeeded", 8)
    assert snapshot(rc) == {}
    code, [report] = sync(capsys, "-f", manifests)

    assert (code, report["outcome"], report["members"]) == (0, "Succeeded", 8)
    assert holders(rc, "mobile_app_users") == {f"user:{n}".encode() for n in range(2001, 2009)}
    per_primary = membership_keys_per_primary(rc)
    assert len(per_primary) == 3 and 0 not in per_primary, per_primary
    assert rc.hget("audiences:{mobile_app_users}:meta", "members") == b"8"


@pytest.mark.cluster
def test_cluster_example_runs_as_written_with_a_seed_node_in_redis_url(
    rc: RedisCluster, cluster_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # NB: --redis-url replaces the address only; a Cluster stays a Cluster.
    manifests = str(EXAMPLES / "04-redis-cluster" / "manifests.yaml")

    code, [report] = sync(capsys, "-f", manifests, "--redis-url", cluster_url)

    assert (code, report["outcome"], report["members"]) == (0, "Succeeded", 8)
    assert holders(rc, "mobile_app_users") == {f"user:{n}".encode() for n in range(2001, 2009)}
    assert 0 not in membership_keys_per_primary(rc)
