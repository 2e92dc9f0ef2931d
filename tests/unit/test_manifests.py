"""Reading ``kubectl apply`` manifests: kinds, Secrets, ConfigMaps, errors."""

from __future__ import annotations

import base64
import textwrap
from pathlib import Path

import pytest

from redis_audiences.resources import (
    ManifestError,
    ManifestSet,
    SecretKeyRef,
    load_manifests,
)

DESTINATION = """
apiVersion: audiences.dev/v1alpha1
kind: RedisDestination
metadata:
  name: local-redis
spec:
  url: redis://127.0.0.1:6379
"""

ACTIVATION = """
apiVersion: audiences.dev/v1alpha1
kind: RedisAudienceActivation
metadata:
  name: vip
spec:
  destinationRef:
    name: local-redis
  audienceName: vip
  source:
    inline:
      keys: [user:1, user:2]
"""


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def write(folder: Path, *documents: str, name: str = "manifests.yaml") -> Path:
    """Write ``documents`` as one multi-document YAML file."""
    text = "\n---\n".join(textwrap.dedent(d).strip("\n") for d in documents) + "\n"
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def load(folder: Path, *documents: str) -> ManifestSet:
    return load_manifests([write(folder, *documents)])


def load_error(folder: Path, *documents: str) -> str:
    """The one-line ``ManifestError`` that loading ``documents`` raises."""
    with pytest.raises(ManifestError) as caught:
        load(folder, *documents)
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_every_kind_of_a_multi_document_file_is_read(tmp_path: Path) -> None:
    secret = f"""
    apiVersion: v1
    kind: Secret
    metadata: {{name: warehouse}}
    data:
      url: {b64("sqlite:///warehouse.db")}
    """
    config_map = """
    apiVersion: v1
    kind: ConfigMap
    metadata: {name: members}
    data:
      list: |
        user:1
        user:2
    """

    found = load(tmp_path, secret, config_map, DESTINATION, ACTIVATION)

    assert found.secret_value("default", SecretKeyRef(name="warehouse", key="url")) == (
        "sqlite:///warehouse.db"
    )
    assert found.config_map_value("default", "members", "list") == "user:1\nuser:2\n"
    assert list(found.destinations) == [("default", "local-redis")]
    assert [a.qualified_name for a in found.activations] == ["default/vip"]
    assert found.destination_for(found.activations[0]).spec.url == "redis://127.0.0.1:6379"


def test_secret_string_data_wins_over_data_on_the_same_key(tmp_path: Path) -> None:
    secret = f"""
    apiVersion: v1
    kind: Secret
    metadata: {{name: redis}}
    data:
      url: {b64("redis://old:6379")}
      user: {b64("reader")}
    stringData:
      url: redis://new:6379
      password: pa55
    """

    found = load(tmp_path, secret)

    assert found.secrets[("default", "redis")] == {
        "url": "redis://new:6379",
        "user": "reader",
        "password": "pa55",
    }


def test_objects_without_a_namespace_land_in_default(tmp_path: Path) -> None:
    found = load(tmp_path, DESTINATION, ACTIVATION)

    assert found.activations[0].meta.namespace == "default"
    assert ("default", "local-redis") in found.destinations


def test_objects_keep_their_namespace(tmp_path: Path) -> None:
    in_marketing = ACTIVATION.replace("name: vip\n", "name: vip\n  namespace: marketing\n", 1)

    found = load(tmp_path, in_marketing)

    assert found.activations[0].qualified_name == "marketing/vip"


@pytest.mark.parametrize("kind", ["Secret", "ConfigMap"])
def test_lookups_do_not_cross_namespaces(tmp_path: Path, kind: str) -> None:
    document = f"""
    apiVersion: v1
    kind: {kind}
    metadata: {{name: shared, namespace: team-a}}
    data: {{url: {b64("redis://redis:6379")}}}
    """
    found = load(tmp_path, document)

    with pytest.raises(ManifestError) as caught:
        if kind == "Secret":
            found.secret_value("team-b", SecretKeyRef(name="shared", key="url"))
        else:
            found.config_map_value("team-b", "shared", "url")

    message = str(caught.value)
    assert message.startswith(f"{kind} 'shared'")
    assert "key 'url'" in message
    assert "namespace 'team-b'" in message


@pytest.mark.parametrize("kind", ["Secret", "ConfigMap"])
def test_a_missing_key_names_the_object_namespace_and_known_keys(tmp_path: Path, kind: str) -> None:
    document = f"""
    apiVersion: v1
    kind: {kind}
    metadata: {{name: shared}}
    data: {{host: {b64("redis")}, port: {b64("6379")}}}
    """
    found = load(tmp_path, document)

    with pytest.raises(ManifestError) as caught:
        if kind == "Secret":
            found.secret_value("default", SecretKeyRef(name="shared", key="url"))
        else:
            found.config_map_value("default", "shared", "url")

    assert str(caught.value) == (
        f"{kind} 'shared' in namespace 'default' has no key 'url' (keys: host, port)."
    )


def test_a_missing_secret_value_is_never_shown_in_the_key_list(tmp_path: Path) -> None:
    secret = """
    apiVersion: v1
    kind: Secret
    metadata: {name: redis}
    stringData: {password: s3cr3t}
    """
    found = load(tmp_path, secret)

    with pytest.raises(ManifestError) as caught:
        found.secret_value("default", SecretKeyRef(name="redis", key="url"))

    assert "s3cr3t" not in str(caught.value)


def test_invalid_yaml_is_reported_with_its_line(tmp_path: Path) -> None:
    broken = """
    apiVersion: v1
    kind: ConfigMap
    data:
      list: user:1: user:2
    """

    message = load_error(tmp_path, broken)

    assert message.endswith(
        "manifests.yaml is not valid YAML at line 4: mapping values are not allowed here."
    )


def test_invalid_yaml_in_a_later_document_names_its_line_in_the_file(tmp_path: Path) -> None:
    message = load_error(tmp_path, DESTINATION, "kind: Secret: ConfigMap")

    # NB: DESTINATION takes lines 1-6 and the separator line 7.
    assert "is not valid YAML at line 8" in message


@pytest.mark.parametrize(
    ("api_version", "kind", "fragment"),
    [
        ("audiences.dev/v1alpha1", "RedisAudience", "kind 'RedisAudience' is not one of"),
        ("audiences.dev/v1alpha1", "redisdestination", "kind 'redisdestination' is not one"),
        ("audiences.dev/v1", "RedisDestination", "apiVersion 'audiences.dev/v1' is not served"),
        ("audiences.dev/v1beta1", "RedisDestination", "use audiences.dev/v1alpha1"),
    ],
    ids=["unknown-kind", "kind-wrong-case", "v1", "v1beta1"],
)
def test_unknown_kinds_and_versions_of_the_group_are_errors(
    tmp_path: Path, api_version: str, kind: str, fragment: str
) -> None:
    document = DESTINATION.replace("audiences.dev/v1alpha1", api_version).replace(
        "RedisDestination", kind
    )

    message = load_error(tmp_path, document)

    assert "(document 1)" in message
    assert fragment in message


@pytest.mark.parametrize(
    "document",
    [
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: marketing}\n",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: app}\nspec: {replicas: 2}\n",
        "apiVersion: example.com/v1\nkind: RedisDestination\nmetadata: {name: x}\nspec: 3\n",
        "apiVersion: v1\nkind: Service\nmetadata: {name: redis}\n",
    ],
    ids=["namespace", "deployment", "other-group", "service"],
)
def test_documents_of_other_kinds_are_ignored(tmp_path: Path, document: str) -> None:
    found = load(tmp_path, document, ACTIVATION)

    assert [a.meta.name for a in found.activations] == ["vip"]
    assert (found.destinations, found.secrets, found.config_maps) == ({}, {}, {})


def test_empty_documents_are_skipped(tmp_path: Path) -> None:
    found = load(tmp_path, "\n", "\n# only a comment\n", ACTIVATION, "\n")

    assert len(found.activations) == 1


@pytest.mark.parametrize("encoded", ["not base64!", "dXNlcjox=x", b64("x")[:-1]])
def test_invalid_base64_in_secret_data_is_an_error(tmp_path: Path, encoded: str) -> None:
    secret = f"""
    apiVersion: v1
    kind: Secret
    metadata: {{name: redis}}
    data:
      url: "{encoded}"
    """

    message = load_error(tmp_path, secret)

    assert "Secret data key 'url' is not valid base64" in message
    assert encoded not in message


def test_secret_data_that_is_not_utf8_is_an_error(tmp_path: Path) -> None:
    latin1 = base64.b64encode("café".encode("latin-1")).decode()
    secret = f"""
    apiVersion: v1
    kind: Secret
    metadata: {{name: redis}}
    data: {{url: {latin1}}}
    """

    assert "not valid base64 of UTF-8 text" in load_error(tmp_path, secret)


@pytest.mark.parametrize(
    ("field", "value"),
    [("data", "[a, b]"), ("data", "{port: 6379}"), ("stringData", "{port: 6379}")],
    ids=["data-list", "data-number", "string-data-number"],
)
def test_secret_data_must_map_keys_to_strings(tmp_path: Path, field: str, value: str) -> None:
    secret = f"""
    apiVersion: v1
    kind: Secret
    metadata: {{name: redis}}
    {field}: {value}
    """

    assert f"{field} must map keys to strings" in load_error(tmp_path, secret)


@pytest.mark.parametrize(
    "document",
    ["- apiVersion: v1\n  kind: ConfigMap\n", "just a string\n", "42\n"],
    ids=["list", "string", "number"],
)
def test_a_document_that_is_not_a_mapping_is_an_error(tmp_path: Path, document: str) -> None:
    message = load_error(tmp_path, DESTINATION, document)

    assert message.endswith("manifests.yaml (document 2) is not a mapping.")


def test_an_invalid_spec_names_the_file_document_kind_name_and_field(tmp_path: Path) -> None:
    invalid = ACTIVATION.replace("audienceName: vip", "audienceName: vip customers")

    message = load_error(tmp_path, DESTINATION, invalid)

    assert "manifests.yaml (document 2): RedisAudienceActivation 'vip': " in message
    assert "spec.audienceName: audienceName 'vip customers' contains a space" in message


def test_an_invalid_destination_url_is_never_echoed(tmp_path: Path) -> None:
    invalid = DESTINATION.replace("redis://127.0.0.1", "redis://admin:s3cr3t@127.0.0.1")

    message = load_error(tmp_path, invalid)

    assert "spec.url: url must not carry credentials" in message
    assert "s3cr3t" not in message


def test_metadata_without_a_name_is_an_error(tmp_path: Path) -> None:
    message = load_error(tmp_path, DESTINATION.replace("name: local-redis", "labels: {}"))

    assert "(document 1): metadata.name: Field required." in message


def test_a_missing_file_is_an_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match=r"cannot read .*absent\.yaml: No such file"):
        load_manifests([tmp_path / "absent.yaml"])


def test_objects_of_several_files_are_merged(tmp_path: Path) -> None:
    paths = [
        write(tmp_path, DESTINATION, name="a.yaml"),
        write(tmp_path, ACTIVATION, name="b.yaml"),
    ]

    found = load_manifests(paths)

    assert found.destination_for(found.activations[0]).meta.name == "local-redis"


def test_an_activation_whose_destination_is_absent_names_both(tmp_path: Path) -> None:
    found = load(tmp_path, ACTIVATION)

    with pytest.raises(ManifestError) as caught:
        found.destination_for(found.activations[0])

    assert str(caught.value) == (
        "RedisAudienceActivation 'vip' refers to RedisDestination 'local-redis', "
        "which is not in the manifests."
    )


def test_a_destination_in_another_namespace_does_not_count(tmp_path: Path) -> None:
    elsewhere = DESTINATION.replace("name: local-redis", "name: local-redis\n  namespace: ops")
    found = load(tmp_path, elsewhere, ACTIVATION)

    with pytest.raises(ManifestError, match="which is not in the manifests"):
        found.destination_for(found.activations[0])


def test_two_activations_claiming_one_audience_on_one_destination_are_refused(
    tmp_path: Path,
) -> None:
    spec = "destinationRef: {name: r}, audienceName: dup, source: {inline: {keys: [a]}}"
    path = tmp_path / "dup.yaml"
    path.write_text(
        "apiVersion: audiences.dev/v1alpha1\nkind: RedisAudienceActivation\n"
        f"metadata: {{name: one}}\nspec: {{{spec}}}\n---\n"
        "apiVersion: audiences.dev/v1alpha1\nkind: RedisAudienceActivation\n"
        f"metadata: {{name: two}}\nspec: {{{spec}}}\n"
    )

    with pytest.raises(ManifestError, match=r"default/two claims audience 'dup'.*default/one"):
        load_manifests([path])


def test_an_object_defined_twice_is_refused(tmp_path: Path) -> None:
    document = (
        "apiVersion: audiences.dev/v1alpha1\nkind: RedisDestination\n"
        "metadata: {name: r}\nspec: {url: 'redis://h:1'}\n"
    )
    path = tmp_path / "twice.yaml"
    path.write_text(document + "---\n" + document)

    with pytest.raises(ManifestError, match="RedisDestination default/r is defined twice"):
        load_manifests([path])


def test_a_manifest_that_is_not_utf8_is_one_line_error(tmp_path: Path) -> None:
    path = tmp_path / "binary.yaml"
    path.write_bytes(b"\xff\xfe bad\n")

    with pytest.raises(ManifestError, match="is not UTF-8 text"):
        load_manifests([path])
