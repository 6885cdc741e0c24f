"""The one time format: RFC 3339 in UTC with a `Z`, whatever the source wrote."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

import pytest
from memory_service.core.timefmt import now_rfc3339, rfc3339


@pytest.mark.parametrize(
    ("stored", "shown"),
    [
        # mem0 stores `+00:00` strings with microseconds; the API shows `Z` and keeps the fraction.
        ("2025-07-30T20:15:00.123456+00:00", "2025-07-30T20:15:00.123456Z"),
        ("2025-07-30T20:15:00+00:00", "2025-07-30T20:15:00Z"),
        # Another offset becomes the same instant in UTC.
        ("2025-07-30T22:15:00+02:00", "2025-07-30T20:15:00Z"),
        ("2025-07-31T01:45:00+05:30", "2025-07-30T20:15:00Z"),
        # A naive string counts as UTC.
        ("2025-07-30T20:15:00", "2025-07-30T20:15:00Z"),
        # Already in the API's form: unchanged.
        ("2025-07-30T20:15:00Z", "2025-07-30T20:15:00Z"),
    ],
)
def test_stored_strings(stored: str, shown: str) -> None:
    assert rfc3339(stored) == shown


def test_a_string_that_is_not_a_time_is_shown_as_stored_rather_than_failing_the_read() -> None:
    assert rfc3339("last tuesday") == "last tuesday"


def test_datetimes_aware_and_naive() -> None:
    assert rfc3339(datetime(2025, 7, 30, 22, 15, tzinfo=timezone(timedelta(hours=2)))) == "2025-07-30T20:15:00Z"
    assert rfc3339(datetime(2025, 7, 30, 20, 15, 0, 500000)) == "2025-07-30T20:15:00.500000Z"
    assert rfc3339(datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)) == "2025-01-02T03:04:05Z"


def test_none_stays_none() -> None:
    assert rfc3339(None) is None


def test_now_in_whole_seconds_for_the_envelope_and_with_the_fraction_otherwise() -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    whole = now_rfc3339(seconds=True)
    precise = now_rfc3339()
    after = datetime.now(UTC)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", whole)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?Z", precise)
    assert before <= datetime.fromisoformat(whole) <= after
    assert before <= datetime.fromisoformat(precise) <= after
