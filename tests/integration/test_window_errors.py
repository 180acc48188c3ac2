"""A bug is not a transient failure: an exception the code does not know fails the window at
once, with its traceback logged, and none of the three retry layers (the client's, the
window's, the whole run's) tries it again; a 5xx outage is retried by all of them."""

from __future__ import annotations

import logging

import pytest

from trestle_tasks.coordination.db_lock import DatabaseRunLock
from trestle_tasks.core.errors import TransientServerError
from trestle_tasks.store.sync_log import FAILED
from trestle_tasks.sync.plan import WindowSizing, plan_run
from trestle_tasks.sync.run_retry import run_retry_delay
from trestle_tasks.sync.schema import ensure_tables
from trestle_tasks.sync.window import sync_window
from trestle_tasks.worker import factory
from trestle_tasks.worker.runtime import LocalRuntime

from .conftest import start_simulator
from .sync_fixtures import settings_for

pytestmark = pytest.mark.integration


class BrokenClient:
    """The real client, except that fetching a page raises `error` (and counts calls)."""

    def __init__(self, client, error: BaseException) -> None:
        self._client, self._error, self.calls = client, error, 0

    def get_page(self, *args, **kwargs):
        self.calls += 1
        raise self._error

    def __getattr__(self, name):
        return getattr(self._client, name)


@pytest.mark.parametrize(("error", "retriable"), [
    pytest.param(TypeError("unsupported operand type(s) for +: 'int' and 'str'"), False,
                 id="TypeError"),
    pytest.param(KeyError("ListingKey"), False, id="KeyError"),
    pytest.param(TransientServerError("503 Service Unavailable", status=503), True,
                 id="5xx"),
])
def test_an_unknown_error_fails_the_window_at_once(tmp_path, caplog, error, retriable):
    sim = start_simulator(records=30, seed=5)
    try:
        settings = settings_for(sim, f"sqlite:///{tmp_path / 'bug.sqlite3'}",
                                TRESTLE_RESOURCES="Property")
        store = factory.store(settings)
        client = LocalRuntime(settings).trestle_client()
        plan = plan_run("Property", store=store, client=client,
                        lock=DatabaseRunLock(store.engine), lock_ttl_s=60,
                        sizing=WindowSizing(), run_id="bug-run",
                        prepare=lambda: ensure_tables(store, client, ["Property"]))
        broken = BrokenClient(client, error)
        with caplog.at_level(logging.ERROR):
            outcome = sync_window(plan, plan.windows[0], store=store, client=broken)
        assert outcome.status == FAILED
        assert outcome.retriable is retriable
        assert broken.calls == 1  # the window layer did not try again by itself
        # The whole-run layer: a bug is never retried, an outage is.
        delay = run_retry_delay(plan, "failed", [outcome], base_delay_s=1)
        assert (delay is not None) is retriable
        bug_logged = [r for r in caplog.records if "a bug, not retried" in r.getMessage()]
        assert bool(bug_logged) is not retriable
        if bug_logged:
            assert bug_logged[0].exc_info and bug_logged[0].exc_info[0] is type(error)
    finally:
        factory._per_process.clear()
        sim.stop()
