"""Edm.DateTimeOffset values with Trestle's full precision.

Trestle timestamps carry seven fractional digits (100 ns ticks); Python's datetime keeps
six. Cursors and filters therefore hold ticks, so a watermark never loses the seventh digit
and a tie is never split by rounding.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

TICKS_PER_SECOND = 10_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

_PATTERN = re.compile(
    r"(?P<date>\d{4}-\d{2}-\d{2})T(?P<h>\d{2}):(?P<m>\d{2}):(?P<s>\d{2})"
    r"(?:\.(?P<frac>\d{1,7}))?"
    r"(?P<tz>Z|[+-]\d{2}:\d{2})\Z",
    re.IGNORECASE,
)


@dataclass(frozen=True, order=True)
class ODataTimestamp:
    """An instant in 100 ns ticks since the Unix epoch, UTC."""

    ticks: int

    @classmethod
    def parse(cls, text: object) -> ODataTimestamp:
        """Parse ISO-8601 with an offset and up to seven fractional digits; anything else,
        a value that is not text included (a record's field as it came), is a ValueError."""
        match = _PATTERN.match(text.strip()) if isinstance(text, str) else None
        if match is None:
            raise ValueError(f"not an Edm.DateTimeOffset: {text!r}")
        try:
            base = datetime.fromisoformat(
                f"{match['date']}T{match['h']}:{match['m']}:{match['s']}+00:00"
            )
        except ValueError as exc:
            raise ValueError(f"not an Edm.DateTimeOffset: {text!r}") from exc
        tz = match["tz"].upper()
        offset = timedelta(0)
        if tz != "Z":
            sign = 1 if tz[0] == "+" else -1
            hours, minutes = int(tz[1:3]), int(tz[4:6])
            if hours > 23 or minutes > 59:
                raise ValueError(f"not an Edm.DateTimeOffset: {text!r}")
            offset = sign * timedelta(hours=hours, minutes=minutes)
        # Offset last, on the timedelta: `base - offset` overflows datetime for an instant
        # past 9999-12-31 in UTC (`9999-12-31T23:59:59-01:00`), an OverflowError that no
        # caller expects; the ticks are exact either way, and callers check the range.
        whole_seconds = (base - _EPOCH - offset) // timedelta(seconds=1)
        fraction = int((match["frac"] or "").ljust(7, "0"))
        return cls(whole_seconds * TICKS_PER_SECOND + fraction)

    @classmethod
    def from_datetime(cls, value: datetime) -> ODataTimestamp:
        """An aware datetime to ticks (naive datetimes are refused: the offset matters)."""
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("a naive datetime has no offset; pass an aware datetime")
        delta = value - _EPOCH
        return cls((delta // timedelta(microseconds=1)) * 10)

    @classmethod
    def now(cls) -> ODataTimestamp:
        return cls.from_datetime(datetime.now(UTC))

    def to_odata(self) -> str:
        """`YYYY-MM-DDTHH:MM:SS.fffffffZ`, the unquoted literal Trestle accepts in $filter.

        An instant outside years 1-9999 in UTC (a poison record's, such as
        `9999-12-31T23:59:59.9999999-01:00`, which can end a page and so become a keyset
        cursor) is written as the nearest one inside: that has a literal, where the
        instant itself would raise OverflowError and stop the walk."""
        ticks = min(max(self.ticks, MIN_TICKS), MAX_TICKS)
        seconds, fraction = divmod(ticks, TICKS_PER_SECOND)
        moment = _EPOCH + timedelta(seconds=seconds)
        # The year zero-padded by hand: %Y gives `1`, not `0001`, for year 1 on glibc.
        return f"{moment.year:04d}-{moment:%m-%dT%H:%M:%S}.{fraction:07d}Z"

    def to_datetime(self) -> datetime:
        """The instant as an aware UTC datetime, truncated to microseconds (never rounded up)."""
        return _EPOCH + timedelta(microseconds=self.ticks // 10)

    def __str__(self) -> str:
        return self.to_odata()


# Trestle's own form of an Edm.DateTimeOffset; any other (offsets, lower case, spaces)
# takes ODataTimestamp.parse.
_COMMON_TIMESTAMP = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,7})?Z\Z")
_NAIVE_EPOCH = datetime(1970, 1, 1)
_SECOND = timedelta(seconds=1)


def common_timestamp_ticks(value: object) -> int | None:
    """`ODataTimestamp.parse(value).ticks` when `value` has the form
    `YYYY-MM-DDTHH:MM:SS[.f]Z` (up to 7 digits) and is a real instant; None when unsure
    (the full parser decides). About a third of parse's cost: the loader and the census
    read one or more timestamps of every record."""
    if type(value) is not str or _COMMON_TIMESTAMP.match(value) is None:
        return None
    try:
        base = datetime.fromisoformat(value[:19])  # years 1-9999: always in range
    except ValueError:
        return None
    fraction = value[20:-1]
    ticks = (base - _NAIVE_EPOCH) // _SECOND * TICKS_PER_SECOND
    return ticks + int(fraction.ljust(7, "0")) if fraction else ticks


# Instants a datetime (and so every target database) can hold: years 1-9999 in UTC.
MIN_TICKS = ODataTimestamp.from_datetime(datetime.min.replace(tzinfo=UTC)).ticks
MAX_TICKS = ODataTimestamp.from_datetime(datetime.max.replace(tzinfo=UTC)).ticks + 9


def census_ticks(value: object) -> int | None:
    """The ticks of a census's timestamp; None when it is not a readable instant in years
    1-9999 UTC (a poison value is one record's problem, never the census's)."""
    try:
        ticks = ODataTimestamp.parse(value).ticks
    except (ValueError, OverflowError):
        return None
    return ticks if MIN_TICKS <= ticks <= MAX_TICKS else None


def epoch_seconds_of(records: Iterable[Mapping[str, object]], field: str) -> list[float]:
    """`field` of each record that holds a valid Edm.DateTimeOffset, in epoch seconds
    (records without one are left out: the loader rejects them)."""
    found = []
    for record in records:
        try:
            found.append(ODataTimestamp.parse(record.get(field)).ticks / TICKS_PER_SECOND)
        except ValueError:
            continue
    return found
