"""Next run times in the schedule's time zone, and the retry backoff."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from redis_audiences.controller.schedules import next_retry_delay, next_run
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


@pytest.mark.parametrize(("waited", "seconds"), [(None, 10), (0, 10), (10, 20), (20, 40),
                                                 (160, 320), (320, 600), (600, 600)])  # fmt: skip
def test_retry_backoff_doubles_the_last_wait_up_to_ten_minutes(
    waited: float | None, seconds: float
) -> None:
    assert next_retry_delay(waited) == seconds


def test_retry_backoff_reaches_its_cap_after_more_failures_than_history_keeps() -> None:
    waited, waits = None, []
    for _ in range(8):
        waited = next_retry_delay(waited)
        waits.append(waited)

    assert waits == [10, 20, 40, 80, 160, 320, 600, 600]
