"""The one time format of the API: RFC 3339 in UTC with a `Z`, as the contract writes it.

mem0 stores `+00:00` strings, Postgres gives aware datetimes; both are shown the same way.
Fractional seconds are kept where the source has them (stored memories), and left out where
the contract shows whole seconds (the envelope's `timestamp`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import overload


def now_rfc3339(*, seconds: bool = False) -> str:
    """The current instant; `seconds=True` for the envelope's whole-second form."""
    now = datetime.now(UTC)
    return _format(now.replace(microsecond=0) if seconds else now)


def _format(value: datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


@overload
def rfc3339(value: datetime | str) -> str: ...
@overload
def rfc3339(value: None) -> None: ...
@overload
def rfc3339(value: datetime | str | None) -> str | None: ...
def rfc3339(value: datetime | str | None) -> str | None:
    """A datetime or an ISO string (naive counts as UTC) in the API's form; None stays None."""
    if value is None:
        return None
    if isinstance(value, str):
        if value.endswith("Z"):
            return value
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return value  # not a time we wrote; shown as stored rather than failing the read
        return _format(parsed)
    return _format(value)
