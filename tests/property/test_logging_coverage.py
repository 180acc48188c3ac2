"""Logging coverage: every phase of a run logs its start, its end and its
figures, and every line of the run carries the run id.

For arbitrary small feeds, window and page sizes, and with 5xx and 429 faults injected or
not, a local sync against the simulator (then a reconcile) is logged as JSON lines, every
logger at DEBUG; the test reads them back and holds each phase's figures to what the
sync log and the simulator say. The retry policy is shortened (milliseconds, Retry-After
capped) so a fault costs no real waiting.
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections import Counter
from pathlib import Path
from unittest import mock

import pytest
from hypothesis import Phase, event, given, settings
from hypothesis import strategies as st

from tests.integration.conftest import start_simulator
from tests.integration.sync_fixtures import settings_for
from trestle_tasks.cli.local import sync_local
from trestle_tasks.core.logs import ContextFilter, JsonFormatter
from trestle_tasks.core.retry import RetryPolicy
from trestle_tasks.sync.phases import FIGURE_FIELDS
from trestle_tasks.sync.reconcile import reconcile
from trestle_tasks.worker import factory
from trestle_tasks.worker.runtime import LocalRuntime

pytestmark = pytest.mark.integration
FAST_RETRY = RetryPolicy(budget_s=60, base_delay_s=0.002, max_delay_s=0.02,
                         max_retry_after_s=0.02)


class Capture(logging.Handler):
    """The lines production would write with LOG_FORMAT=json, parsed back."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(JsonFormatter())
        self.addFilter(ContextFilter())
        self.lines: list[dict] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.format(record)))


class captured_logs:
    """Every logger at DEBUG (urllib3 and the request log included) into a Capture: the
    run id must be on every line, not only on the INFO lines a worker writes by default."""

    NAMES = ("", "urllib3", "trestle_tasks.api")

    def __enter__(self) -> Capture:
        self.saved = [(lg, lg.level, lg.propagate) for lg in map(logging.getLogger, self.NAMES)]
        self.capture = Capture()
        logging.getLogger().addHandler(self.capture)
        for logger, _level, _propagate in self.saved:
            logger.setLevel(logging.DEBUG)
            logger.propagate = True
        return self.capture

    def __exit__(self, *exc: object) -> None:
        logging.getLogger().removeHandler(self.capture)
        for logger, level, propagate in self.saved:
            logger.setLevel(level)
            logger.propagate = propagate


def phase_lines(lines: list[dict], phase: str, event: str) -> list[dict]:
    return [line for line in lines if line.get("phase") == phase and line.get("event") == event]


def assert_figures(line: dict, **expected: float) -> None:
    for name in FIGURE_FIELDS:
        assert isinstance(line[name], int | float) and line[name] >= 0, (name, line)
    for name, value in expected.items():
        assert line[name] == value, (name, line)
    # records/s times the duration gives the records back, within the rounding of both
    # (duration to the millisecond, records/s to a tenth).
    rate, seconds = line["records_per_s"], line["duration_s"]
    assert abs(rate * seconds - line["records"]) <= rate * 0.0005 + 0.05 * seconds + 1e-6, line


def dispose(url: str) -> None:
    for key, store in list(factory._per_process.items()):
        if key[1] == f"store:{url}":
            store.engine.dispose()
            factory._per_process.pop(key, None)


# No shrinking: each example is a whole run (about a second), and the examples are small
# already; a failure is reported as found, with its blob to replay.
@settings(max_examples=12, phases=[Phase.explicit, Phase.reuse, Phase.generate])
@given(
    records=st.integers(0, 320),
    window_size=st.integers(100, 250),  # the smallest SYNC_WINDOW_SIZE allowed
    page_size=st.integers(20, 120),
    fault_rate=st.sampled_from([0.0, 0.1]),
    fault_seed=st.integers(0, 2**16),
    full_again=st.booleans(),
)
def test_every_phase_of_a_run_logs_start_end_and_figures(
        records, window_size, page_size, fault_rate, fault_seed, full_again):
    sim = start_simulator(records=records, seed=fault_seed % 97, retry_after_on_429=1)
    folder = tempfile.TemporaryDirectory()
    url = f"sqlite:///{Path(folder.name) / 'p17.sqlite3'}"
    try:
        config = settings_for(sim, url, LOCK_DIR=folder.name,
                              SYNC_WINDOW_SIZE=str(window_size),
                              TRESTLE_PAGE_SIZE=str(page_size))
        with mock.patch.object(factory, "retry_policy", lambda _settings: FAST_RETRY):
            # tables, and a watermark for the next run
            sync_local(LocalRuntime(config), ["Property"])
            sim.configure(rate_429=fault_rate, rate_5xx=fault_rate, fault_seed=fault_seed)
            sim.mutate("Property", count=records // 2, seed=fault_seed)
            with captured_logs() as capture:
                run = sync_local(LocalRuntime(config), ["Property"], full=full_again)[0].run
            everything = capture.lines
            lines = [line for line in everything if line["level"] != "debug"]
            event(f"windows: {min(run.windows_total or 0, 2)}, retried: {run.api_retries > 0}, "
                  f"429s: {run.api_rate_limited > 0}")
            # Every line of the run carries its run id and resource, whichever thread
            # (windows, page prefetch, planning counts) and whichever logger wrote it.
            assert everything and {line.get("run_id") for line in everything} == \
                {run.run_id}, Counter((line["logger"], line.get("run_id"))
                                      for line in everything)
            assert {line.get("resource") for line in everything} == {"Property"}
            check_run(lines, run, factory.store(config).sync_log.windows(run.run_id,
                                                                       "Property"))
            check_reconcile(config, sim)
    finally:
        dispose(url)
        sim.stop()
        folder.cleanup()


def check_run(lines: list[dict], run, windows) -> None:
    # A handful of INFO lines: two a phase, not one a record or a request; and three more
    # for a load into an empty table (indexes dropped, their build started and done).
    assert len(lines) <= 2 * (len(windows) + 2) + 3, [line["message"] for line in lines]

    (plan_start,) = phase_lines(lines, "plan", "start")
    (plan_end,) = phase_lines(lines, "plan", "end")
    assert plan_end["outcome"] == "planned" and plan_end["windows"] == len(windows)
    window_requests = sum(w.api_requests for w in windows)
    window_retries = sum(w.api_retries for w in windows)
    window_429s = sum(w.api_rate_limited for w in windows)
    assert_figures(plan_end, records=0, requests=run.api_requests - window_requests,
                   retries=run.api_retries - window_retries,
                   rate_limited=run.api_rate_limited - window_429s)

    starts = {line["window"]: line for line in phase_lines(lines, "window", "start")}
    ends = {line["window"]: line for line in phase_lines(lines, "window", "end")}
    assert len(phase_lines(lines, "window", "end")) == len(windows)
    assert set(starts) == set(ends) == {w.window_id for w in windows}
    for window in windows:
        end = ends[window.window_id]
        assert end["outcome"] == window.status
        assert_figures(end, records=window.records_fetched, requests=window.api_requests,
                       retries=window.api_retries, rate_limited=window.api_rate_limited)

    (finalize_start,) = phase_lines(lines, "finalize", "start")
    (finalize_end,) = phase_lines(lines, "finalize", "end")
    assert finalize_end["outcome"] == run.status
    assert_figures(finalize_end, records=run.records_fetched, requests=run.api_requests,
                   retries=run.api_retries, rate_limited=run.api_rate_limited)
    assert finalize_end["duration_s"] == pytest.approx(
        (run.finished_at - run.started_at).total_seconds(), abs=0.002)
    # Order: plan, then windows, then finalize.
    order = [id(line) for line in lines]
    assert order.index(id(plan_start)) < order.index(id(plan_end))
    assert all(order.index(id(plan_end)) < order.index(id(s)) for s in starts.values())
    assert all(order.index(id(e)) < order.index(id(finalize_start)) for e in ends.values())
    assert order.index(id(finalize_start)) < order.index(id(finalize_end))


def check_reconcile(config, sim) -> None:
    with captured_logs() as capture:
        run = reconcile("Property", store=factory.store(config),
                        client=LocalRuntime(config).trestle_client(),
                        lock=factory.run_lock(config),
                        lock_ttl_s=60)
    assert {line.get("run_id") for line in capture.lines} == {run.run_id}
    lines = [line for line in capture.lines if line["level"] != "debug"]
    assert len(phase_lines(lines, "reconcile", "start")) == 1
    (end,) = phase_lines(lines, "reconcile", "end")
    assert end["outcome"] == "succeeded"
    assert_figures(end, records=len(sim.keys("Property")), requests=run.api_requests,
                   retries=run.api_retries, rate_limited=run.api_rate_limited)
