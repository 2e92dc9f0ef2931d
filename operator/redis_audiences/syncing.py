"""From resources to a run: the one path the command line and operator share.

Given an activation, its destination and something that answers Secret and
ConfigMap references, this module builds the ``RedisTarget``, the key source
and the ``RunOptions``, runs the membership core and returns its report.
Everything a user can get wrong (a missing Secret, a broken query, an
unreachable Redis) ends as a ``Failed`` report with a one-line message.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import urlsplit

import redis

from redis_audiences.membership import (
    DEFAULT_PREFIX,
    DEFAULT_SUFFIX,
    AudienceKeys,
    ConnectionFailed,
    MembershipError,
    RedisTarget,
    RunOptions,
    RunReport,
    SourceFailed,
    describe_redis_error,
    new_run_id,
    open_client,
    probe,
    remove_audience,
    run_sync,
)
from redis_audiences.membership.permissions import PermissionCheck, check_permissions
from redis_audiences.membership.runs import ProgressSink
from redis_audiences.resources import (
    ManifestError,
    ObjectLookup,
    RedisAudienceActivation,
    RedisDestination,
    SecretKeyRef,
)
from redis_audiences.sources import KeySource, KeyStream, SourceError
from redis_audiences.sources.configmap import ConfigMapSource
from redis_audiences.sources.inline import InlineSource
from redis_audiences.sources.sql import SqlSource


@dataclass(frozen=True)
class Overrides:
    """What the command line may change for one invocation."""

    redis_url: str | None = None
    mode: Literal["Full", "Delta"] | None = None
    dry_run: bool | None = None
    trigger: str = "Manual"


@dataclass(frozen=True)
class PreparedRun:
    """Everything a run needs, resolved; building it is where manifests fail."""

    target: RedisTarget
    keys: AudienceKeys
    source: KeySource
    options: RunOptions


def prepare(
    activation: RedisAudienceActivation,
    destination: RedisDestination,
    lookup: ObjectLookup,
    overrides: Overrides = Overrides(),
) -> PreparedRun:
    """Resolve references; raises ``ManifestError`` or ``MembershipError``."""
    return PreparedRun(
        target=redis_target(destination, lookup, overrides.redis_url),
        keys=audience_keys(activation, destination),
        source=key_source(activation, lookup),
        options=run_options(activation, overrides),
    )


def execute(prepared: PreparedRun, *, progress: ProgressSink | None = None) -> RunReport:
    """Run a prepared sync; every failure ends in the report, none raises."""
    stream = _Guarded(KeyStream(prepared.source))
    try:
        with open_client(prepared.target) as client:
            return run_sync(client, prepared.keys, stream, prepared.options, progress=progress)
    except MembershipError as error:
        return failed_report(prepared.options, str(error))


def sync_activation(
    activation: RedisAudienceActivation,
    destination: RedisDestination,
    lookup: ObjectLookup,
    overrides: Overrides = Overrides(),
    *,
    progress: ProgressSink | None = None,
) -> RunReport:
    """Prepare and run one sync of ``activation``; never raises for users."""
    try:
        prepared = prepare(activation, destination, lookup, overrides)
    except (ManifestError, MembershipError) as error:
        return failed_report(run_options(activation, overrides), str(error))
    return execute(prepared, progress=progress)


def check_destination(
    destination: RedisDestination, lookup: ObjectLookup
) -> tuple[str, PermissionCheck]:
    """PING the destination and ask which sync commands its user may not run.

    Writes nothing. Raises ``ManifestError`` or ``MembershipError``.
    """
    keys = destination_keys(destination, "probe")
    with open_client(redis_target(destination, lookup)) as client:
        version = probe(client)
        try:
            return version, check_permissions(client, keys)
        except redis.RedisError as error:
            raise ConnectionFailed(describe_redis_error(error)) from None


def remove_audience_from(
    destination: RedisDestination, audience: str, *, activation: str, lookup: ObjectLookup
) -> RunReport:
    """Remove ``audience`` from every Set of ``destination`` for ``activation``.

    Deletion and moves call it with where the activation last wrote, which
    need not be what its spec says now.
    """
    options = RunOptions(mode="Full", activation=activation, trigger="Deletion")
    try:
        with open_client(redis_target(destination, lookup)) as client:
            keys = destination_keys(destination, audience)
            return remove_audience(client, keys, activation=activation)
    except (ManifestError, MembershipError) as error:
        return failed_report(options, str(error))


def last_run_fields(report: RunReport) -> dict[str, Any]:
    """The report as ``status.lastRun`` spells it."""
    return {
        "id": report.id,
        "trigger": report.trigger,
        "mode": report.mode,
        "dryRun": report.dry_run,
        "startedAt": _rfc3339(report.started_at),
        "finishedAt": _rfc3339(report.finished_at or report.started_at),
        "durationSeconds": report.duration_seconds,
        "sourceRows": report.source_rows,
        "added": report.added,
        "removed": report.removed,
        "unchanged": report.unchanged,
        "skipped": report.skipped,
        "outcome": report.outcome,
        "message": report.message,
    }


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def run_options(activation: RedisAudienceActivation, overrides: Overrides) -> RunOptions:
    """The activation's spec with defaults and command-line overrides."""
    spec, safety = activation.spec, activation.spec.safety
    dry_run = overrides.dry_run if overrides.dry_run is not None else bool(spec.dry_run)
    max_removal = safety.max_removal_percent if safety else None
    return RunOptions(
        mode=overrides.mode or spec.sync_mode or "Delta",
        dry_run=dry_run,
        max_removal_percent=50.0 if max_removal is None else max_removal,
        allow_empty_source=bool(safety and safety.allow_empty_source),
        fail_on_wrong_type=spec.on_wrong_type == "Fail",
        activation=activation.qualified_name,
        trigger=overrides.trigger,
    )


def audience_keys(
    activation: RedisAudienceActivation, destination: RedisDestination
) -> AudienceKeys:
    """Key names of the activation's audience on its destination."""
    return destination_keys(destination, activation.spec.audience_name)


def destination_keys(destination: RedisDestination, audience: str) -> AudienceKeys:
    """Key names of ``audience`` with the destination's suffix and prefix."""
    spec = destination.spec
    return AudienceKeys(
        audience=audience,
        suffix=(spec.membership_suffix or DEFAULT_SUFFIX).encode(),
        prefix=(spec.metadata_prefix or DEFAULT_PREFIX).encode(),
    )


def _well_formed(url: str | None, ref: Any) -> str | None:
    """The Secret's Redis URL, refused (without echoing it) when mis-split.

    A password with an unescaped '#', '?', '/' or '@' moves part of itself
    into what parsers take for the host, and a connection error would then
    name that piece.
    """
    if url is None:
        return None
    try:
        parts = urlsplit(url)
        malformed = bool(parts.fragment) or "@" in parts.path + parts.query
    except ValueError:  # NB: its message quotes the piece it could not parse.
        malformed = True
    if malformed:
        raise ManifestError(
            f"the Redis URL in Secret {ref.name!r} (key {ref.key!r}) is malformed; "
            "percent-encode special characters of the user name and password."
        )
    return url


def redis_target(
    destination: RedisDestination, lookup: ObjectLookup, redis_url: str | None = None
) -> RedisTarget:
    """Resolve the destination's references into a ``RedisTarget``.

    ``redis_url`` replaces the destination's address: a Cluster stays a
    Cluster (the URL is a seed node), any other mode becomes Standalone.
    """
    spec, namespace = destination.spec, destination.meta.namespace
    mode = spec.effective_mode
    if redis_url and mode != "Cluster":
        mode = "Standalone"

    def secret(ref: Any) -> str | None:
        return lookup.secret_value(namespace, ref) if ref is not None else None

    tls = spec.tls
    cert = tls.client_cert_secret_ref if tls else None
    sentinel = spec.sentinel
    return RedisTarget(
        mode=mode,
        url=redis_url or spec.url or _well_formed(secret(spec.url_secret_ref), spec.url_secret_ref),
        username=secret(spec.username_secret_ref),
        password=secret(spec.password_secret_ref),
        tls=tls is not None,
        ca_pem=secret(tls.ca_secret_ref) if tls else None,
        client_cert_pem=_tls_part(lookup, namespace, cert, "tls.crt"),
        client_key_pem=_tls_part(lookup, namespace, cert, "tls.key"),
        insecure_skip_verify=bool(tls and tls.insecure_skip_verify),
        sentinel_master=sentinel.master_name if sentinel else None,
        sentinels=tuple(_host_port(s) for s in sentinel.sentinels) if sentinel else (),
        sentinel_password=secret(sentinel.password_secret_ref) if sentinel else None,
    )


def key_source(activation: RedisAudienceActivation, lookup: ObjectLookup) -> KeySource:
    """The key source the activation's spec describes."""
    spec, namespace = activation.spec, activation.meta.namespace
    key_field = spec.field_mapping.redis_key if spec.field_mapping else None
    if spec.source.inline is not None:
        return InlineSource(spec.source.inline.keys)
    if spec.source.config_map is not None:
        ref = spec.source.config_map
        return ConfigMapSource(
            lookup.config_map_value(namespace, ref.name, ref.key),
            fmt=ref.format or "lines",
            key_field=key_field,
            name=f"configMap {ref.name}/{ref.key}",
        )
    sql = spec.source.sql
    assert sql is not None  # NB: SourceSpec validates that exactly one is set.
    url = lookup.secret_value(namespace, sql.connection_secret_ref)
    return SqlSource(url, sql.query, key_column=key_field or "")


def failed_report(options: RunOptions, message: str) -> RunReport:
    """A report for a run that could not start."""
    now = datetime.now(UTC)
    return RunReport(
        id=new_run_id(),
        trigger=options.trigger,
        mode=options.mode,
        dry_run=options.dry_run,
        started_at=now,
        finished_at=now,
        outcome="Failed",
        message=message,
    )


def _tls_part(lookup: ObjectLookup, namespace: str, ref: Any, key: str) -> str | None:
    if ref is None:
        return None
    return lookup.secret_value(namespace, SecretKeyRef(name=ref.name, key=key))


def _host_port(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host, int(port)


class _Guarded:
    """A ``KeyStream`` whose ``SourceError`` becomes ``SourceFailed``."""

    def __init__(self, stream: KeyStream) -> None:
        self.stream = stream

    @property
    def rows(self) -> int:
        return self.stream.rows

    @property
    def skipped(self) -> int:
        return self.stream.skipped

    def __iter__(self) -> Iterator[list[bytes]]:
        try:
            yield from self.stream
        except SourceError as error:
            raise SourceFailed(str(error)) from None
