"""Resource models reject bad specs with one line naming the field and value.

Also the key layout: glob escaping for SCAN and suffixes that would make an
operator-owned key look like a membership Set.
"""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from redis_audiences.membership import AudienceKeys, KeyLayoutError
from redis_audiences.membership.keys import escape_glob
from redis_audiences.resources import (
    RedisAudienceActivationSpec,
    RedisDestinationSpec,
    describe_validation_error,
)

INLINE = {"inline": {"keys": ["user:1"]}}
SQL = {"sql": {"connectionSecretRef": {"name": "warehouse", "key": "url"}, "query": "SELECT 1"}}
ACTIVATION: dict[str, Any] = {
    "destinationRef": {"name": "local-redis"},
    "audienceName": "vip",
    "source": INLINE,
}


def config_map(fmt: str | None) -> dict[str, Any]:
    """A configMap source of the given format (None: the default, lines)."""
    source: dict[str, Any] = {"name": "members", "key": "list"}
    if fmt is not None:
        source["format"] = fmt
    return {"configMap": source}


def activation(**changes: Any) -> dict[str, Any]:
    """The minimal valid activation spec with top-level fields replaced."""
    return {**ACTIVATION, **changes}


def error_of(model: type[BaseModel], spec: dict[str, Any]) -> str:
    """The one-line message ``describe_validation_error`` gives for ``spec``."""
    with pytest.raises(ValidationError) as caught:
        model.model_validate(spec)
    return describe_validation_error(caught.value, "spec")


def assert_one_line_naming(message: str, path: str, *fragments: str) -> None:
    assert "\n" not in message
    assert message.startswith(f"{path}: "), message
    assert message.endswith(".")
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"


@pytest.mark.parametrize(
    ("name", "fragments"),
    [
        pytest.param("vip customers", ["'vip customers'", "contains a space"], id="space"),
        pytest.param("a" * 129, [repr("a" * 129), "129 characters", "1 to 128"], id="too-long"),
        pytest.param("", ["''", "0 characters", "1 to 128"], id="empty"),
        pytest.param(
            "_vip", ["'_vip'", "start with an ASCII letter or digit"], id="leading-underscore"
        ),
        pytest.param("-vip", ["'-vip'", "start with an ASCII letter or digit"], id="leading-dash"),
        pytest.param("vip*", ["'vip*'", "contains '*'"], id="star"),
        pytest.param("vip/eu", ["'vip/eu'", "contains '/'"], id="slash"),
        pytest.param("zoë", ["'zoë'", "contains 'ë'"], id="non-ascii"),
        pytest.param(
            "émile", ["'émile'", "start with an ASCII letter or digit"], id="non-ascii-first"
        ),
        pytest.param("a b*c", ["'a b*c'", "'*'", "a space"], id="several-bad-characters"),
    ],
)
def test_invalid_audience_names_are_named_with_the_reason(name: str, fragments: list[str]) -> None:
    message = error_of(RedisAudienceActivationSpec, activation(audienceName=name))

    assert_one_line_naming(message, "spec.audienceName", *fragments)


@pytest.mark.parametrize(
    ("changes", "path", "fragments"),
    [
        pytest.param(
            {"source": {}}, "spec.source", ["exactly one of", "got none"], id="source-none"
        ),
        pytest.param(
            {"source": {**INLINE, **config_map("lines")}},
            "spec.source",
            ["exactly one of", "got inline, configMap"],
            id="source-two",
        ),
        pytest.param(
            {"source": {"http": {"url": "https://example.com/keys"}}},
            "spec.source",
            ["source.http is planned"],
            id="source-http-planned",
        ),
        pytest.param(
            {"source": SQL}, "spec", ["fieldMapping.redisKey", "sql source"], id="sql-no-mapping"
        ),
        pytest.param(
            {"source": config_map("csv")},
            "spec",
            ["fieldMapping.redisKey", "csv configMap"],
            id="csv-no-mapping",
        ),
        pytest.param(
            {"source": config_map("ndjson")},
            "spec",
            ["fieldMapping.redisKey", "ndjson configMap"],
            id="ndjson-no-mapping",
        ),
        pytest.param(
            {"source": config_map("tsv")},
            "spec.source.configMap.format",
            ["'lines', 'csv' or 'ndjson'", "(got 'tsv')"],
            id="configmap-unknown-format",
        ),
        pytest.param(
            {"schedule": {"cron": "0 * * *"}},
            "spec.schedule.cron",
            ["'0 * * *'", "five-field"],
            id="cron-four-fields",
        ),
        pytest.param(
            {"schedule": {"cron": "every tuesday"}},
            "spec.schedule.cron",
            ["'every tuesday'", "five-field"],
            id="cron-nonsense",
        ),
        pytest.param(
            {"schedule": {"cron": "0 0 * * * *"}},
            "spec.schedule.cron",
            ["'0 0 * * * *'", "five-field"],
            id="cron-six-fields",
        ),
        pytest.param(
            {"schedule": {"cron": "0 0 30 2 *"}},
            "spec.schedule.cron",
            ["'0 0 30 2 *'", "never comes"],
            id="cron-february-30",
        ),
        pytest.param(
            {"schedule": {"interval": "999999999h"}},
            "spec.schedule.interval",
            ["'999999999h'", "longer than a year"],
            id="interval-over-a-year",
        ),
        pytest.param(
            {"schedule": {"interval": "15x"}},
            "spec.schedule.interval",
            ["(got '15x')"],
            id="interval-unit",
        ),
        pytest.param(
            {"schedule": {"interval": "0m"}},
            "spec.schedule.interval",
            ["(got '0m')"],
            id="interval-zero",
        ),
        pytest.param(
            {"schedule": {"cron": "0 * * * *", "interval": "15m"}},
            "spec.schedule",
            ["exactly one of cron and interval"],
            id="schedule-both",
        ),
        pytest.param(
            {"schedule": {"timeZone": "Europe/Paris"}},
            "spec.schedule",
            ["exactly one of cron and interval"],
            id="schedule-neither",
        ),
        pytest.param(
            {"schedule": {"cron": "0 * * * *", "timeZone": "Mars/Olympus"}},
            "spec.schedule.timeZone",
            ["'Mars/Olympus'", "IANA time zone"],
            id="time-zone",
        ),
        pytest.param(
            {"safety": {"maxRemovalPercent": -1}},
            "spec.safety.maxRemovalPercent",
            ["greater than or equal to 0", "(got -1)"],
            id="max-removal-negative",
        ),
        pytest.param(
            {"safety": {"maxRemovalPercent": 101}},
            "spec.safety.maxRemovalPercent",
            ["less than or equal to 100", "(got 101)"],
            id="max-removal-over-100",
        ),
        pytest.param(
            {"syncMode": "full"},
            "spec.syncMode",
            ["'Full' or 'Delta'", "(got 'full')"],
            id="sync-mode-wrong-case",
        ),
        pytest.param(
            {
                "source": {"configMap": {"name": "lists", "key": "vip.csv"}},
                "fieldMapping": {"redisKey": "key"},
            },
            "spec",
            ["no effect on a lines configMap", "csv or ndjson"],
            id="field-mapping-on-lines",
        ),
        pytest.param(
            {"schedule": {"interval": "1h", "timeZone": "Europe/Paris"}},
            "spec.schedule",
            ["'Europe/Paris' applies to cron only"],
            id="time-zone-with-interval",
        ),
        pytest.param(
            {"suspend": "yes"}, "spec.suspend", ["valid boolean"], id="suspend-not-a-boolean"
        ),
        pytest.param(
            {"onWrongType": "Ignore"},
            "spec.onWrongType",
            ["'Skip' or 'Fail'", "(got 'Ignore')"],
            id="on-wrong-type",
        ),
        pytest.param(
            {"audiencename": "vip"},
            "spec.audiencename",
            ["Extra inputs are not permitted"],
            id="unknown-field-typo",
        ),
        pytest.param(
            {"destinationRef": {}}, "spec.destinationRef.name", ["Field required"], id="no-dest"
        ),
    ],
)
def test_invalid_activation_specs_name_the_field_path_and_value(
    changes: dict[str, Any], path: str, fragments: list[str]
) -> None:
    message = error_of(RedisAudienceActivationSpec, activation(**changes))

    assert_one_line_naming(message, path, *fragments)


@pytest.mark.parametrize(
    ("spec", "path", "fragments"),
    [
        pytest.param(
            {"url": "redis://admin:hunter2@redis:6379"},
            "spec.url",
            ["must not carry credentials", "urlSecretRef"],
            id="url-with-user-and-password",
        ),
        pytest.param(
            {"url": "rediss://:hunter2@redis:6379"},
            "spec.url",
            ["must not carry credentials"],
            id="url-with-password-only",
        ),
        pytest.param(
            {"url": "redis://redis:6379/0?password=hunter2"},
            "spec.url",
            ["must not carry credentials"],
            id="url-with-password-in-query",
        ),
        pytest.param(
            {"url": "http://redis:6379"}, "spec.url", ["'^rediss?://'"], id="url-not-redis"
        ),
        pytest.param({}, "spec", ["exactly one of url and urlSecretRef", "got 0"], id="no-url"),
        pytest.param(
            {"url": "redis://redis:6379", "urlSecretRef": {"name": "redis", "key": "url"}},
            "spec",
            ["exactly one of url and urlSecretRef", "got 2"],
            id="url-and-secret-ref",
        ),
        pytest.param(
            {"mode": "Cluster"}, "spec", ["mode Cluster needs exactly one of url"], id="cluster"
        ),
        pytest.param(
            {"mode": "Sentinel"},
            "spec",
            ["mode Sentinel needs sentinel.masterName and sentinel.sentinels"],
            id="sentinel-without-block",
        ),
        pytest.param(
            {
                "mode": "Sentinel",
                "url": "redis://redis:6379",
                "sentinel": {"masterName": "main", "sentinels": ["s1:26379"]},
            },
            "spec",
            ["mode Sentinel takes no url"],
            id="sentinel-with-url",
        ),
        pytest.param(
            {"mode": "Sentinel", "sentinel": {"masterName": "main", "sentinels": ["s1"]}},
            "spec.sentinel.sentinels.0",
            ["(got 's1')"],
            id="sentinel-without-port",
        ),
        pytest.param(
            {"mode": "standalone", "url": "redis://redis:6379"},
            "spec.mode",
            ["(got 'standalone')"],
            id="mode-wrong-case",
        ),
        pytest.param(
            {"url": "redis://redis:6379", "metadataPrefix": "aud{iences:"},
            "spec.metadataPrefix",
            ["(got 'aud{iences:')"],
            id="metadata-prefix-brace",
        ),
        pytest.param(
            {"url": "redis://redis:6379", "membershipSuffix": ""},
            "spec.membershipSuffix",
            ["at least 1 character", "(got '')"],
            id="empty-suffix",
        ),
    ],
)
def test_invalid_destination_specs_name_the_field_path_and_value(
    spec: dict[str, Any], path: str, fragments: list[str]
) -> None:
    message = error_of(RedisDestinationSpec, spec)

    assert_one_line_naming(message, path, *fragments)


@pytest.mark.parametrize(
    "url",
    [
        "redis://admin:hunter2@redis:6379",
        "rediss://:hunter2@redis:6379",
        "http://admin:hunter2@redis:6379",
    ],
)
def test_destination_errors_never_echo_a_url(url: str) -> None:
    message = error_of(RedisDestinationSpec, {"url": url})

    assert "hunter2" not in message
    assert url not in message


@pytest.mark.parametrize(
    ("model", "spec", "path"),
    [
        pytest.param(
            RedisDestinationSpec,
            {"url": "redis://redis:6379", "passwordSecretRef": "s3cr3t"},
            "spec.passwordSecretRef",
            id="password-instead-of-a-ref",
        ),
        pytest.param(
            RedisDestinationSpec,
            {"url": "redis://redis:6379", "password": "s3cr3t"},
            "spec.password",
            id="unknown-password-field",
        ),
        pytest.param(
            RedisDestinationSpec,
            {
                "mode": "Sentinel",
                "sentinel": {
                    "masterName": "main",
                    "sentinels": ["s1:26379"],
                    "passwordSecretRef": "s3cr3t",
                },
            },
            "spec.sentinel.passwordSecretRef",
            id="sentinel-password-instead-of-a-ref",
        ),
        pytest.param(
            RedisAudienceActivationSpec,
            activation(
                source={"sql": {"connectionSecretRef": "postgresql://u:s3cr3t@db/x", "query": "q"}},
                fieldMapping={"redisKey": "k"},
            ),
            "spec.source.sql.connectionSecretRef",
            id="database-url-instead-of-a-ref",
        ),
        pytest.param(
            RedisAudienceActivationSpec,
            activation(
                source={"sql": {**SQL["sql"], "connection": "postgresql://u:s3cr3t@db/x"}},
                fieldMapping={"redisKey": "k"},
            ),
            "spec.source.sql.connection",
            id="database-url-in-an-unknown-field",
        ),
    ],
)
def test_errors_never_echo_values_that_may_be_credentials(
    model: type[BaseModel], spec: dict[str, Any], path: str
) -> None:
    message = error_of(model, spec)

    assert_one_line_naming(message, path)
    assert "s3cr3t" not in message


def test_an_over_long_inline_list_is_refused_without_echoing_its_keys() -> None:
    keys = [f"user:{number}" for number in range(10001)]

    message = error_of(RedisAudienceActivationSpec, activation(source={"inline": {"keys": keys}}))

    assert_one_line_naming(message, "spec.source.inline.keys", "at most 10000 items")
    assert "user:" not in message


def test_several_errors_are_joined_on_one_line() -> None:
    spec = activation(audienceName="vip customers", syncMode="full")

    message = error_of(RedisAudienceActivationSpec, spec)

    assert "\n" not in message
    assert "spec.audienceName: " in message
    assert "; spec.syncMode: " in message


@pytest.mark.parametrize(
    "name",
    [
        "a" * 128,
        "v",
        "7",
        "high_value_customers",
        "churn-risk",
        "segment.v2",
        "tenant:42:vip",
        "A_b-c.d:e",
        "0day",
    ],
    ids=[
        "128-chars",
        "one-letter",
        "one-digit",
        "underscore",
        "dash",
        "dot",
        "colon",
        "all",
        "digit-first",
    ],
)
def test_valid_audience_names_are_kept_as_they_are(name: str) -> None:
    spec = RedisAudienceActivationSpec.model_validate(activation(audienceName=name))

    assert spec.audience_name == name


@pytest.mark.parametrize(
    "source",
    [INLINE, config_map(None), config_map("lines")],
    ids=["inline", "configmap-default", "configmap-lines"],
)
def test_inline_and_lines_sources_need_no_field_mapping(source: dict[str, Any]) -> None:
    spec = RedisAudienceActivationSpec.model_validate(activation(source=source))

    assert spec.field_mapping is None


@pytest.mark.parametrize(
    "source",
    [SQL, config_map("csv"), config_map("ndjson")],
    ids=["sql", "csv", "ndjson"],
)
def test_keyed_sources_are_valid_with_a_field_mapping(source: dict[str, Any]) -> None:
    spec = RedisAudienceActivationSpec.model_validate(
        activation(source=source, fieldMapping={"redisKey": "redis_key"})
    )

    assert spec.field_mapping is not None
    assert spec.field_mapping.redis_key == "redis_key"


@pytest.mark.parametrize(
    ("schedule", "interval_seconds"),
    [
        ({"cron": "0 6 * * 1-5", "timeZone": "Europe/Paris"}, None),
        ({"cron": "*/15 * * * *"}, None),
        ({"interval": "30s"}, 30),
        ({"interval": "15m"}, 900),
        ({"interval": "1h"}, 3600),
    ],
    ids=["cron-paris", "cron-utc", "30s", "15m", "1h"],
)
def test_valid_schedules_are_accepted(
    schedule: dict[str, str], interval_seconds: int | None
) -> None:
    spec = RedisAudienceActivationSpec.model_validate(activation(schedule=schedule))

    assert spec.schedule is not None
    assert spec.schedule.interval_seconds == interval_seconds


def test_a_minimal_activation_leaves_every_default_to_the_run() -> None:
    spec = RedisAudienceActivationSpec.model_validate(ACTIVATION)

    assert spec.source.kind == "inline"
    assert (spec.sync_mode, spec.schedule, spec.safety, spec.dry_run) == (None, None, None, None)


@pytest.mark.parametrize(
    "spec",
    [
        {"url": "redis://redis:6379"},
        {"url": "rediss://redis.example.com:6380/2", "tls": {"insecureSkipVerify": True}},
        {"urlSecretRef": {"name": "redis", "key": "url"}},
        {"mode": "Cluster", "url": "redis://seed-0:6379"},
        {
            "mode": "Sentinel",
            "sentinel": {"masterName": "main", "sentinels": ["s1:26379", "s2:26379"]},
        },
        {"url": "redis://redis:6379", "membershipSuffix": ":segs", "metadataPrefix": "aud:"},
    ],
    ids=["url", "rediss-tls", "url-secret-ref", "cluster", "sentinel", "suffix-and-prefix"],
)
def test_valid_destinations_are_accepted(spec: dict[str, Any]) -> None:
    destination = RedisDestinationSpec.model_validate(spec)

    assert destination.effective_mode == spec.get("mode", "Standalone")


@pytest.mark.parametrize(
    ("text", "escaped"),
    [
        (b"*", b"\\*"),
        (b"?", b"\\?"),
        (b"[", b"\\["),
        (b"]", b"\\]"),
        (b"\\", b"\\\\"),
        (b".dinmo_segments", b".dinmo_segments"),
        (b"a*b?[c]\\d", b"a\\*b\\?\\[c\\]\\\\d"),
        ("zoë*".encode(), "zoë\\*".encode()),
        (b"", b""),
    ],
    ids=["star", "question", "open", "close", "backslash", "plain", "mixed", "utf8", "empty"],
)
def test_escape_glob_escapes_every_glob_character(text: bytes, escaped: bytes) -> None:
    assert escape_glob(text) == escaped


def test_scan_pattern_matches_the_suffix_literally() -> None:
    keys = AudienceKeys("vip", suffix=b".seg[1]*")

    assert keys.scan_pattern == b"*.seg\\[1\\]\\*"


@pytest.mark.parametrize("suffix", [":meta", "meta", "a", "ledger", ":lock", "k", ":source", "e"])
def test_a_suffix_that_ends_an_owned_key_raises_naming_the_suffix(suffix: str) -> None:
    with pytest.raises(KeyLayoutError) as caught:
        AudienceKeys("vip", suffix=suffix.encode())

    assert f"membershipSuffix {suffix!r}" in str(caught.value)
    assert "\n" not in str(caught.value)


def test_an_empty_suffix_raises() -> None:
    with pytest.raises(KeyLayoutError, match="membershipSuffix '' is empty"):
        AudienceKeys("vip", suffix=b"")


@pytest.mark.parametrize("suffix", [".dinmo_segments", ":segments", "_aud", ".meta.x", "metas"])
def test_a_suffix_that_ends_no_owned_key_is_accepted(suffix: str) -> None:
    keys = AudienceKeys("vip", suffix=suffix.encode())

    assert keys.member_key(b"user:1") == b"user:1" + suffix.encode()
    assert keys.profile_key(keys.member_key(b"user:1")) == b"user:1"


def test_owned_keys_share_the_audience_hash_tag() -> None:
    keys = AudienceKeys("vip", prefix=b"aud:")

    owned = [keys.meta, keys.ledger, keys.lock, keys.staging("r1")]

    assert owned == [
        b"aud:{vip}:meta",
        b"aud:{vip}:ledger",
        b"aud:{vip}:lock",
        b"aud:{vip}:run:r1:source",
    ]


@pytest.mark.parametrize(
    "extra",
    [{"auth": "hunter2"}, {"requirepass": "hunter2"}, {"sentinelz": ["user:hunter2@h:1"]}],
)
def test_unknown_destination_fields_never_echo_their_values(extra: dict[str, object]) -> None:
    with pytest.raises(ValidationError) as error:
        RedisDestinationSpec.model_validate({"url": "redis://h:1", **extra})

    message = describe_validation_error(error.value, "spec")
    assert "hunter2" not in message
    assert "Extra inputs are not permitted" in message


def test_a_huge_bad_value_is_clipped_in_the_message() -> None:
    with pytest.raises(ValidationError) as error:
        RedisAudienceActivationSpec.model_validate(
            {**ACTIVATION, "audienceName": "x y" * 1_000_000}
        )

    assert len(describe_validation_error(error.value, "spec")) < 2100
