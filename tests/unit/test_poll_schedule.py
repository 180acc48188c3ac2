"""The poll schedule: adaptive intervals, the budget's pace, and fairness between resources."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trestle_tasks.sync.poll import BUSY, CHANGED, FAILED, IDLE, NO_WATERMARK, TOO_MANY
from trestle_tasks.sync.poll_schedule import (
    BUDGET_BURST,
    ESCALATION_PAUSE_S,
    QUIET_DIVISOR,
    PollBudget,
    PollPolicy,
    ResourcePolls,
    due_order,
    next_poll_at,
    schedules,
)
from trestle_tasks.sync.poll_state import PollState

DEFAULT = PollPolicy.for_quota(8400, 0.05)  # Trestle's measured hour quota, default share


FEED = ["Property", "OpenHouse", "Member", "Office"]


def test_by_default_listings_are_polled_about_every_ten_seconds_and_the_rest_every_two_minutes():
    quiet = {r: ResourcePolls(interval_s=DEFAULT.slowest_s, due_at=0) for r in FEED}
    fastest = DEFAULT.fastest_intervals(FEED, quiet)
    # Three secondaries changing all the time take 20 % of 420 requests an hour.
    assert fastest["Office"] == pytest.approx(3 * 3600 / 420 / 0.2)
    assert 120 <= fastest["Office"] <= 130
    # The others quiet (every 5 minutes): Property has the rest of 95 % of the budget.
    assert fastest["Property"] == pytest.approx(1 / (0.95 * 420 / 3600 - 3 / 300))
    assert 9.5 <= fastest["Property"] <= 10.5
    busy = {r: ResourcePolls(interval_s=fastest[r], due_at=0) for r in FEED}
    slower = DEFAULT.fastest_intervals(FEED, busy)
    assert 10.5 <= slower["Property"] <= 11.5  # the others all changing: still ~11 s


@given(hour_quota=st.integers(180, 100_000), share=st.floats(0.001, 0.5),
       resources=st.lists(st.sampled_from([*FEED, "Media", "Teams", "Rooms"]), unique=True,
                          min_size=1),
       intervals=st.lists(st.floats(0.1, 10_000), min_size=7, max_size=7))
def test_every_resource_at_its_fastest_fits_the_budget(hour_quota, share, resources,
                                                       intervals):
    """Whatever the secondaries' intervals were, if every resource changes at every poll
    from now on, its polls plan no more than the budget (once the primary's interval is
    recomputed with the secondaries at their fastest), unless the floor or the slowest
    interval forces more."""
    policy = PollPolicy.for_quota(hour_quota, share)
    states = {r: ResourcePolls(interval_s=i, due_at=0) for r, i in zip(resources, intervals,
                                                                       strict=False)}
    fastest = policy.fastest_intervals(resources, states)
    assert all(policy.floor_s <= f <= policy.slowest_s for f in fastest.values())
    at_fastest = {r: ResourcePolls(interval_s=fastest[r], due_at=0) for r in resources}
    settled = policy.fastest_intervals(resources, at_fastest)
    planned = sum(3600 / f for f in settled.values())
    forced = any(f in (policy.floor_s, policy.slowest_s) for f in settled.values())
    assert forced or planned <= policy.budget_per_hour + 1e-6


def test_an_idle_resource_waits_a_third_of_its_quiet_time():
    state = ResourcePolls(interval_s=10, due_at=0, last_poll_at=50, last_change_at=0)
    assert state.after(IDLE, DEFAULT, 60.0, fastest_s=10).interval_s == 20.0
    assert state.after(IDLE, DEFAULT, 60.0, fastest_s=30).interval_s == 30.0
    # Quiet for an hour: the slowest interval.
    assert state.after(IDLE, DEFAULT, 3600.0, fastest_s=10).interval_s == DEFAULT.slowest_s
    assert QUIET_DIVISOR == 3.0


def test_property_goes_first_unless_another_is_a_whole_interval_later():
    states = {
        "Property": ResourcePolls(interval_s=10, due_at=95.0),  # 0.5 intervals late
        "Office": ResourcePolls(interval_s=100, due_at=0.0),  # 1.0 intervals late
    }
    assert due_order(states, 100.0) == ["Property", "Office"]
    states["Office"] = ResourcePolls(interval_s=100, due_at=-60.0)  # 1.6 intervals late
    assert due_order(states, 100.0) == ["Office", "Property"]


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


@given(
    dues=st.lists(st.floats(0.0, 1000.0), min_size=1, max_size=6),
    tat=st.floats(0.0, 1000.0),
    hour_quota=st.integers(180, 100_000),
    probe=st.floats(0.0, 1000.0),
)
def test_the_next_poll_is_at_the_first_moment_one_is_due_and_the_budget_allows_it(
        dues, tat, hour_quota, probe):
    """What the Celery task sends its next tick for: a tick then polls something, and no
    earlier tick could have (the due order and the budget say so at each moment)."""
    policy = PollPolicy.for_quota(hour_quota, 0.05)
    states = {f"R{i}": ResourcePolls(interval_s=10.0, due_at=due) for i, due in enumerate(dues)}
    budget = PollBudget(tat=tat)
    at = next_poll_at(states, budget, policy)
    assert at is not None
    assert due_order(states, at) and budget.allows(policy, at)
    if probe < at:
        assert not (due_order(states, probe) and budget.allows(policy, probe))


def test_with_nothing_polled_there_is_no_next_poll():
    assert next_poll_at({}, PollBudget(), DEFAULT) is None


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
