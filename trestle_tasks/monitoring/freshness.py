"""Freshness, measured: seconds from a record's ModificationTimestamp to its commit here.

Every worker adds what it stored to Redis (per credential and resource): a Prometheus
histogram (cumulative bucket counts, `trestle_freshness_seconds`) and the last samples
with their time, from which `status` and the alert read p50/p95 over the last hour.

A negative figure is a record stamped in our future: Trestle's clock is ahead of ours by
at least that much. It is kept as it is and reported as skew, never folded into zero.
A clock *behind* ours is the dangerous one (a change committed just after a poll is
stamped below the bound the poll moved the watermark to); records cannot show it, so the
polls also keep the offset the answers' Date headers give (`record_clock`), and
SYNC_SETTLE_SECONDS is the guard.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

KEY_PREFIX = "trestle:freshness:"
BUCKETS = (1.0, 2.0, 5.0, 10.0, 15.0, 20.0, 30.0, 60.0, 120.0, 300.0, 900.0, 3600.0,
           86400.0)
SAMPLES_KEPT = 5000  # per resource: an hour of a busy feed's fast path
WINDOW_S = 3600.0


def bucket_label(bound: float) -> str:
    return "+Inf" if math.isinf(bound) else repr(float(bound))  # as Prometheus writes `le`


@dataclass(frozen=True)
class Freshness:
    """One resource's freshness over the last hour."""

    resource: str
    samples: int
    p50_s: float | None
    p95_s: float | None
    max_s: float | None
    ahead: int  # records stamped in our future (Trestle's clock ahead of ours)
    ahead_max_s: float  # by how much, at most


def percentile(values: Sequence[float], share: float) -> float | None:
    """Nearest-rank percentile of sorted `values`."""
    if not values:
        return None
    rank = max(1, math.ceil(share * len(values)))
    return values[rank - 1]


def summarize(resource: str, latencies: Iterable[float]) -> Freshness:
    values = sorted(latencies)
    ahead = [-v for v in values if v < 0]
    return Freshness(resource, len(values), percentile(values, 0.5), percentile(values, 0.95),
                     values[-1] if values else None, len(ahead), max(ahead, default=0.0))


class FreshnessRecorder:
    """Freshness figures of one credential in Redis."""

    def __init__(self, client: Any, credential: str) -> None:
        self._client = client
        self._prefix = f"{KEY_PREFIX}{credential}:"

    def record(self, resource: str, latencies: Sequence[float], *,
               now: float | None = None) -> None:
        if not latencies:
            return
        now = time.time() if now is None else now
        histogram = f"{self._prefix}{resource}:histogram"
        samples = f"{self._prefix}{resource}:samples"
        pipe = self._client.pipeline(transaction=False)
        for latency in latencies:
            for bound in (*BUCKETS, math.inf):
                if latency <= bound:
                    pipe.hincrby(histogram, bucket_label(bound), 1)
            pipe.hincrbyfloat(histogram, "sum", latency)
        pipe.hincrby(histogram, "count", len(latencies))
        pipe.lpush(samples, *(f"{now:.3f}:{latency:.3f}" for latency in latencies))
        pipe.ltrim(samples, 0, SAMPLES_KEPT - 1)
        pipe.expire(samples, int(WINDOW_S * 2))
        pipe.execute()

    def recent(self, resource: str, *, now: float | None = None,
               window_s: float = WINDOW_S) -> Freshness:
        """p50/p95/max over the last `window_s` seconds."""
        now = time.time() if now is None else now
        raw = self._client.lrange(f"{self._prefix}{resource}:samples", 0, -1)
        latencies = []
        for item in raw:
            text = item.decode() if isinstance(item, bytes) else str(item)
            at, _, latency = text.partition(":")
            try:
                if float(at) >= now - window_s:
                    latencies.append(float(latency))
            except ValueError:
                continue
        return summarize(resource, latencies)

    def record_clock(self, offset_s: float, *, now: float | None = None) -> None:
        """Trestle's clock minus ours, as its last answer's Date header gave it."""
        now = time.time() if now is None else now
        self._client.set(f"{self._prefix}clock", f"{now:.3f}:{offset_s:.3f}",
                         ex=int(WINDOW_S * 2))

    def clock(self, *, now: float | None = None) -> float | None:
        """The offset last recorded within the hour; None when there is none."""
        now = time.time() if now is None else now
        raw = self._client.get(f"{self._prefix}clock")
        text = raw.decode() if isinstance(raw, bytes) else raw
        at, _, offset = (text or "").partition(":")
        try:
            return float(offset) if float(at) >= now - WINDOW_S else None
        except ValueError:
            return None

    def histogram(self, resource: str) -> dict[str, float]:
        """Cumulative bucket counts (`le` label → count), `sum` and `count`; empty when
        nothing was recorded."""
        raw = self._client.hgetall(f"{self._prefix}{resource}:histogram")
        return {(k.decode() if isinstance(k, bytes) else k): float(v) for k, v in raw.items()}


# The Date header has whole seconds, and an answer takes a moment: an offset within this
# is both clocks agreeing.
CLOCK_TOLERANCE_S = 2.0


def clock_warning(offset_s: float | None, settle_s: float) -> str | None:
    """What an operator must know of Trestle's clock against ours, or None."""
    if offset_s is None:
        return None
    if offset_s < -(settle_s + CLOCK_TOLERANCE_S):
        return (f"Trestle's clock is about {-offset_s:,.0f} s behind ours (its Date header): "
                f"a change committed just after a poll can be stamped below the watermark "
                f"it moved; set SYNC_SETTLE_SECONDS to {int(-offset_s) + 2} or more (now "
                f"{settle_s:g}), or fix this machine's clock (NTP)")
    if offset_s > CLOCK_TOLERANCE_S:
        return (f"Trestle's clock is about {offset_s:,.0f} s ahead of ours (its Date header): "
                "freshness figures read that much too low; check this machine's clock (NTP)")
    return None
