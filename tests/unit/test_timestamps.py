from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trestle_tasks.core.timestamps import ODataTimestamp

MIN_TICKS = ODataTimestamp.parse("1900-01-01T00:00:00Z").ticks
MAX_TICKS = ODataTimestamp.parse("2999-12-31T23:59:59.9999999Z").ticks


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("1970-01-01T00:00:00Z", "1970-01-01T00:00:00.0000000Z", id="epoch"),
        pytest.param("2024-03-01T12:34:56.1234567Z", "2024-03-01T12:34:56.1234567Z", id="7-digits"),
        pytest.param("2020-10-31T13:30:30.1234-05:00", "2020-10-31T18:30:30.1234000Z", id="offset"),
        pytest.param("2020-01-01T00:30:00+01:00", "2019-12-31T23:30:00.0000000Z", id="day-back"),
    ],
)
def test_parse_normalizes_to_utc_with_seven_digits(text, expected):
    assert ODataTimestamp.parse(text).to_odata() == expected


@pytest.mark.parametrize(
    "text",
    ["2024-03-01T12:34:56.12345678Z", "2024-03-01T12:34:56", "2024-13-01T00:00:00Z", "", "x",
     "2024-03-01T12:34:56+25:00"],
    ids=["8-digits", "no-offset", "month-13", "empty", "garbage", "bad-offset"],
)
def test_parse_rejects_bad_text(text):
    with pytest.raises(ValueError, match="DateTimeOffset"):
        ODataTimestamp.parse(text)


def test_seventh_digit_orders_ties_apart():
    a = ODataTimestamp.parse("2024-03-01T12:34:56.1234567Z")
    b = ODataTimestamp.parse("2024-03-01T12:34:56.1234568Z")
    assert a < b and b.ticks - a.ticks == 1


def test_to_datetime_truncates_never_rounds_up():
    stamp = ODataTimestamp.parse("2024-03-01T12:34:56.9999999Z")
    assert stamp.to_datetime() == datetime(2024, 3, 1, 12, 34, 56, 999999, tzinfo=UTC)
    assert ODataTimestamp.from_datetime(stamp.to_datetime()) <= stamp


def test_naive_datetime_is_refused():
    with pytest.raises(ValueError, match="naive"):
        ODataTimestamp.from_datetime(datetime(2024, 1, 1))


@given(st.integers(MIN_TICKS, MAX_TICKS))
def test_text_round_trip_keeps_every_tick(ticks):
    stamp = ODataTimestamp(ticks)
    assert ODataTimestamp.parse(stamp.to_odata()) == stamp


@given(
    st.datetimes(min_value=datetime(1901, 1, 1), max_value=datetime(2900, 1, 1)),
    st.integers(-14 * 60, 14 * 60),
)
def test_from_datetime_agrees_with_parse_of_isoformat(moment, offset_minutes):
    aware = moment.replace(tzinfo=timezone(timedelta(minutes=offset_minutes)))
    assert ODataTimestamp.from_datetime(aware) == ODataTimestamp.parse(aware.isoformat())
