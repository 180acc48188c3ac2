"""Freshness figures and the alerts they raise."""

from __future__ import annotations

import pytest

from trestle_tasks.monitoring.alerts.model import FRESHNESS
from trestle_tasks.monitoring.alerts.rules import Thresholds, freshness_alerts
from trestle_tasks.monitoring.freshness import clock_warning, percentile, summarize
from trestle_tasks.trestle.client import clock_offset_s


def test_percentiles_are_nearest_rank():
    values = sorted(float(v) for v in range(1, 101))
    assert percentile(values, 0.5) == 50
    assert percentile(values, 0.95) == 95
    assert percentile([], 0.5) is None


def test_records_stamped_in_our_future_are_counted_as_skew_not_hidden():
    figures = summarize("Property", [3.0, -2.5, 4.0, -0.5])
    assert figures.samples == 4
    assert figures.ahead == 2 and figures.ahead_max_s == pytest.approx(2.5)
    assert figures.p50_s == -0.5  # kept as measured, never folded into zero


def test_a_slow_p95_alerts_and_a_fast_one_does_not():
    limits = Thresholds(freshness_p95_s=15)
    slow = summarize("Property", [5.0] * 90 + [40.0] * 10)
    fast = summarize("Office", [5.0] * 100)
    alerts = freshness_alerts([slow, fast], limits)
    assert [(a.kind, a.resource) for a in alerts] == [(FRESHNESS, "Property")]
    assert "40" in alerts[0].title


def test_a_clock_ahead_of_ours_alerts():
    alerts = freshness_alerts([summarize("Property", [1.0, -3.0])], Thresholds())
    assert len(alerts) == 1 and "ahead" in alerts[0].title


@pytest.mark.parametrize(("offset", "settle", "expected"), [
    pytest.param(None, 0, None, id="no-header"),
    pytest.param(-0.8, 0, None, id="agree"),
    pytest.param(-1.9, 0, None, id="whole-second-date-and-latency"),
    pytest.param(-6.2, 0, "behind", id="behind"),
    pytest.param(-6.2, 10, None, id="behind-within-the-settle"),
    pytest.param(4.0, 0, "ahead", id="ahead"),
])
def test_only_a_clock_offset_that_matters_is_reported(offset, settle, expected):
    warning = clock_warning(offset, settle)
    assert (expected is None and warning is None) or (expected in (warning or ""))


@pytest.mark.parametrize("header", [None, "", "garbage", "Sun, 06 Dec 2026 06:00:00",
                                    "Mon, 01 Jan 1990 00:00:00 GMT", "x" * 500])
def test_a_date_header_that_cannot_be_trusted_gives_no_offset(header):
    assert clock_offset_s(header, 1_796_537_959.0) is None


def test_a_date_header_gives_the_server_clock_minus_ours():
    assert clock_offset_s("Sun, 06 Dec 2026 06:19:09 GMT", 1_796_537_959.5) == \
        pytest.approx(-10.5)
