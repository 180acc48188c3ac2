"""Scheduled triggers: at most one per interval, however many beats are running.

The run lock already stops two runs from overlapping, but a second beat started by mistake
fires at another phase of the interval: once the first run has finished, the second
beat's trigger would start another run, doubling the requests spent. Each scheduled
trigger therefore claims the interval first (`SET NX PX` on a key per credential and
job); a claim still alive means this interval's run was already triggered.
"""

from __future__ import annotations

from typing import Any

# A little less than the interval, so beat's own drift never makes a trigger look early.
CLAIM_FRACTION = 0.8


def claim_interval(redis_client: Any, job: str, interval_s: float, *, owner: str) -> bool:
    """True when this trigger is the first of its interval; False when one already fired."""
    ttl_ms = max(1, int(interval_s * CLAIM_FRACTION * 1000))
    return bool(redis_client.set(f"trestle:trigger:{job}", owner, nx=True, px=ttl_ms))


def interval_owner(redis_client: Any, job: str) -> str | None:
    value = redis_client.get(f"trestle:trigger:{job}")
    return value.decode() if isinstance(value, bytes) else value
