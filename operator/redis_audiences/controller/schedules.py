"""When an activation runs next: its schedule, and the backoff after failures.

Cron expressions are evaluated in the schedule's IANA time zone (UTC when
absent), so "0 9 * * *" in Europe/Paris is 09:00 Paris time in winter and in
summer. A failed run is retried on its own capped exponential backoff,
independent of the schedule, so a broken Redis is not hammered every minute
and a nightly audience does not wait a whole day to recover.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from croniter import croniter

from redis_audiences.resources.models import Schedule

RETRY_FIRST_SECONDS = 10.0
RETRY_CAP_SECONDS = 600.0


def next_run(schedule: Schedule, *, after: datetime) -> datetime:
    """The first scheduled time after ``after`` (aware), in UTC."""
    interval = schedule.interval_seconds
    if interval is not None:
        return (after + timedelta(seconds=interval)).astimezone(UTC)
    zone = ZoneInfo(schedule.time_zone or "UTC")
    upcoming: datetime = croniter(schedule.cron, after.astimezone(zone)).get_next(datetime)
    return upcoming.astimezone(UTC)


def next_retry_delay(waited: float | None) -> float:
    """Seconds before the next retry: twice the last wait, capped.

    ``waited`` is how long the previous retry waited (None after a first
    failure), so the backoff needs no failure count beyond the status.
    """
    if waited is None or waited <= 0:
        return RETRY_FIRST_SECONDS
    return float(min(RETRY_CAP_SECONDS, max(RETRY_FIRST_SECONDS, 2.0 * waited)))
