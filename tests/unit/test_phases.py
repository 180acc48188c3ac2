"""Phase lines: figures are the client's counts since the start; a failure still ends."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest

from trestle_tasks.sync.finalize import finalize_run
from trestle_tasks.sync.model import RunPlan, Window
from trestle_tasks.sync.phases import FIGURE_FIELDS, Phase
from trestle_tasks.trestle.client import RequestStats


def phase_records(caplog, phase: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if getattr(r, "phase", None) == phase]


def test_figures_count_only_what_happened_after_the_start(caplog):
    stats = RequestStats(requests=7, retries=2, rate_limited=1)
    caplog.set_level(logging.INFO)
    phase = Phase(logging.getLogger("t"), "window", stats=stats,
                  context={"run_id": "r1"}).start("window started")
    stats.add(requests=3, retries=1, rate_limited=1)
    figures = phase.figures(records=40)
    phase.end("window done", figures=figures)
    assert (figures.requests, figures.retries, figures.rate_limited) == (3, 1, 1)
    start, end = phase_records(caplog, "window")
    assert (start.event, end.event, end.levelno) == ("start", "end", logging.INFO)
    assert start.run_id == end.run_id == "r1"
    assert all(hasattr(end, name) for name in FIGURE_FIELDS)
    assert end.records == 40 and end.requests == 3 and end.rate_limited == 1
    assert "40 records, 3 requests, 1 retry, 1 429," in end.getMessage()


def test_a_finalize_that_fails_still_writes_its_end_line(caplog):
    plan = RunPlan(run_id="r2", resource="Property", key_field="ListingKey", lower_ticks=None,
                   upper_ticks=10, windows=(Window(0, None, 10, 1),), lock_name="c:Property",
                   lock_owner="r2", fence=1)
    lock = SimpleNamespace(renew=lambda grant, ttl_s: True, release=lambda grant: True)

    def database_down(*args, **kwargs):
        raise OSError("database went away")

    store = SimpleNamespace(sync_log=SimpleNamespace(advance_watermark=database_down,
                                                    close_run=database_down))
    caplog.set_level(logging.INFO)
    with pytest.raises(OSError):
        finalize_run(plan, [], store=store, lock=lock)
    start, end = phase_records(caplog, "finalize")
    assert start.event == "start" and end.event == "end"
    assert end.outcome == "failed" and end.levelno == logging.WARNING
    assert "database went away" in end.getMessage() and end.run_id == "r2"
