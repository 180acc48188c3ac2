"""Freshness figures and the alerts they raise."""

from __future__ import annotations

import pytest

from trestle_tasks.monitoring.alerts.model import FRESHNESS
from trestle_tasks.monitoring.alerts.rules import Thresholds, freshness_alerts
from trestle_tasks.monitoring.freshness import percentile, summarize


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
