"""Messages that do not grow with the run: a window's message carries the plan's header and
its own window, whatever the number of windows (issue 11, item 5)."""

from __future__ import annotations

from kombu.utils.json import dumps

from trestle_tasks.sync.model import RunPlan, Window


def a_plan(windows: int) -> RunPlan:
    return RunPlan(run_id="20261201T020314-5f0c2a9e", resource="Property",
                   key_field="ListingKey", lower_ticks=638_000_000_000_000_000,
                   upper_ticks=639_000_000_000_000_000,
                   windows=tuple(Window(i, 638_000_000_000_000_000 + i,
                                        638_000_000_000_000_001 + i, 20_000)
                                 for i in range(windows)),
                   lock_name="Property", lock_owner="20261201T020314-5f0c2a9e", fence=42,
                   planning_requests=4, notes=("a note",))


def window_message(plan: RunPlan, window: Window) -> str:
    from trestle_tasks.worker.tasks import sync_window_task

    return dumps(dict(sync_window_task.s(plan.header(), window.to_dict(), 1)))


def test_a_window_message_is_the_same_size_in_a_run_of_3_or_2000_windows():
    small, large = a_plan(3), a_plan(2000)
    sizes = {len(window_message(plan, plan.windows[-1])) for plan in (small, large)}
    assert max(sizes) - min(sizes) <= 4  # the window index's digits
    assert max(sizes) < 1000
    # The header round-trips with the windows read back from the ledger.
    assert RunPlan.from_header(large.header(), large.windows) == large
