"""Prometheus metrics of sync runs, served on ``--metrics-port``.

Every series is labelled by namespace, activation and audience, so a
dashboard can show one audience's health without knowing its Redis.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from redis_audiences.membership import RunReport

REGISTRY = CollectorRegistry()
_LABELS = ("namespace", "activation", "audience")

RUNS = Counter(
    "redis_audiences_runs_total", "Sync runs by outcome.", [*_LABELS, "outcome"], registry=REGISTRY
)
DURATION = Histogram(
    "redis_audiences_run_duration_seconds",
    "Duration of sync runs.",
    _LABELS,
    registry=REGISTRY,
    buckets=(0.1, 0.5, 1, 5, 15, 60, 300, 1800),
)
MEMBERS = Gauge(
    "redis_audiences_members", "Members after the last successful run.", _LABELS, registry=REGISTRY
)
ADDED = Counter(
    "redis_audiences_added_total",
    "Membership Sets that gained the audience.",
    _LABELS,
    registry=REGISTRY,
)
REMOVED = Counter(
    "redis_audiences_removed_total",
    "Membership Sets that lost the audience.",
    _LABELS,
    registry=REGISTRY,
)
LAST_SUCCESS = Gauge(
    "redis_audiences_last_success_timestamp_seconds",
    "Unix time of the last successful run.",
    _LABELS,
    registry=REGISTRY,
)


def record(namespace: str, activation: str, audience: str, report: RunReport) -> None:
    """Count one finished run."""
    labels = (namespace, activation, audience)
    RUNS.labels(*labels, report.outcome).inc()
    DURATION.labels(*labels).observe(report.duration_seconds)
    if report.outcome != "Succeeded" or report.dry_run:
        return
    ADDED.labels(*labels).inc(report.added)
    REMOVED.labels(*labels).inc(report.removed)
    if report.members is not None:
        MEMBERS.labels(*labels).set(report.members)
    if report.finished_at is not None:
        LAST_SUCCESS.labels(*labels).set(report.finished_at.timestamp())
