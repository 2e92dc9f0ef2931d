"""What the chart lets the operator do in the cluster.

The rules are compared whole with the list of what the operator uses, so a
permission added or lost shows up as a failing test; wildcards, cluster-wide
grants of a namespaced install and rules without a comment saying why are
refused for every configuration.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from chart.rendering import (
    CASES,
    CHART,
    FULLNAME,
    NAMESPACE,
    WATCHED,
    Case,
    objects,
    of_kind,
    one,
    render,
    render_case,
)

READ = ["get", "list", "watch"]
OPERATOR_RULES = [
    {
        "apiGroups": ["audiences.dev"],
        "resources": ["redisaudienceactivations", "redisdestinations"],
        "verbs": [*READ, "patch"],
    },
    {
        "apiGroups": ["audiences.dev"],
        "resources": ["redisaudienceactivations/status", "redisdestinations/status"],
        "verbs": ["get", "patch"],
    },
    {"apiGroups": [""], "resources": ["secrets"], "verbs": READ},
    {"apiGroups": [""], "resources": ["configmaps"], "verbs": READ},
    {"apiGroups": [""], "resources": ["events"], "verbs": ["create"]},
]
RBAC_KINDS = {"Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"}


def peering_rule(resource: str) -> dict[str, Any]:
    return {"apiGroups": ["kopf.dev"], "resources": [resource], "verbs": [*READ, "patch"]}


@pytest.mark.parametrize(
    ("values", "rules"),
    [
        ({}, OPERATOR_RULES),
        ({"replicaCount": 2}, [*OPERATOR_RULES, peering_rule("clusterkopfpeerings")]),
    ],
    ids=["one-replica", "peering"],
)
def test_cluster_wide_operator_gets_one_cluster_role(
    values: dict[str, Any], rules: list[dict[str, Any]]
) -> None:
    found = objects(render(values))
    binding = one(found, "ClusterRoleBinding")

    assert one(found, "ClusterRole")["rules"] == rules
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": FULLNAME,
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": FULLNAME, "namespace": NAMESPACE}
    ]
    assert not of_kind(found, "Role") and not of_kind(found, "RoleBinding")


@pytest.mark.parametrize(
    ("values", "rules"),
    [
        ({"watchNamespaces": WATCHED}, OPERATOR_RULES),
        (
            {"watchNamespaces": WATCHED, "replicaCount": 2},
            [*OPERATOR_RULES, peering_rule("kopfpeerings")],
        ),
    ],
    ids=["one-replica", "peering"],
)
def test_namespaced_operator_gets_a_role_in_each_watched_namespace(
    values: dict[str, Any], rules: list[dict[str, Any]]
) -> None:
    found = objects(render(values))
    roles = of_kind(found, "Role")
    bindings = of_kind(found, "RoleBinding")

    assert [role["metadata"]["namespace"] for role in roles] == WATCHED
    assert all(role["rules"] == rules for role in roles)
    assert [binding["metadata"]["namespace"] for binding in bindings] == WATCHED
    for binding in bindings:
        assert binding["roleRef"]["kind"] == "Role"
        assert binding["roleRef"]["name"] == FULLNAME
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": FULLNAME, "namespace": NAMESPACE}
        ]


@pytest.mark.parametrize("replicas", [1, 2])
def test_namespaced_rbac_grants_nothing_cluster_wide(replicas: int) -> None:
    found = objects(render({"watchNamespaces": WATCHED, "replicaCount": replicas}))

    kinds = {item["kind"] for item in found}

    assert not kinds & {"ClusterRole", "ClusterRoleBinding"}


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_no_rule_uses_a_wildcard(case: Case) -> None:
    roles = [item for item in objects(render_case(case)) if item["kind"] in RBAC_KINDS]

    for role in roles:
        for rule in role.get("rules", []):
            for field in ("apiGroups", "resources", "verbs"):
                assert "*" not in rule[field], f"{role['kind']} rule {rule} uses '*'"


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_every_rule_says_why_it_is_needed(case: Case) -> None:
    text = render_case(case)[f"{CHART.name}/templates/rbac.yaml"]
    lines = [line.strip() for line in text.splitlines() if line.strip()]

    for number, line in enumerate(lines):
        if re.match(r"- apiGroups:", line):
            assert lines[number - 1].startswith("#"), f"no comment above {line!r}"


def test_no_rbac_is_rendered_when_rbac_create_is_off() -> None:
    values = {"rbac": {"create": False}, "watchNamespaces": WATCHED}

    kinds = {item["kind"] for item in objects(render(values))}

    assert not kinds & RBAC_KINDS


@pytest.mark.parametrize(
    ("values", "account", "created"),
    [
        ({}, FULLNAME, True),
        ({"serviceAccount": {"name": "audiences-operator"}}, "audiences-operator", True),
        ({"serviceAccount": {"create": False, "name": "existing"}}, "existing", False),
    ],
    ids=["default", "named", "existing"],
)
def test_bindings_and_pods_use_the_same_service_account(
    values: dict[str, Any], account: str, created: bool
) -> None:
    found = objects(render(values))
    pod = one(found, "Deployment")["spec"]["template"]["spec"]

    assert pod["serviceAccountName"] == account
    assert one(found, "ClusterRoleBinding")["subjects"][0]["name"] == account
    assert [sa["metadata"]["name"] for sa in of_kind(found, "ServiceAccount")] == (
        [account] if created else []
    )
