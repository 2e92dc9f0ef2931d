"""Next run times in the schedule's time zone, and the retry backoff."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from redis_audiences.controller.schedules import next_run, retry_delay
from redis_audiences.resources.models import Schedule


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(("schedule", "after", "expected"), [
    ({"interval": "15m"}, "2026-12-03T10:07:00", "2026-12-03T10:22:00"),
    ({"interval": "1h"}, "2026-12-03T23:30:00", "2026-12-04T00:30:00"),
    ({"cron": "0 * * * *"}, "2026-12-03T10:07:00", "2026-12-03T11:00:00"),
    ({"cron": "0 9 * * *", "timeZone": "Europe/Paris"}, "2026-12-03T10:00:00",
     "2026-12-04T08:00:00"),
    ({"cron": "0 9 * * *", "timeZone": "Europe/Paris"}, "2026-07-01T00:00:00",
     "2026-07-01T07:00:00"),
    ({"cron": "30 18 * * 1", "timeZone": "America/New_York"}, "2026-12-03T00:00:00",
     "2026-12-07T23:30:00"),
])  # fmt: skip
def test_next_run_follows_the_schedule_in_its_time_zone(
    schedule: dict[str, str], after: str, expected: str
) -> None:
    assert next_run(Schedule.model_validate(schedule), after=at(after)) == at(expected)


def test_next_run_is_strictly_after_a_tick() -> None:
    schedule = Schedule.model_validate({"cron": "0 * * * *"})

    assert next_run(schedule, after=at("2026-12-03T11:00:00")) == at("2026-12-03T12:00:00")


@pytest.mark.parametrize(("failures", "seconds"), [(1, 10), (2, 20), (3, 40), (6, 320), (7, 600),
                                                   (50, 600)])  # fmt: skip
def test_retry_backoff_doubles_and_is_capped(failures: int, seconds: float) -> None:
    assert retry_delay(failures) == seconds


def test_retry_backoff_needs_a_failure() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        retry_delay(0)
