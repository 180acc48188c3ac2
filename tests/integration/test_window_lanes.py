"""Lanes (SYNC_WINDOW_LANES) change how many requests are in flight, nothing else: the same
records land, for at most lanes - 1 more requests a window, through the simulator over HTTP
into a real database."""

from __future__ import annotations

import pytest

from trestle_tasks.cli.local import sync_local
from trestle_tasks.worker import factory
from trestle_tasks.worker.runtime import LocalRuntime

from .conftest import start_simulator
from .sync_fixtures import canonical, create_database, drop_database, settings_for

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("dialect", ["sqlite", "mariadb"])
def test_lanes_load_the_same_records_with_more_requests_in_flight(dialect, tmp_path):
    # 100 ms a request, so that requests walked at once are seen at once by the server.
    sim = start_simulator(records=2400, seed=31, latency_ms_per_request=100)
    created = []
    try:
        served = {canonical(r) for r in sim.records("Property")}
        runs, peaks, windows = {}, {}, {}
        for lanes in (1, 4):
            url, name = create_database(dialect, tmp_path)
            created.append(name)
            settings = settings_for(sim, url, TRESTLE_PAGE_SIZE="100", SYNC_WINDOW_SIZE="1200",
                                    SYNC_WINDOW_LANES=str(lanes), LOCK_DIR=str(tmp_path))
            sim.reset_stats()
            plans = []
            result = sync_local(LocalRuntime(settings), ["Property"], full=True, concurrency=2,
                                on_plan=plans.append)[0]
            assert result.run.status == "succeeded"
            stored = {canonical(r) for r in factory.store(settings).records("Property")}
            assert stored == served  # every record once, whatever the lanes
            runs[lanes], peaks[lanes] = result.run, sim.stats()["peak_in_flight"]
            windows[lanes] = plans[0].windows
            factory.store(settings).engine.dispose()
        assert [w.lanes for w in windows[1]] == [()] * len(windows[1])
        # 12 pages a window: up to 4 lanes each (fewer where a tie spans a cut)
        assert all(1 <= len(w.lanes) <= 3 for w in windows[4]), windows[4]
        assert peaks[1] <= 2  # two windows at once, one request each
        assert peaks[4] > 2  # lanes walked at once
        extra = runs[4].api_requests - runs[1].api_requests
        assert 0 <= extra <= 3 * len(windows[4])
    finally:
        sim.stop()
        for name in created:
            drop_database(dialect, name)
