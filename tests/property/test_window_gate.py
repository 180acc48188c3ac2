"""The adaptive window gate against a model, on the real Redis.

Whatever the sequence of acquisitions, releases, pressure and relief: no more holders than
the current capacity ever hold slots, capacity stays within [1, max], pressure halves it
(once per cooldown), relief adds one back, and a holder that asks again keeps its slot.
"""

from __future__ import annotations

import time
import uuid

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from tests.redis_space import run_key, shared_client
from trestle_tasks.coordination.concurrency import RedisWindowGate, window_pressure
from trestle_tasks.sync.model import WindowOutcome

pytestmark = pytest.mark.integration
REDIS = shared_client()  # the gates' keys are this run's own: run_key("gate", "")
MAX_SLOTS = 4
HOLDERS = [f"task-{i}" for i in range(6)]


class GateMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.gate = RedisWindowGate(REDIS, uuid.uuid4().hex, max_slots=MAX_SLOTS,
                                    shrink_cooldown_s=3600, prefix=run_key("gate", ""))
        self.capacity = MAX_SLOTS
        self.held: set[str] = set()
        self.cooling = False

    @rule(holder=st.sampled_from(HOLDERS))
    def acquire(self, holder):
        granted = self.gate.acquire(holder, ttl_s=60)
        expected = holder in self.held or len(self.held) < self.capacity
        assert granted == expected
        if granted:
            self.held.add(holder)

    @rule(holder=st.sampled_from(HOLDERS))
    def release(self, holder):
        self.gate.release(holder)
        self.held.discard(holder)

    @rule()
    def pressure(self):
        result = self.gate.shrink()
        if self.cooling:
            assert result is None  # one burst of trouble halves once
        else:
            self.capacity = max(1, self.capacity // 2)
            assert result == self.capacity
            self.cooling = True

    @rule()
    def relief(self):
        self.capacity = min(MAX_SLOTS, self.capacity + 1)
        assert self.gate.grow() == self.capacity

    @rule()
    def cooldown_passes(self):
        REDIS.delete(self.gate._keys[2])
        self.cooling = False

    @invariant()
    def within_bounds(self):
        assert 1 <= self.gate.capacity() <= MAX_SLOTS
        assert self.gate.capacity() == self.capacity
        assert self.gate.holders() == len(self.held)


GateMachine.TestCase.settings = settings(max_examples=30, stateful_step_count=25,
                                         deadline=None)
test_gate_matches_its_model = GateMachine.TestCase


def test_an_expired_holder_frees_its_slot():
    gate = RedisWindowGate(REDIS, uuid.uuid4().hex, max_slots=1, prefix=run_key("gate", ""))
    assert gate.acquire("killed-worker", ttl_s=0.2)
    assert not gate.acquire("next", ttl_s=60)
    time.sleep(0.3)
    assert gate.acquire("next", ttl_s=60)


@pytest.mark.parametrize(("outcome", "db_s", "quota_left", "expected"), [
    (WindowOutcome("w", 0, "succeeded"), 0.5, 0.8, ()),
    (WindowOutcome("w", 0, "succeeded", rate_limited=3), None, None, ("3 x 429",)),
    (WindowOutcome("w", 0, "failed", retriable=True), None, None, ("transient failure",)),
    (WindowOutcome("w", 0, "failed", retriable=False), None, None, ()),
    (WindowOutcome("w", 0, "succeeded"), 9.0, None, ("slow database (9.0 s a page)",)),
    (WindowOutcome("w", 0, "succeeded"), None, 0.05, ("hourly quota 5% left",)),
], ids=["calm", "429s", "transient", "fatal-is-not-pressure", "slow-db", "low-quota"])
def test_pressure_signals(outcome, db_s, quota_left, expected):
    pressure = window_pressure(outcome, db_seconds_per_page=db_s, quota_left_fraction=quota_left)
    assert pressure.reasons == expected
    assert bool(pressure) == bool(expected)


def test_a_capacity_stored_under_a_larger_maximum_admits_no_more_than_today_s():
    """Fewer live workers, or polling turned on, lower the gate's maximum below a capacity
    grown earlier: the lower one holds."""
    name, prefix = uuid.uuid4().hex, run_key("gate", "")
    wide = RedisWindowGate(REDIS, name, max_slots=8, prefix=prefix)
    for _ in range(8):
        wide.grow()
    narrow = RedisWindowGate(REDIS, name, max_slots=3, prefix=prefix)
    granted = [narrow.acquire(f"w{i}", ttl_s=60) for i in range(5)]
    assert granted == [True, True, True, False, False]
    assert narrow.capacity() == 3
