"""What `helm install` prints: where the operator runs and what to create next.

The commands in NOTES.txt must work as printed, so they name a namespace the
operator actually serves, and the manifests they embed must be valid
RedisDestination and RedisAudienceActivation objects.
"""

from __future__ import annotations

import re
from typing import Any

import jsonschema
import pytest
import yaml

from chart.rendering import WATCHED, notes, project_crds, render

HEREDOC = re.compile(r"apply -f - <<EOF\n(?P<body>.*?)\n\s*EOF", re.DOTALL)


@pytest.mark.parametrize(
    ("values", "scope", "command"),
    [
        ({}, "It serves every namespace.", "kubectl get audiences --all-namespaces"),
        (
            {"watchNamespaces": WATCHED},
            "It serves namespaces marketing, growth only.",
            "kubectl get audiences -n marketing",
        ),
    ],
    ids=["cluster-wide", "namespaced"],
)
def test_notes_say_what_is_served_and_how_to_watch_it(
    values: dict[str, Any], scope: str, command: str
) -> None:
    text = notes(render(values))

    assert scope in text
    assert command in text


def test_namespaced_notes_only_name_watched_namespaces() -> None:
    text = notes(render({"watchNamespaces": WATCHED}))

    assert set(re.findall(r"kubectl -n (\S+)", text)) == {"marketing"}


def test_notes_create_a_destination_then_an_activation_that_uses_it() -> None:
    manifests = [yaml.safe_load(match["body"]) for match in HEREDOC.finditer(notes(render()))]
    crds = {crd["spec"]["names"]["kind"]: crd for crd in project_crds().values()}

    assert [m["kind"] for m in manifests] == ["RedisDestination", "RedisAudienceActivation"]
    for manifest in manifests:
        crd = crds[manifest["kind"]]
        version = crd["spec"]["versions"][0]
        assert manifest["apiVersion"] == f"{crd['spec']['group']}/{version['name']}"
        jsonschema.validate(
            manifest["spec"], version["schema"]["openAPIV3Schema"]["properties"]["spec"]
        )
    destination, activation = manifests
    assert activation["spec"]["destinationRef"]["name"] == destination["metadata"]["name"]


@pytest.mark.parametrize(
    ("values", "line"),
    [
        ({"crds": {"install": False, "keep": False}}, "crds.install is false"),
        ({"replicaCount": 2}, "2 replicas share the Kopf peering object"),
    ],
    ids=["no-crds", "peering"],
)
def test_notes_mention_what_the_user_must_know(values: dict[str, Any], line: str) -> None:
    assert line in notes(render(values))
    assert line not in notes(render())
