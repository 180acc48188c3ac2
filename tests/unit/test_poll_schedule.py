"""The poll schedule: adaptive intervals, the budget's pace, and fairness between resources."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trestle_tasks.sync.poll import BUSY, CHANGED, FAILED, IDLE, NO_WATERMARK, TOO_MANY
from trestle_tasks.sync.poll_schedule import (
    BUDGET_BURST,
    ESCALATION_PAUSE_S,
    PollBudget,
    PollPolicy,
    ResourcePolls,
    due_order,
    schedules,
)
from trestle_tasks.sync.poll_state import PollState

DEFAULT = PollPolicy.for_quota(8400, 0.05)  # Trestle's measured hour quota, default share


def test_the_default_policy_polls_a_busy_resource_about_every_ten_seconds():
    assert DEFAULT.budget_per_hour == pytest.approx(420)
    assert DEFAULT.fastest_s == pytest.approx(3600 / 420 / 0.85)
    assert 10 <= DEFAULT.fastest_s <= 10.2
    # At that pace one resource takes 85 % of the budget: the rest is left to the others.
    assert 3600 / DEFAULT.fastest_s <= 0.85 * DEFAULT.budget_per_hour + 1e-9


@pytest.mark.parametrize(("status", "interval", "wait"), [
    pytest.param(CHANGED, DEFAULT.fastest_s, DEFAULT.fastest_s, id="changed-fastest"),
    # Its run takes the resource a moment later: the same pages are not fetched again.
    pytest.param(TOO_MANY, DEFAULT.fastest_s, ESCALATION_PAUSE_S, id="too-many-pauses"),
    pytest.param(IDLE, 60 * 1.5, 90, id="idle-stretches"),
    pytest.param(FAILED, 120, 120, id="failed-backs-off"),
    pytest.param(NO_WATERMARK, 120, 120, id="no-watermark-backs-off"),
])
def test_the_next_interval_follows_what_the_poll_found(status, interval, wait):
    state = ResourcePolls(interval_s=60, due_at=0)
    after = state.after(status, DEFAULT, 1000.0)
    assert after.interval_s == pytest.approx(interval)
    assert after.due_at == pytest.approx(1000.0 + wait)
    assert after.last_poll_at == 1000.0
    assert after.last_status == status


def test_a_busy_resource_is_looked_at_again_soon_with_its_interval_unchanged():
    state = ResourcePolls(interval_s=200, due_at=0, last_poll_at=5.0, last_status=IDLE)
    after = state.after(BUSY, DEFAULT, 1000.0)
    assert after.interval_s == 200 and after.last_poll_at == 5.0
    assert after.due_at == pytest.approx(1000.0 + DEFAULT.fastest_s)


@given(st.lists(st.sampled_from([IDLE, CHANGED, TOO_MANY, BUSY, FAILED, NO_WATERMARK]),
                max_size=60))
def test_intervals_stay_within_the_policy_whatever_polls_find(statuses):
    state = ResourcePolls.first(DEFAULT, 0.0)
    now = 0.0
    for status in statuses:
        now = state.due_at
        state = state.after(status, DEFAULT, now)
        assert DEFAULT.fastest_s - 1e-9 <= state.interval_s <= DEFAULT.slowest_s + 1e-9
        assert state.due_at > now


def test_a_quiet_resource_drifts_to_the_slowest_interval():
    state = ResourcePolls.first(DEFAULT, 0.0)
    for _ in range(30):
        state = state.after(IDLE, DEFAULT, state.due_at)
    assert state.interval_s == DEFAULT.slowest_s


@given(
    hour_quota=st.integers(180, 100_000),
    share=st.floats(0.001, 0.5),
    gaps=st.lists(st.floats(0.0, 30.0), min_size=1, max_size=400),
    costs=st.lists(st.integers(1, 4), min_size=1, max_size=400),
)
def test_polls_never_spend_more_than_their_budget(hour_quota, share, gaps, costs):
    """Whenever polls are asked for and whatever each costs, the requests charged over any
    stretch stay within the budget's pace plus the burst and one poll's overshoot."""
    policy = PollPolicy.for_quota(hour_quota, share)
    budget, now, spent = PollBudget(), 1_000_000.0, []
    for gap, cost in zip(gaps, costs, strict=False):
        now += gap
        if budget.allows(policy, now):
            budget = budget.charge(policy, now, cost)
            spent.append((now, cost))
    start = spent[0][0] if spent else now
    for begin, _ in spent:
        window = [c for at, c in spent if begin <= at <= now]
        allowed = (now - begin) / policy.request_spacing_s + BUDGET_BURST + max(costs)
        assert sum(window) <= allowed + 1e-6, (begin - start, sum(window), allowed)


def test_the_most_overdue_resource_in_its_own_intervals_goes_first():
    states = {
        "Property": ResourcePolls(interval_s=10, due_at=95.0),  # 0.5 intervals late
        "Office": ResourcePolls(interval_s=300, due_at=0.0),  # 0.33 intervals late
        "Member": ResourcePolls(interval_s=300, due_at=200.0),  # not due
    }
    assert due_order(states, 100.0) == ["Property", "Office"]


def test_a_new_resource_is_due_at_once_and_an_old_interval_is_brought_within_the_policy():
    known = {"Office": ResourcePolls(interval_s=5000, due_at=10_000.0)}
    result = schedules(["Property", "Office"], known, DEFAULT, 100.0)
    assert result["Property"].due_at == 100.0
    assert result["Office"].interval_s == DEFAULT.slowest_s
    assert result["Office"].due_at == 100.0 + DEFAULT.slowest_s


@pytest.mark.parametrize("stored", [None, b"", b"not json", b"[1, 2]",
                                    b'{"resources": {"Property": "x"}, "budget_tat": "y"}'])
def test_an_unreadable_stored_schedule_starts_afresh(stored):
    state = PollState.from_json(stored)
    assert state.resources == {} and state.budget.tat == 0.0


def test_the_stored_schedule_round_trips():
    state = PollState(PollBudget(12.5), {"Property": ResourcePolls(10.0, 20.0, 5.0, 4.0, IDLE)})
    assert PollState.from_json(state.to_json()) == state
