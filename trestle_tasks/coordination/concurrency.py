"""Adaptive window concurrency: under pressure the cluster runs fewer windows at once.

A window that met 429s, a slow or restarting database, or a nearly spent hourly quota
halves the number of windows allowed to run at the same time (at most once per cooldown,
so one burst of trouble is not counted by every window that saw it); each window that ran
without trouble gives one slot back, up to the configured maximum. That is additive
increase, multiplicative decrease, as TCP does it. A window without a free slot waits in
the window ledger, with no message, until one frees (sync/handout.py), so pressure
slows a backfill down instead of failing it, and no window ever runs without its slot.

Slots are held in a sorted set scored by expiry, so a worker killed mid-window frees its
slot when the expiry passes; an hour without windows forgets the shrinking.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

_ACQUIRE = """
local now = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
-- A capacity stored while more slots were allowed (fewer live workers now, polling
-- turned on) never lets more than today's maximum in.
local capacity = math.min(tonumber(redis.call('GET', KEYS[2]) or ARGV[4]), tonumber(ARGV[4]))
if redis.call('ZSCORE', KEYS[1], ARGV[1]) or redis.call('ZCARD', KEYS[1]) < capacity then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]))
  return 1
end
return 0
"""

_SHRINK = """
if redis.call('SET', KEYS[3], '1', 'NX', 'PX', ARGV[2]) == false then
  return -1
end
local capacity = tonumber(redis.call('GET', KEYS[2]) or ARGV[1])
capacity = math.max(1, math.floor(capacity / 2))
redis.call('SET', KEYS[2], capacity, 'EX', 3600)
redis.call('INCR', KEYS[4])
return capacity
"""

_GROW = """
local capacity = tonumber(redis.call('GET', KEYS[2]) or ARGV[1])
capacity = math.min(tonumber(ARGV[1]), capacity + 1)
redis.call('SET', KEYS[2], capacity, 'EX', 3600)
return capacity
"""


@dataclass(frozen=True)
class Pressure:
    """Why a window says the cluster should slow down (empty: it should not)."""

    reasons: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.reasons)


def window_pressure(outcome: Any, *, db_seconds_per_page: float | None = None,
                    quota_left_fraction: float | None = None,
                    slow_page_s: float = 5.0, low_quota_fraction: float = 0.1) -> Pressure:
    """Pressure seen by one finished window: 429s, a transient failure, a slow database,
    a nearly spent hourly quota."""
    reasons = []
    if getattr(outcome, "rate_limited", 0):
        reasons.append(f"{outcome.rate_limited} x 429")
    if getattr(outcome, "status", None) == "failed" and getattr(outcome, "retriable", False):
        reasons.append("transient failure")
    if db_seconds_per_page is not None and db_seconds_per_page > slow_page_s:
        reasons.append(f"slow database ({db_seconds_per_page:.1f} s a page)")
    if quota_left_fraction is not None and quota_left_fraction < low_quota_fraction:
        reasons.append(f"hourly quota {quota_left_fraction:.0%} left")
    return Pressure(tuple(reasons))


class RedisWindowGate:
    def __init__(self, client: Any, name: str, *, max_slots: int,
                 shrink_cooldown_s: float = 30.0, prefix: str = "trestle:windows:") -> None:
        if max_slots < 1:
            raise ValueError("a window gate needs at least one slot")
        self.max_slots = max_slots
        self.shrink_cooldown_s = shrink_cooldown_s
        base = f"{prefix}{name}"
        self._keys = [f"{base}:holders", f"{base}:capacity", f"{base}:shrunk",
                      f"{base}:shrinks"]
        self._redis = client
        self._acquire = client.register_script(_ACQUIRE)
        self._shrink = client.register_script(_SHRINK)
        self._grow = client.register_script(_GROW)

    def acquire(self, holder: str, ttl_s: float) -> bool:
        """Take (or keep) a slot for `holder`; False when all current slots are taken."""
        now_ms = int(time.time() * 1000)
        return bool(self._acquire(keys=self._keys[:2],
                                  args=[holder, now_ms, int(ttl_s * 1000), self.max_slots]))

    def release(self, holder: str) -> None:
        self._redis.zrem(self._keys[0], holder)

    def shrink(self) -> int | None:
        """Halve the slots; None when another window already did within the cooldown."""
        result = int(self._shrink(keys=self._keys,
                                  args=[self.max_slots, int(self.shrink_cooldown_s * 1000)]))
        return None if result < 0 else result

    def grow(self) -> int:
        return int(self._grow(keys=self._keys[:2], args=[self.max_slots]))

    def capacity(self) -> int:
        value = self._redis.get(self._keys[1])
        return min(int(value), self.max_slots) if value is not None else self.max_slots

    def shrinks(self) -> int:
        """How many times pressure halved the slots (for status and metrics)."""
        return int(self._redis.get(self._keys[3]) or 0)

    def holders(self) -> int:
        return int(self._redis.zcount(self._keys[0], int(time.time() * 1000), "+inf"))


class SlotLease:
    """A gate slot held by work that is not a window (a reconcile), renewed every third of
    its TTL while the work goes on and freed at its end; a killed worker's slot expires."""

    def __init__(self, gate: RedisWindowGate, holder: str, ttl_s: float) -> None:
        self._gate, self._holder, self._ttl_s = gate, holder, ttl_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"slot-{holder}", daemon=True)

    def __enter__(self) -> SlotLease:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        try:
            self._gate.release(self._holder)
        except Exception as error:  # Redis away: the slot expires by itself
            log.warning("could not free slot %s: %s", self._holder, type(error).__name__)

    def _run(self) -> None:
        while not self._stop.wait(self._ttl_s / 3):
            try:
                self._gate.acquire(self._holder, self._ttl_s)
            except Exception as error:  # an outage: the TTL covers a missed renewal or two
                log.warning("could not renew slot %s: %s", self._holder, type(error).__name__)
