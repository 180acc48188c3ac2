"""The quota limiter: every request of one credential, from every worker, asks it first.

Trestle's quota belongs to the credential, so the limiter's state lives in Redis and is
changed atomically by Lua. It paces requests (GCRA: a small burst, then one request every
`interval`) at a rate sized from the quota headers of every response, so a backfill uses
the quota fully without meeting a 429; it stops until the period resets when the headers
say a period (minute, hour) is spent (another client of the same credential may be
spending it), and a 429 blocks everyone for the server's Retry-After or until the next minute.

Pacing at (limit - burst) per minute keeps any fixed or rolling one-minute period under the
limit, whatever the burst. The burst is a twentieth of the minute limit (at least 2): a
run's first requests (a census, the first page of every window and lane) go at once
instead of one every interval, which is most of a short run's time, and a long backfill
still gets 95 % of the quota. When the minutes reset is unknown (Trestle sends only the
hour's reset time), the limiter assumes wall-clock minutes; a wrong guess costs one 429,
which then blocks properly.

An operator may cap a credential below what the server allows (`cap_per_minute`: a
credential shared with another application, or a feed kept to a share of it): the pace is
then sized from the lower of the server's limit and the cap, before any response too.

`LocalQuotaLimiter` runs the same state machine in-process for `sync --local` and `demo`,
and a test holds the two to identical decisions.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from trestle_tasks.trestle.quota_headers import QuotaSnapshot

if TYPE_CHECKING:
    import redis

MINUTE_MS = 60_000
HOUR_MS = 3_600_000
# Before any response has told us the real limit: Trestle's published query baseline.
DEFAULT_PER_MINUTE = 180
MIN_BURST = 2
BURST_SHARE = 20  # the burst is 1/BURST_SHARE of the minute limit


def burst_for(minute_limit: float) -> int:
    """Requests that may go at once, before pacing, under a quota of `minute_limit`."""
    return max(MIN_BURST, int(minute_limit) // BURST_SHARE)


def paced_limit(minute_limit: float, cap_per_minute: float | None) -> float:
    """The minute limit the pace is sized from: the server's, or the operator's cap when
    it is lower."""
    return minute_limit if cap_per_minute is None else min(minute_limit, cap_per_minute)


def initial_interval_ms(burst: int, cap_per_minute: float | None) -> float:
    """The pace before any response has told the real limit."""
    return MINUTE_MS / max(paced_limit(DEFAULT_PER_MINUTE, cap_per_minute) - burst, 1)


# Before any response has told the real limit (which may be far below the published
# baseline, a test double's or a shared account's), the cautious minimum.
DEFAULT_BURST = MIN_BURST


@dataclass
class PacingState:
    """The limiter's state machine, pure; times in epoch milliseconds."""

    interval_ms: float = MINUTE_MS / (DEFAULT_PER_MINUTE - DEFAULT_BURST)
    burst: int = DEFAULT_BURST
    tat_ms: float = 0.0  # theoretical arrival time of the next request
    blocked_until_ms: float = 0.0

    def acquire(self, now_ms: float, reserve: int = 0) -> float:
        """0 when a request may go now (and it is counted), else milliseconds to wait.
        `reserve`: requests of the burst this one must leave to priority requests."""
        if now_ms < self.blocked_until_ms:
            return self.blocked_until_ms - now_ms
        tat = max(self.tat_ms, now_ms)
        tolerance = (self.burst - 1 - held_back(self.burst, reserve)) * self.interval_ms
        if tat - now_ms > tolerance:
            return tat - now_ms - tolerance
        self.tat_ms = tat + self.interval_ms
        return 0.0

    def observe(
        self,
        now_ms: float,
        minute_limit: int | None,
        minute_available: int | None,
        hour_available: int | None,
        hour_reset_ms: float | None,
        cap_per_minute: float | None = None,
        sent_ms: float | None = None,
    ) -> None:
        """Resize from one response's quota headers (and the operator's cap, if any).

        The counts are those of the minute (hour) the request was counted in, the one it
        was sent in: an answer sent before a boundary and read after it says the last
        minute is spent, and must not stop every request until the end of this one."""
        counted_ms = min(sent_ms, now_ms) if sent_ms is not None else now_ms
        if minute_limit is not None and minute_limit > 0:
            paced = paced_limit(minute_limit, cap_per_minute)
            self.burst = burst_for(paced)
            per_minute = max(paced - self.burst, 1)
            self.interval_ms = MINUTE_MS / per_minute
        if minute_available is not None and minute_available <= self.burst:
            self._block(next_boundary(counted_ms, MINUTE_MS))
        if hour_available is not None and hour_available <= self.burst:
            reset = hour_reset_ms if hour_reset_ms and hour_reset_ms > now_ms else None
            self._block(reset or next_boundary(counted_ms, HOUR_MS))

    def penalize(self, now_ms: float, retry_after_ms: float | None) -> None:
        """A 429: nobody sends until the server's advice, or the next minute, has passed."""
        self._block(now_ms + retry_after_ms if retry_after_ms else next_boundary(now_ms, MINUTE_MS))

    def _block(self, until_ms: float) -> None:
        self.blocked_until_ms = max(self.blocked_until_ms, until_ms)
        self.tat_ms = max(self.tat_ms, until_ms)


# Requests of the burst a run's requests leave to polls (priority requests): a backfill
# that keeps the limiter busy delays a poll by one pace interval at most, not by the queue
# of windows ahead of it. The steady pace is the same for both.
PRIORITY_RESERVE = 2


def held_back(burst: int, reserve: int) -> int:
    """The part of `reserve` a burst of `burst` holds back: runs keep a burst of
    MIN_BURST at least (at the smallest caps, polls queue with them)."""
    return max(0, min(reserve, burst - MIN_BURST))


def next_boundary(now_ms: float, period_ms: int) -> float:
    return (now_ms // period_ms + 1) * period_ms


# The same state machine, atomically in Redis. Keep it in step with PacingState.
_ACQUIRE = """
local function exact(x) return string.format('%.17g', x) end
local now = tonumber(ARGV[1])
local state = redis.call('HMGET', KEYS[1], 'interval_ms', 'burst', 'tat_ms', 'blocked_until_ms')
local interval = tonumber(state[1]) or tonumber(ARGV[2])
local burst = tonumber(state[2]) or tonumber(ARGV[3])
local tat = tonumber(state[3]) or 0
local blocked = tonumber(state[4]) or 0
if now < blocked then return exact(blocked - now) end
if tat < now then tat = now end
local reserve = tonumber(ARGV[4]) or 0
local min_burst = tonumber(ARGV[5]) or 2
if reserve > burst - min_burst then reserve = burst - min_burst end
if reserve < 0 then reserve = 0 end
local tolerance = (burst - 1 - reserve) * interval
if tat - now > tolerance then return exact(tat - now - tolerance) end
redis.call('HSET', KEYS[1], 'interval_ms', exact(interval), 'burst', burst,
           'tat_ms', exact(tat + interval))
redis.call('PEXPIRE', KEYS[1], 7200000)
return '0'
"""

_OBSERVE = """
local function exact(x) return string.format('%.17g', x) end
local now = tonumber(ARGV[1])
local minute_limit = tonumber(ARGV[2])
local minute_available = tonumber(ARGV[3])
local hour_available = tonumber(ARGV[4])
local hour_reset = tonumber(ARGV[5])
local state = redis.call('HMGET', KEYS[1], 'interval_ms', 'burst', 'tat_ms', 'blocked_until_ms')
local interval = tonumber(state[1]) or tonumber(ARGV[6])
local burst = tonumber(state[2]) or tonumber(ARGV[7])
local tat = tonumber(state[3]) or 0
local blocked = tonumber(state[4]) or 0
local function block(untilms)
  if untilms > blocked then blocked = untilms end
  if untilms > tat then tat = untilms end
end
-- The minute (hour) the request was counted in: the one it was sent in (see observe()).
local counted = tonumber(ARGV[13]) or now
if counted > now then counted = now end
local function boundary(period)
  return (math.floor(counted / period) + 1) * period
end
if minute_limit and minute_limit > 0 then
  burst = tonumber(ARGV[11])
  local per_minute = tonumber(ARGV[12]) - burst
  if per_minute < 1 then per_minute = 1 end
  interval = 60000 / per_minute
end
if minute_available and minute_available <= burst then block(boundary(60000)) end
if hour_available and hour_available <= burst then
  if hour_reset and hour_reset > now then block(hour_reset) else block(boundary(3600000)) end
end
if ARGV[8] == 'penalize' then
  local retry_after = tonumber(ARGV[9])
  if retry_after and retry_after > 0 then block(now + retry_after) else block(boundary(60000)) end
end
redis.call('HSET', KEYS[1], 'interval_ms', exact(interval), 'burst', burst,
           'tat_ms', exact(tat), 'blocked_until_ms', exact(blocked))
-- What the server last said, for `trestle-etl status` (not used in decisions).
if minute_limit then redis.call('HSET', KEYS[1], 'minute_limit', ARGV[2]) end
if minute_available then redis.call('HSET', KEYS[1], 'minute_available', ARGV[3]) end
if hour_available then redis.call('HSET', KEYS[1], 'hour_available', ARGV[4]) end
if hour_reset then redis.call('HSET', KEYS[1], 'hour_reset_ms', ARGV[5]) end
if ARGV[10] ~= '' then redis.call('HSET', KEYS[1], 'hour_limit', ARGV[10]) end
if ARGV[8] == 'penalize' then redis.call('HINCRBY', KEYS[1], 'rate_limited', 1) end
redis.call('HSET', KEYS[1], 'observed_ms', ARGV[1])
redis.call('PEXPIRE', KEYS[1], 7200000)
return 'ok'
"""


class QuotaLimiter(Protocol):
    def try_acquire(self, priority: bool = False) -> float:
        """0 if granted now (and counted), else the milliseconds to wait before asking again.
        A priority request (a poll) may use the part of the burst others leave to it."""

    def wait_turn(self, priority: bool = False) -> float:
        """Block until this credential may send one request; returns the seconds waited."""

    def observe(self, snapshot: QuotaSnapshot) -> None: ...

    def penalize(self, retry_after_s: float | None) -> None: ...

    def state(self) -> dict[str, str]:
        """The last quota the server reported, as text (empty before any), for `status`,
        the metrics endpoint and the quota alert."""


def wait_turn(limiter: QuotaLimiter, sleep: Callable[[float], None],
              priority: bool = False) -> float:
    """Block until the limiter grants a request; returns the seconds waited."""
    waited = 0.0
    while (wait_ms := limiter.try_acquire(priority)) > 0:
        # Cap one sleep so a changed state (a reset, a new limit) is seen soon enough.
        pause = min(wait_ms / 1000.0, 5.0)
        sleep(pause)
        waited += pause
    return waited


def _arg(value: float | int | None) -> str:
    return "" if value is None else repr(float(value))


class RedisQuotaLimiter:
    """Cluster-wide: every worker of the credential shares one key."""

    def __init__(
        self,
        client: redis.Redis,
        key: str,
        *,
        burst: int = DEFAULT_BURST,
        cap_per_minute: float | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.key = key
        self._redis = client
        self._burst = burst
        self._cap = cap_per_minute
        self._initial_interval = initial_interval_ms(burst, cap_per_minute)
        self._acquire = client.register_script(_ACQUIRE)
        self._observe = client.register_script(_OBSERVE)
        self._clock = clock
        self._sleep = sleep

    def _now_ms(self) -> float:
        return self._clock() * 1000.0

    def try_acquire(self, priority: bool = False) -> float:
        answer = self._acquire(keys=[self.key], args=[
            _arg(self._now_ms()), _arg(self._initial_interval), self._burst,
            0 if priority else PRIORITY_RESERVE, MIN_BURST,
        ])
        return float(answer)

    def wait_turn(self, priority: bool = False) -> float:
        return wait_turn(self, self._sleep, priority)

    def observe(self, snapshot: QuotaSnapshot) -> None:
        self._run_observe(snapshot, penalize=False, retry_after_s=None)

    def penalize(self, retry_after_s: float | None) -> None:
        self._run_observe(None, penalize=True, retry_after_s=retry_after_s)

    def _run_observe(
        self, snapshot: QuotaSnapshot | None, *, penalize: bool, retry_after_s: float | None
    ) -> None:
        s = snapshot
        self._observe(keys=[self.key], args=[
            _arg(self._now_ms()),
            _arg(s.minute_limit if s else None),
            _arg(s.minute_available if s else None),
            _arg(s.hour_available if s else None),
            _arg(s.hour_reset_at * 1000.0 if s and s.hour_reset_at else None),
            _arg(self._initial_interval),
            self._burst,
            "penalize" if penalize else "observe",
            _arg(retry_after_s * 1000.0 if retry_after_s else None),
            _arg(s.hour_limit if s else None),
            # The burst and the limit the pace follows, sized here so both limiters share
            # one rule.
            *(_paced(s.minute_limit, self._cap) if s and s.minute_limit and s.minute_limit > 0
              else ("", "")),
            _arg(s.sent_at * 1000.0 if s and s.sent_at else None),
        ])

    def state(self) -> dict[str, str]:
        """The raw shared state, for `status` and tests."""
        raw = self._redis.hgetall(self.key)
        return {_text(k): _text(v) for k, v in raw.items()}


def _paced(minute_limit: float, cap_per_minute: float | None) -> tuple[int, str]:
    paced = paced_limit(minute_limit, cap_per_minute)
    return burst_for(paced), _arg(paced)


def _text(value: bytes | str) -> str:
    # redis-py answers bytes unless the client was made with decode_responses=True.
    return value.decode() if isinstance(value, bytes) else value


class LocalQuotaLimiter:
    """The same pacing for one process (local runs, the demo): no Redis needed."""

    def __init__(
        self,
        *,
        burst: int = DEFAULT_BURST,
        cap_per_minute: float | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._state = PacingState(
            interval_ms=initial_interval_ms(burst, cap_per_minute), burst=burst
        )
        self._cap = cap_per_minute
        self._lock = threading.Lock()
        self._clock = clock
        self._sleep = sleep
        self._last: QuotaSnapshot | None = None

    def try_acquire(self, priority: bool = False) -> float:
        with self._lock:
            return self._state.acquire(self._clock() * 1000.0,
                                       0 if priority else PRIORITY_RESERVE)

    def wait_turn(self, priority: bool = False) -> float:
        return wait_turn(self, self._sleep, priority)

    def observe(self, snapshot: QuotaSnapshot) -> None:
        with self._lock:
            self._last = snapshot
            self._state.observe(
                self._clock() * 1000.0,
                snapshot.minute_limit,
                snapshot.minute_available,
                snapshot.hour_available,
                snapshot.hour_reset_at * 1000.0 if snapshot.hour_reset_at else None,
                self._cap,
                snapshot.sent_at * 1000.0 if snapshot.sent_at else None,
            )

    def penalize(self, retry_after_s: float | None) -> None:
        with self._lock:
            self._state.penalize(
                self._clock() * 1000.0, retry_after_s * 1000.0 if retry_after_s else None
            )

    def state(self) -> dict[str, str]:
        """What the server last said, in the shape of `RedisQuotaLimiter.state()` (for the
        quota alert of local runs)."""
        with self._lock:
            last = self._last
        if last is None:
            return {}
        values = {"minute_limit": last.minute_limit, "minute_available": last.minute_available,
                  "hour_limit": last.hour_limit, "hour_available": last.hour_available,
                  "observed_ms": int(last.observed_at * 1000)}
        return {name: str(value) for name, value in values.items() if value is not None}
