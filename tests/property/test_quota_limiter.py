"""The quota limiter: paced within every minute window, and Redis agrees with Python."""

from __future__ import annotations

import uuid

import pytest
import redis
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.redis_space import redis_url, run_key
from trestle_tasks.coordination.quota import (
    DEFAULT_BURST,
    MINUTE_MS,
    PRIORITY_RESERVE,
    LocalQuotaLimiter,
    PacingState,
    RedisQuotaLimiter,
    burst_for,
    initial_interval_ms,
)
from trestle_tasks.trestle.quota_headers import QuotaSnapshot

REDIS_URL = redis_url()


class FixedWindowServer:
    """A model of a server counting requests per wall-clock minute, as the simulator does."""

    def __init__(self, limit: int, already_used: int = 0):
        self.limit = limit
        self.used: dict[int, int] = {}
        self.first_window_used = already_used
        self.rejected_windows: list[int] = []

    def request(self, now_ms: float) -> QuotaSnapshot:
        window = int(now_ms // MINUTE_MS)
        if not self.used:
            self.used[window] = self.first_window_used
        count = self.used.get(window, 0)
        if count >= self.limit:
            self.rejected_windows.append(window)
        else:
            self.used[window] = count + 1
        available = self.limit - self.used[window]
        return QuotaSnapshot(observed_at=now_ms / 1000, minute_limit=self.limit,
                             minute_available=available, sent_at=now_ms / 1000)


@settings(max_examples=60)
@given(
    limit=st.integers(5, 600),
    already_used=st.integers(0, 600),
    start_ms=st.integers(0, 10**12),
    workers=st.integers(1, 8),
    latency_ms=st.integers(0, 3000),
    requests_wanted=st.integers(1, 400),
)
def test_paced_workers_never_exceed_a_fixed_minute_window(
    limit, already_used, start_ms, workers, latency_ms, requests_wanted
):
    already_used = min(already_used, limit)
    server = FixedWindowServer(limit, already_used)
    state = PacingState()
    now = float(start_ms)
    # Each worker: acquire, send (observed after `latency_ms`), repeat.
    next_free = [now] * workers
    pending: list[tuple[float, QuotaSnapshot]] = []
    sent = 0
    while sent < requests_wanted:
        worker = min(range(workers), key=lambda w: next_free[w])
        now = max(now, next_free[worker])
        for arrival, snapshot in sorted((p for p in pending if p[0] <= now), key=lambda p: p[0]):
            state.observe(arrival, snapshot.minute_limit, snapshot.minute_available, None, None,
                          sent_ms=snapshot.sent_at * 1000)
        pending = [p for p in pending if p[0] > now]
        wait = state.acquire(now)
        if wait > 0:
            # At epoch-millisecond magnitudes a tiny wait would not move a float clock.
            next_free[worker] = now + max(wait, 0.01)
            continue
        snapshot = server.request(now)
        pending.append((now + latency_ms, snapshot))
        next_free[worker] = now + latency_ms
        sent += 1
    # Until answers arrive the limiter cannot know the limit or what others already used
    # in the window it starts in; in every later window, never a 429.
    first_window = int(start_ms // MINUTE_MS)
    assert all(window == first_window for window in server.rejected_windows)


@settings(max_examples=40)
@given(limit=st.integers(10, 1000), cap_share=st.floats(0.01, 1.0),
       start_ms=st.integers(0, 10**12), minutes=st.integers(2, 5))
def test_a_cap_below_the_quota_holds_in_every_minute(limit, cap_share, start_ms, minutes):
    """TRESTLE_QUOTA_PER_MINUTE under the server's limit: a caller asking without pause,
    told the server's (higher) limit by every answer, sends at most the cap in any
    wall-clock minute, from the first on, and uses it: (cap - burst) a minute at least."""
    cap = max(1, int(limit * cap_share))
    state = PacingState(interval_ms=initial_interval_ms(DEFAULT_BURST, cap))
    now = float(start_ms)
    sent: dict[int, int] = {}
    # A second past the last minute: a request due at a minute's very end (float steps
    # put it a hair past the boundary) belongs to a minute the loop has seen whole.
    while now < start_ms + minutes * MINUTE_MS + 1000:
        wait = state.acquire(now)
        if wait:
            now += max(wait, 0.01)
            continue
        window = int(now // MINUTE_MS)
        sent[window] = sent.get(window, 0) + 1
        state.observe(now, limit, limit - sent[window], None, None, cap)
    assert max(sent.values()) <= max(cap, DEFAULT_BURST)
    full_windows = [n for w, n in sent.items()
                    if start_ms <= w * MINUTE_MS and (w + 1) * MINUTE_MS <= now]
    assert all(n >= max(cap - burst_for(cap), 1) for n in full_windows)


@settings(max_examples=30)
@given(limit=st.integers(10, 1000), start_ms=st.integers(0, 10**12), count=st.integers(1, 3000))
def test_full_speed_uses_the_quota(limit, start_ms, count):
    """A single busy caller gets (limit - burst) requests a minute: the quota is used fully."""
    state = PacingState()
    state.observe(start_ms, limit, limit, None, None)
    now = float(start_ms)
    granted = []
    while len(granted) < count:
        wait = state.acquire(now)
        if wait:
            now += max(wait, 0.01)
        else:
            granted.append(now)
    elapsed_min = (granted[-1] - granted[0]) / MINUTE_MS
    expected_min = max(count - state.burst, 0) / (limit - state.burst)
    assert elapsed_min == pytest.approx(expected_min, rel=1e-3, abs=1e-3)


events = st.lists(
    st.tuples(
        st.integers(0, 120_000),  # ms since the previous event
        st.sampled_from(["acquire", "acquire-priority", "observe", "penalize"]),
        st.integers(1, 1000),  # minute limit
        st.integers(0, 1000),  # minute available
        st.one_of(st.none(), st.integers(0, 10_000)),  # hour available
        st.one_of(st.none(), st.integers(1, 30_000)),  # retry-after ms
        st.one_of(st.none(), st.integers(0, 90_000)),  # how long ago the request was sent
    ),
    max_size=40,
)


class FakeClock:
    def __init__(self, start_s: float):
        self.now = start_s

    def __call__(self) -> float:
        return self.now


@settings(max_examples=40)
@given(events, st.integers(1_600_000_000, 1_900_000_000),
       st.one_of(st.none(), st.integers(1, 1000), st.floats(1, 1000)))
def test_redis_and_local_limiters_decide_alike(sequence, start_s, cap):
    client = redis.Redis.from_url(REDIS_URL)
    key = run_key("quota", uuid.uuid4().hex)
    clock = FakeClock(float(start_s))
    shared = RedisQuotaLimiter(client, key, clock=clock, cap_per_minute=cap)
    local = LocalQuotaLimiter(clock=clock, cap_per_minute=cap)
    try:
        for gap_ms, kind, limit, available, hour_available, retry_after_ms, age_ms in sequence:
            clock.now += gap_ms / 1000
            if kind.startswith("acquire"):
                priority = kind == "acquire-priority"
                assert shared.try_acquire(priority) == pytest.approx(
                    local.try_acquire(priority), abs=1e-3)
            elif kind == "observe":
                snapshot = QuotaSnapshot(observed_at=clock.now, minute_limit=limit,
                                         minute_available=available,
                                         hour_available=hour_available,
                                         hour_reset_at=clock.now + 1800,
                                         sent_at=(None if age_ms is None
                                                  else clock.now - age_ms / 1000))
                shared.observe(snapshot)
                local.observe(snapshot)
            else:
                seconds = retry_after_ms / 1000 if retry_after_ms else None
                shared.penalize(seconds)
                local.penalize(seconds)
        assert shared.try_acquire() == pytest.approx(local.try_acquire(), abs=1e-3)
    finally:
        client.delete(key)
        client.close()


@settings(max_examples=60)
@given(minute=st.integers(25_000_000, 30_000_000), sent_before_ms=st.integers(1, 20_000),
       read_after_ms=st.integers(1, 50_000), available=st.integers(0, 3))
def test_an_answer_read_after_the_minute_it_was_counted_in_does_not_stop_the_next(
        minute, sent_before_ms, read_after_ms, available):
    """Sent before a minute's end and read after it, an answer saying that minute is spent
    (in a long poll, a slow page) blocks nobody: the new minute is fresh. Read before the
    boundary, it blocks until the boundary, as before."""
    boundary_ms = minute * MINUTE_MS
    sent_ms = boundary_ms - sent_before_ms
    for state in (PacingState(), None):
        if state is None:  # the cluster's limiter, the same rule in Lua
            client = redis.Redis.from_url(REDIS_URL)
            key = run_key("quota", uuid.uuid4().hex)
            clock = FakeClock((boundary_ms + read_after_ms) / 1000)
            limiter = RedisQuotaLimiter(client, key, clock=clock)
            try:
                limiter.observe(QuotaSnapshot(observed_at=clock.now, minute_limit=280,
                                              minute_available=available, hour_available=5000,
                                              sent_at=sent_ms / 1000))
                assert limiter.try_acquire() == 0
            finally:
                client.delete(key)
                client.close()
            continue
        state.observe(boundary_ms + read_after_ms, 280, available, 5000, None,
                      sent_ms=sent_ms)
        assert state.acquire(boundary_ms + read_after_ms) == 0
    early = PacingState()
    early.observe(sent_ms, 280, available, 5000, None, sent_ms=sent_ms)
    assert early.acquire(sent_ms) == pytest.approx(boundary_ms - sent_ms)


@settings(max_examples=40)
@given(limit=st.integers(10, 1000), start_ms=st.integers(0, 10**12),
       busy_for_ms=st.integers(0, 5 * MINUTE_MS), polls=st.integers(1, 20))
def test_a_poll_goes_ahead_of_a_backfill_keeping_the_limiter_busy(limit, start_ms,
                                                                 busy_for_ms, polls):
    """Runs asking without pause leave PRIORITY_RESERVE of the burst: a poll arriving at
    any moment waits at most one pace interval (the reserve refills at the pace), and the
    minute windows still hold no more than the pace allows, polls included."""
    state = PacingState()
    state.observe(start_ms, limit, limit, None, None)
    now, sent, poll_waits = float(start_ms), {}, []
    poll_at = [start_ms + busy_for_ms + i * 5 * state.interval_ms for i in range(polls)]
    while poll_at or now < start_ms + busy_for_ms:
        if poll_at and now >= poll_at[0]:
            wait = state.acquire(now)  # a poll: priority, nothing reserved
            if wait == 0:
                poll_waits.append(now - poll_at.pop(0))
                sent[int(now // MINUTE_MS)] = sent.get(int(now // MINUTE_MS), 0) + 1
                continue
        wait = state.acquire(now, PRIORITY_RESERVE)  # the backfill, always asking
        if wait == 0:
            sent[int(now // MINUTE_MS)] = sent.get(int(now // MINUTE_MS), 0) + 1
            continue
        now += max(min(wait, (poll_at[0] - now) if poll_at and poll_at[0] > now else wait),
                   0.01)
    assert max(poll_waits) <= state.interval_ms + 1.0
    assert max(sent.values()) <= limit


def test_a_429_blocks_every_worker_of_the_credential():
    client = redis.Redis.from_url(REDIS_URL)
    key = run_key("quota", uuid.uuid4().hex)
    clock = FakeClock(1_700_000_000.0)
    worker_a = RedisQuotaLimiter(client, key, clock=clock)
    worker_b = RedisQuotaLimiter(client, key, clock=clock)
    try:
        assert worker_a.try_acquire() == 0
        worker_a.penalize(7.0)
        assert worker_b.try_acquire() == pytest.approx(7000, abs=1)
        clock.now += 7.001
        assert worker_b.try_acquire() == 0
    finally:
        client.delete(key)
        client.close()


def test_a_capped_feeds_cluster_limiter_paces_at_its_cap_not_the_servers_limit():
    """TRESTLE_QUOTA_PER_MINUTE reaches the limiter the workers share (built by the
    factory from a feed's settings, in Redis): told the server allows 600 a minute, it
    still paces at the cap of 50 (a burst of 2, then one every 60 s / 48)."""
    from trestle_tasks.core.feeds import load_feeds
    from trestle_tasks.worker import factory

    feeds = load_feeds({
        "TRESTLE_FEEDS": "capped", "FEED_CAPPED_TRESTLE_CLIENT_ID": f"cap-{uuid.uuid4().hex}",
        "FEED_CAPPED_TRESTLE_CLIENT_SECRET": "s", "FEED_CAPPED_TRESTLE_QUOTA_PER_MINUTE": "50",
        "FEED_CAPPED_DATABASE_URL": "sqlite:///capped.sqlite3", "REDIS_URL": REDIS_URL},
        env_file=None)
    limiter = factory.redis_quota_limiter(feeds["capped"])
    try:
        limiter.observe(QuotaSnapshot(observed_at=0, minute_limit=600, minute_available=599))
        # Priority requests: the whole burst (runs' requests leave part of it to polls).
        waits = [limiter.try_acquire(priority=True) for _ in range(3)]
        assert waits[:2] == [0.0, 0.0]
        assert waits[2] == pytest.approx(MINUTE_MS / 48, abs=200)
        assert limiter.state()["minute_limit"] == "600.0"  # what the server said, as said
    finally:
        redis.Redis.from_url(REDIS_URL).delete(limiter.key)  # type: ignore[attr-defined]
