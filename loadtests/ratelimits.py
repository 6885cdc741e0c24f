"""Rate limits as a client sees them: when to wait, and whether observed answers prove the limits.

Pure functions, shared by the provisioning client (which must never be refused), the polite
Locust user (which proves a header-honouring client never sees a 429) and the probe (which proves
the seed's numbers from outside). The probe's verdicts are interval arithmetic over client clocks:
the server decided each request at some instant between our send and our receive, so a count
"in the last N seconds" is known only within bounds; a verdict is given only when the bounds agree.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

# Sleep this much past X-RateLimit-Reset: Reset is already rounded up to a whole second, the
# margin only covers a client clock slightly behind the server's.
RESET_MARGIN_S = 0.05


def _int_header(headers: Mapping[str, str], name: str) -> int | None:
    value = headers.get(name)
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return None


def pause_before_next(headers: Mapping[str, str], now: float, margin: float = RESET_MARGIN_S) -> float:
    """Seconds a polite client waits before its next request on this key (0 while budget remains).

    The headers describe the window closest to running out, so Remaining 0 means some window is
    full and Reset is when it frees a request.
    """
    remaining = _int_header(headers, "x-ratelimit-remaining")
    reset = _int_header(headers, "x-ratelimit-reset")
    if remaining is None or reset is None or remaining > 0:
        return 0.0
    return max(0.0, reset - now + margin)


def retry_after(headers: Mapping[str, str], default: float = 1.0) -> float:
    """Retry-After in seconds (the service sends whole seconds, at least 1)."""
    value = headers.get("retry-after")
    if value is None:
        return default
    try:
        return max(0.0, float(value))
    except ValueError:
        return default


@dataclass(frozen=True, slots=True)
class Exchange:
    """One request as the client saw it: wall-clock send and receive times, status, limit headers."""

    sent: float
    received: float
    status: int
    limit: int | None = None
    remaining: int | None = None
    reset: int | None = None
    retry_after: int | None = None
    error_code: str | None = None
    detail_limit: int | None = None
    detail_window: int | None = None

    @property
    def admitted(self) -> bool:
        return self.status != 429


def in_window_bounds(admitted: Sequence[Exchange], at: Exchange, seconds: float) -> tuple[int, int]:
    """How many `admitted` requests the server counted in the `seconds` before deciding `at`.

    The server decided x at s(x) in [x.sent, x.received]; x counts for `at` when
    s(at) - seconds < s(x) < s(at). Returns (certainly counted, possibly counted).
    """
    certain = possible = 0
    for x in admitted:
        if x is at:
            continue
        if x.sent > at.received - seconds and x.received < at.sent:
            certain += 1
        if x.received > at.sent - seconds and x.sent < at.received:
            possible += 1
    return certain, possible


def refusal_problems(refused: Exchange, limit: int, window: int, now_tolerance: float = 0.25) -> list[str]:
    """What is wrong with a 429 that should name `limit` per `window` seconds (empty: all correct)."""
    problems = []
    if refused.status != 429:
        return [f"expected 429, got {refused.status}"]
    if refused.error_code != "RATE_LIMIT_EXCEEDED":
        problems.append(f"error.code is {refused.error_code!r}, not RATE_LIMIT_EXCEEDED")
    if refused.detail_limit != limit or refused.detail_window != window:
        problems.append(
            f"details say {refused.detail_limit} per {refused.detail_window} s, expected {limit} per {window} s"
        )
    if refused.limit != limit:
        problems.append(f"X-RateLimit-Limit is {refused.limit}, expected {limit}")
    if refused.remaining != 0:
        problems.append(f"X-RateLimit-Remaining is {refused.remaining}, expected 0")
    if refused.retry_after is None or not 1 <= refused.retry_after <= window:
        problems.append(f"Retry-After is {refused.retry_after}, expected 1..{window}")
    elif refused.reset is None:
        problems.append("X-RateLimit-Reset is missing")
    else:
        # The server rounds both up from one instant r (when the window frees a request), decided
        # at t in [sent, received]: Reset = ceil(r) and Retry-After = ceil(r - t), so
        # sent + Retry-After - 1 < Reset < received + Retry-After + 1.
        low = refused.sent + refused.retry_after - 1 - now_tolerance
        high = refused.received + refused.retry_after + 1 + now_tolerance
        if not low < refused.reset < high:
            problems.append(
                f"X-RateLimit-Reset {refused.reset} disagrees with Retry-After {refused.retry_after} "
                f"(expected between {math.ceil(low)} and {math.floor(high)})"
            )
    return problems


def admitted_header_problems(admitted: Exchange, limits: Sequence[int]) -> list[str]:
    """An admitted answer carries all three headers, Limit one of the key's windows, Reset in the future."""
    if admitted.limit is None or admitted.remaining is None or admitted.reset is None:
        return ["an admitted answer lacks X-RateLimit-* headers"]
    problems = []
    if admitted.limit not in limits:
        problems.append(f"X-RateLimit-Limit {admitted.limit} is none of the windows {list(limits)}")
    if not 0 <= admitted.remaining < admitted.limit:
        problems.append(f"X-RateLimit-Remaining {admitted.remaining} outside 0..{admitted.limit - 1}")
    if admitted.reset < math.floor(admitted.sent):
        problems.append(f"X-RateLimit-Reset {admitted.reset} lies in the past")
    return problems


def window_problems(exchanges: Sequence[Exchange], limit: int, seconds: float, refused_window: int) -> list[str]:
    """Exactness of one moving window over a sequence of exchanges on one key.

    Every admitted request must have had fewer than `limit` others admitted in its window, and
    every refusal naming this window must have had exactly `limit` (within the clock bounds).
    """
    admitted = [x for x in exchanges if x.admitted]
    problems = []
    for x in admitted:
        certain, _ = in_window_bounds(admitted, x, seconds)
        if certain >= limit:
            problems.append(f"admitted a request with {certain} others already in its {seconds:g} s window")
    for x in exchanges:
        if x.admitted or x.detail_window != refused_window:
            continue
        certain, possible = in_window_bounds(admitted, x, seconds)
        if not certain <= limit <= possible:
            problems.append(f"refused with {certain}..{possible} admitted in the last {seconds:g} s, not {limit}")
    return problems
