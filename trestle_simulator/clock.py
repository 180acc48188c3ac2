"""Instants as 100 ns ticks and Trestle's seven-digit timestamp text.

The simulator stores every timestamp as ticks (exact, cheap to compare) and writes them
the way Trestle does, `2024-03-01T12:34:56.1234567Z`: always seven fractional digits,
always UTC, so a client that keeps only microseconds visibly loses the last digit.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

TICKS_PER_SECOND = 10_000_000
TICKS_PER_DAY = 86_400 * TICKS_PER_SECOND
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def format_ticks(ticks: int) -> str:
    """Ticks since the Unix epoch -> `YYYY-MM-DDTHH:MM:SS.fffffffZ`."""
    seconds, fraction = divmod(ticks, TICKS_PER_SECOND)
    moment = _EPOCH + timedelta(seconds=seconds)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{fraction:07d}Z"


def ticks_of(moment: datetime) -> int:
    """A timezone-aware datetime -> ticks (microsecond resolution, the 7th digit is 0)."""
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * TICKS_PER_SECOND + delta.microseconds * 10


def ticks_at(year: int, month: int = 1, day: int = 1) -> int:
    return ticks_of(datetime(year, month, day, tzinfo=UTC))


def format_date(ticks: int) -> str:
    """Ticks -> an Edm.Date `YYYY-MM-DD` (the UTC calendar day)."""
    return (_EPOCH + timedelta(seconds=ticks // TICKS_PER_SECOND)).date().isoformat()


def now_ticks() -> int:
    """Wall-clock now in ticks; time_ns keeps the 7th digit varied, as Trestle's does."""
    return time.time_ns() // 100


# Generated history spans fixed calendar years, not "the last N years from now": the same
# seed must give the same records on any day. Everything generated is older than the
# end, and mutations made through the control API are stamped with the real clock.
HISTORY_START_TICKS = ticks_at(2019, 1, 1)
HISTORY_END_TICKS = ticks_at(2026, 1, 1)
