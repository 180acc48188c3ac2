"""Trestle's quota headers, parsed into a snapshot the rest of the system can read.

Header names are case-insensitive and values may come as floats (`8520.0`); a header that
cannot be read is left out of the snapshot rather than failing the response it came with.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

_FIELDS = {
    "minute-quota-limit": "minute_limit",
    "minute-quota-available": "minute_available",
    "hour-quota-limit": "hour_limit",
    "hour-quota-available": "hour_available",
}


@dataclass(frozen=True)
class QuotaSnapshot:
    """What one response said about the credential's remaining quota."""

    observed_at: float
    quota_type: str | None = None
    minute_limit: int | None = None
    minute_available: int | None = None
    hour_limit: int | None = None
    hour_available: int | None = None
    hour_reset_at: float | None = None  # epoch seconds
    # When the request was sent (epoch seconds): the server counted it in the minute it
    # arrived, which may be over by the time the answer is read.
    sent_at: float | None = None



def _number(text: str) -> float | None:
    try:
        value = float(text.strip())
    except (ValueError, AttributeError):
        return None
    if value != value or value in (float("inf"), float("-inf")):
        return None
    return value


def parse_quota_headers(headers: Mapping[str, str], *, now: float,
                        sent_at: float | None = None) -> QuotaSnapshot | None:
    """A snapshot from the response headers, or None when the response carried none."""
    lowered = {str(k).lower(): v for k, v in headers.items()}
    counts: dict[str, int] = {}
    for header, attribute in _FIELDS.items():
        if header in lowered:
            number = _number(lowered[header])
            if number is not None and number >= 0:
                counts[attribute] = int(number)
    reset_at = None
    if "hour-quota-resettime" in lowered:
        reset_ms = _number(lowered["hour-quota-resettime"])
        if reset_ms is not None and reset_ms > 0:
            reset_at = reset_ms / 1000.0
    quota_type = lowered.get("quotatype")
    if not counts and reset_at is None and quota_type is None:
        return None
    return QuotaSnapshot(observed_at=now, quota_type=quota_type, hour_reset_at=reset_at,
                         sent_at=sent_at, **counts)
