"""Pydantic models of the two custom resources: the single source of truth.

Field descriptions here become the CRD's ``kubectl explain`` text; defaults
live here and not in the CRD schema, so that GitOps tools see no drift
between a manifest in Git and the object in the cluster. Validation errors
name the field and the bad value (see ``describe_validation_error``).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from urllib.parse import parse_qsl, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadDateError, croniter
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

GROUP = "audiences.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
AUDIENCE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$"
INTERVAL_PATTERN = r"^[1-9][0-9]*(s|m|h)$"
MAX_INTERVAL_SECONDS = 366 * 24 * 3600
_INTERVAL_SECONDS = {"s": 1, "m": 60, "h": 3600}


class Model(BaseModel):
    """Base of every spec model: camelCase names, unknown fields rejected."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )


class SecretKeyRef(Model):
    """A key of a Secret in the resource's namespace."""

    name: Annotated[str, Field(min_length=1, description="Name of the Secret.")]
    key: Annotated[str, Field(min_length=1, description="Key inside the Secret's data.")]


class LocalObjectRef(Model):
    """An object of the same namespace, by name."""

    name: Annotated[str, Field(min_length=1, description="Name of the object.")]


class TlsSpec(Model):
    """TLS settings; a ``rediss://`` URL turns TLS on by itself."""

    ca_secret_ref: SecretKeyRef | None = Field(
        None, description="CA bundle (PEM) that signed the server certificate."
    )
    client_cert_secret_ref: LocalObjectRef | None = Field(
        None, description="A kubernetes.io/tls Secret (tls.crt, tls.key) for mutual TLS."
    )
    insecure_skip_verify: StrictBool | None = Field(
        None, description="Do not verify the server certificate. For tests only."
    )


class SentinelSpec(Model):
    """Where the Sentinels are and which master they guard."""

    master_name: Annotated[str, Field(min_length=1, description="Name of the master set.")]
    sentinels: Annotated[
        list[Annotated[str, Field(pattern=r"^[^:\s]+:[0-9]{1,5}$")]],
        Field(min_length=1, description="Sentinel addresses as host:port."),
    ]
    password_secret_ref: SecretKeyRef | None = Field(
        None, description="Password of the Sentinels themselves, when they need one."
    )


class RedisDestinationSpec(Model):
    """How to reach one Redis deployment."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": (
                        "has(self.mode) && self.mode == 'Sentinel' ? has(self.sentinel) && "
                        "!has(self.url) && !has(self.urlSecretRef) : "
                        "(has(self.url) ? 1 : 0) + (has(self.urlSecretRef) ? 1 : 0) == 1"
                    ),
                    "message": "set exactly one of url and urlSecretRef (Sentinel: sentinel only)",
                }
            ]
        }
    )

    mode: Literal["Standalone", "Cluster", "Sentinel"] | None = Field(
        None, description="Standalone (default), Cluster or Sentinel."
    )
    url: str | None = Field(
        None,
        pattern=r"^rediss?://",
        description="redis:// or rediss:// URL without credentials; any seed node for Cluster.",
    )
    url_secret_ref: SecretKeyRef | None = Field(
        None, description="Secret key holding the whole URL, credentials included (instead of url)."
    )
    username_secret_ref: SecretKeyRef | None = Field(None, description="ACL user name.")
    password_secret_ref: SecretKeyRef | None = Field(None, description="ACL password.")
    tls: TlsSpec | None = Field(None, description="TLS settings.")
    sentinel: SentinelSpec | None = Field(None, description="Sentinel settings (mode Sentinel).")
    membership_suffix: str | None = Field(
        None,
        min_length=1,
        max_length=256,
        description="Suffix of membership Sets: <profile key><suffix>. Default .dinmo_segments.",
    )
    metadata_prefix: str | None = Field(
        None,
        min_length=1,
        max_length=256,
        pattern=r"^[^{}]*$",
        description=(
            "Prefix of the operator's own keys (metadata, ledger, lock). Default audiences:."
        ),
    )

    @field_validator("url")
    @classmethod
    def _url_has_no_credentials(cls, url: str | None) -> str | None:
        query = {name.lower() for name, _ in parse_qsl(urlsplit(url or "").query)}
        in_query = query & {"password", "username", "user"}
        if url is not None and (urlsplit(url).username or urlsplit(url).password or in_query):
            raise ValueError(
                "url must not carry credentials; put the whole URL in urlSecretRef "
                "or use usernameSecretRef and passwordSecretRef"
            )
        return url

    @model_validator(mode="after")
    def _one_way_to_connect(self) -> RedisDestinationSpec:
        has_url = (self.url is not None) + (self.url_secret_ref is not None)
        if self.mode == "Sentinel":
            if self.sentinel is None:
                raise ValueError("mode Sentinel needs sentinel.masterName and sentinel.sentinels")
            if has_url:
                raise ValueError("mode Sentinel takes no url or urlSecretRef; set sentinel")
        elif has_url != 1:
            raise ValueError(
                f"mode {self.mode or 'Standalone'} needs exactly one of url and "
                f"urlSecretRef (got {has_url})"
            )
        return self

    @property
    def effective_mode(self) -> Literal["Standalone", "Cluster", "Sentinel"]:
        return self.mode or "Standalone"


class InlineSource(Model):
    """Keys listed in the manifest itself; for small, hand-kept audiences."""

    keys: Annotated[list[str], Field(max_length=10000, description="The profile keys.")]


class ConfigMapSource(Model):
    """Keys read from a ConfigMap in the activation's namespace."""

    name: Annotated[str, Field(min_length=1, description="Name of the ConfigMap.")]
    key: Annotated[str, Field(min_length=1, description="Key of the ConfigMap's data.")]
    format: Literal["lines", "csv", "ndjson"] | None = Field(
        None, description="lines (default: one key a line), csv (with header) or ndjson."
    )


class SqlSource(Model):
    """Keys returned by a SQL query against a warehouse (SQLAlchemy URL)."""

    connection_secret_ref: SecretKeyRef = Field(
        description="Secret key holding the SQLAlchemy database URL."
    )
    query: Annotated[str, Field(min_length=1, description="SELECT returning the key column.")]


class SourceSpec(Model):
    """Where the audience's keys come from: exactly one of the fields."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": (
                        "(has(self.inline) ? 1 : 0) + (has(self.configMap) ? 1 : 0) "
                        "+ (has(self.sql) ? 1 : 0) == 1"
                    ),
                    "message": "set exactly one of inline, configMap and sql",
                }
            ]
        }
    )

    inline: InlineSource | None = Field(None, description="Keys listed inline.")
    config_map: ConfigMapSource | None = Field(None, description="Keys from a ConfigMap.")
    sql: SqlSource | None = Field(None, description="Keys from a SQL query.")

    @model_validator(mode="before")
    @classmethod
    def _http_is_planned(cls, data: Any) -> Any:
        if isinstance(data, dict) and "http" in data:
            raise ValueError(
                "source.http is planned but not supported yet; use inline, configMap or sql"
            )
        return data

    @model_validator(mode="after")
    def _exactly_one(self) -> SourceSpec:
        chosen = [
            name
            for name in ("inline", "configMap", "sql")
            if getattr(self, _snake(name)) is not None
        ]
        if len(chosen) != 1:
            raise ValueError(
                f"source needs exactly one of inline, configMap and sql "
                f"(got {', '.join(chosen) or 'none'})"
            )
        return self

    @property
    def kind(self) -> Literal["inline", "configMap", "sql"]:
        if self.inline is not None:
            return "inline"
        return "configMap" if self.config_map is not None else "sql"


class FieldMapping(Model):
    """Which field of the source rows holds what."""

    redis_key: Annotated[
        str,
        Field(
            min_length=1,
            description=(
                "Column or field holding the exact Redis key of the profile; used as it is."
            ),
        ),
    ]


class Schedule(Model):
    """When to run: a five-field cron expression or an interval."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "has(self.cron) != has(self.interval)",
                    "message": "set exactly one of cron and interval",
                },
                {
                    "rule": "!has(self.timeZone) || has(self.cron)",
                    "message": "timeZone applies to cron only",
                },
            ]
        }
    )

    cron: str | None = Field(
        None,
        description="Five-field cron expression, e.g. '0 * * * *'.",
        json_schema_extra={"pattern": r"^\s*\S+(\s+\S+){4}\s*$"},
    )
    interval: str | None = Field(
        None, pattern=INTERVAL_PATTERN, description="Interval such as 30s, 15m or 1h."
    )
    time_zone: str | None = Field(None, description="IANA time zone of cron; UTC when absent.")

    @field_validator("cron")
    @classmethod
    def _cron_has_five_valid_fields(cls, cron: str | None) -> str | None:
        if cron is not None and (len(cron.split()) != 5 or not croniter.is_valid(cron)):
            raise ValueError(f"cron {cron!r} is not a five-field cron expression")
        if cron is not None:
            try:
                croniter(cron, datetime(2000, 1, 1, tzinfo=UTC)).get_next(datetime)
            except CroniterBadDateError:
                raise ValueError(f"cron {cron!r} names a day that never comes") from None
        return cron

    @field_validator("interval")
    @classmethod
    def _interval_at_most_a_year(cls, interval: str | None) -> str | None:
        if interval is not None and _seconds(interval) > MAX_INTERVAL_SECONDS:
            raise ValueError(f"interval {interval!r} is longer than a year (366 days)")
        return interval

    @field_validator("time_zone")
    @classmethod
    def _time_zone_exists(cls, zone: str | None) -> str | None:
        if zone is not None:
            try:
                ZoneInfo(zone)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError(f"timeZone {zone!r} is not an IANA time zone") from None
        return zone

    @model_validator(mode="after")
    def _cron_or_interval(self) -> Schedule:
        if (self.cron is None) == (self.interval is None):
            raise ValueError("schedule needs exactly one of cron and interval")
        if self.time_zone is not None and self.cron is None:
            raise ValueError(f"timeZone {self.time_zone!r} applies to cron only, not to interval")
        return self

    @property
    def interval_seconds(self) -> int | None:
        return None if self.interval is None else _seconds(self.interval)


def _seconds(interval: str) -> int:
    return int(interval[:-1]) * _INTERVAL_SECONDS[interval[-1]]


class Safety(Model):
    """Guards that refuse a run instead of writing something surprising."""

    max_removal_percent: float | None = Field(
        None,
        ge=0,
        le=100,
        description=(
            "Refuse a run that would remove more than this share of current members (default 50)."
        ),
    )
    allow_empty_source: StrictBool | None = Field(
        None,
        description=(
            "A source returning no keys is an error unless true; when true it empties the audience."
        ),
    )


class RedisAudienceActivationSpec(Model):
    """One audience exported to one destination."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": (
                        "has(self.fieldMapping) || !has(self.source.sql) && "
                        "(!has(self.source.configMap) || !has(self.source.configMap.format) "
                        "|| self.source.configMap.format == 'lines')"
                    ),
                    "message": "fieldMapping.redisKey is required for sql, csv and ndjson sources",
                },
                {
                    "rule": (
                        "!has(self.fieldMapping) || !has(self.source.configMap) || "
                        "has(self.source.configMap.format) && "
                        "self.source.configMap.format != 'lines'"
                    ),
                    "message": "fieldMapping.redisKey has no effect on a lines configMap",
                },
            ]
        }
    )

    destination_ref: LocalObjectRef = Field(description="RedisDestination in this namespace.")
    audience_name: str = Field(
        description=(
            "Value written into membership Sets: 1-128 letters, digits, '_', '-', '.' or ':', "
            "starting with a letter or digit."
        ),
        json_schema_extra={"pattern": AUDIENCE_PATTERN, "minLength": 1, "maxLength": 128},
    )
    source: SourceSpec = Field(description="Where the keys come from.")
    field_mapping: FieldMapping | None = Field(
        None, description=("Field mapping; redisKey is required for csv, ndjson and sql sources.")
    )
    sync_mode: Literal["Full", "Delta"] | None = Field(None, description="Full or Delta (default).")
    schedule: Schedule | None = Field(
        None, description=("When to run; without it, runs happen on change and on request only.")
    )
    suspend: StrictBool | None = Field(None, description="No scheduled runs while true.")
    dry_run: StrictBool | None = Field(None, description="Plan and report, write nothing.")
    safety: Safety | None = Field(None, description="Safety guards.")
    on_wrong_type: Literal["Skip", "Fail"] | None = Field(
        None,
        description=(
            "What to do with a membership key that holds another type: Skip (default) or Fail."
        ),
    )
    deletion_policy: Literal["Remove", "Retain"] | None = Field(
        None,
        description=(
            "Remove (default): deleting the resource removes the audience from every Set."
        ),
    )

    @field_validator("audience_name")
    @classmethod
    def _audience_name_is_valid(cls, name: str) -> str:
        return check_audience_name(name)

    @model_validator(mode="after")
    def _key_field_when_needed(self) -> RedisAudienceActivationSpec:
        config_map = self.source.config_map
        lines = config_map is not None and config_map.format in (None, "lines")
        if lines and self.field_mapping is not None:
            raise ValueError(
                "fieldMapping.redisKey has no effect on a lines configMap (one key a line); "
                "set source.configMap.format to csv or ndjson, or remove fieldMapping"
            )
        if self.source.kind == "sql":
            needs = "sql"
        elif config_map is not None and config_map.format in ("csv", "ndjson"):
            needs = f"{config_map.format} configMap"
        else:
            return self
        if self.field_mapping is None:
            raise ValueError(f"fieldMapping.redisKey is required for a {needs} source")
        return self


def check_audience_name(name: str) -> str:
    """Return ``name`` when it is a valid audience name; else raise."""
    if not 1 <= len(name) <= 128:
        raise ValueError(f"audienceName {name!r} has {len(name)} characters; use 1 to 128")
    if not name[0].isascii() or not name[0].isalnum():
        raise ValueError(f"audienceName {name!r} must start with an ASCII letter or digit")
    bad = sorted({c for c in name if not re.fullmatch(r"[A-Za-z0-9_.:-]", c)})
    if bad:
        shown = ", ".join(repr(c) for c in bad).replace("' '", "a space")
        raise ValueError(
            f"audienceName {name!r} contains {shown}; use letters, digits, '_', '-', '.' or ':'"
        )
    return name


def _snake(name: str) -> str:
    return re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), name)
