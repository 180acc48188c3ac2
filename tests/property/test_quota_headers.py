"""Quota header monitoring: any letter case, floats, junk tolerated."""

from hypothesis import given
from hypothesis import strategies as st

from trestle_tasks.trestle.quota_headers import parse_quota_headers

NAMES = {
    "minute_limit": "Minute-Quota-Limit",
    "minute_available": "Minute-Quota-Available",
    "hour_limit": "Hour-Quota-Limit",
    "hour_available": "Hour-Quota-Available",
}


def random_case(draw, name):
    flips = draw(st.lists(st.booleans(), min_size=len(name), max_size=len(name)))
    return "".join(c.upper() if f else c.lower() for c, f in zip(name, flips, strict=True))


@st.composite
def header_sets(draw):
    expected = {}
    headers = {}
    for attribute, name in NAMES.items():
        if draw(st.booleans()):
            value = draw(st.integers(0, 10**7))
            as_float = draw(st.booleans())
            headers[random_case(draw, name)] = f"{value}.0" if as_float else str(value)
            expected[attribute] = value
    if draw(st.booleans()):
        reset_ms = draw(st.integers(1, 4 * 10**12))
        headers[random_case(draw, "Hour-Quota-ResetTime")] = str(reset_ms)
        expected["hour_reset_at"] = reset_ms / 1000
    headers[random_case(draw, "QuotaType")] = "Api"
    if draw(st.booleans()):
        headers["Content-Type"] = "application/json"
    return headers, expected


@given(header_sets(), st.floats(0, 2e9))
def test_every_quota_header_is_read_whatever_its_case(case, now):
    headers, expected = case
    snapshot = parse_quota_headers(headers, now=now)
    assert snapshot is not None
    assert snapshot.quota_type == "Api"
    assert snapshot.observed_at == now
    for attribute in (*NAMES, "hour_reset_at"):
        assert getattr(snapshot, attribute) == expected.get(attribute)


@given(st.sampled_from(sorted(NAMES.values())), st.text(max_size=10))
def test_junk_values_are_dropped_not_fatal(name, junk):
    snapshot = parse_quota_headers({name: junk, "QuotaType": "Api"}, now=0)
    attribute = {v: k for k, v in NAMES.items()}[name]
    value = getattr(snapshot, attribute)
    assert value is None or (isinstance(value, int) and value >= 0)


def test_no_quota_headers_means_no_snapshot():
    assert parse_quota_headers({"Content-Type": "application/json"}, now=0) is None
