"""How many windows the live workers can run at once, so a run is cut for the real cluster.

`SYNC_MAX_CONCURRENT_WINDOWS` is what an operator allows; the workers running may offer
fewer slots (two workers of two processes: four). A run cut into eight windows on four
slots walks in two rounds, each paying its latency again. So every worker's main process
keeps a key with its pool size, renewed every REFRESH_S and expiring after TTL_S, and the
planner cuts min(allowed, live slots) windows. A worker that died drops out within TTL_S;
with no key found (Redis emptied, workers older than this), the setting alone decides.
"""

from __future__ import annotations

from typing import Any

KEY_PREFIX = "trestle:worker-slots:"
TTL_S = 60
REFRESH_S = 20


def register(client: Any, worker: str, slots: int, *, prefix: str = KEY_PREFIX,
             ttl_s: int = TTL_S) -> None:
    """Say that `worker` offers `slots` window slots for the next `ttl_s` seconds."""
    client.set(prefix + worker, int(slots), ex=ttl_s)


def unregister(client: Any, worker: str, *, prefix: str = KEY_PREFIX) -> None:
    client.delete(prefix + worker)


def live_slots(client: Any, *, prefix: str = KEY_PREFIX) -> int:
    """The slots every live worker offers, together (0: none has said)."""
    keys = list(client.scan_iter(match=prefix + "*", count=500))
    if not keys:
        return 0
    return sum(int(value) for value in client.mget(keys) if value is not None)


def windows_wanted(allowed: int, live: int) -> int:
    """Windows to cut a run into: what the cluster can run at once, never more than
    allowed; the setting alone when no worker has said."""
    return min(allowed, live) if live > 0 else allowed


def sharers(settings: Any) -> int:
    """Who shares the worker slots with one feed's windows: the other feeds, and the poll
    ticks when polling is on (SYNC_POLL_QUOTA_SHARE > 0). A poll must never wait behind a
    backfill that holds every worker process: with any sharer, one slot stays free."""
    return max(1, len(settings.feed_names)) + (1 if settings.poll_quota_share > 0 else 0)


def feed_share(allowed: int, live: int, feeds: int) -> int:
    """Windows one feed may run at once when `feeds` feeds share the cluster's `live` slots.

    The rule: a feed takes what it is allowed (SYNC_MAX_CONCURRENT_WINDOWS, no more than the
    live slots), but while other feeds share the cluster never every live slot: one is
    always left to them, so one feed's backfill cannot hold every worker while another
    feed's incremental sync waits behind it. Each feed still paces its own quota. One feed
    alone is cut exactly as before."""
    wanted = windows_wanted(allowed, live)
    if feeds > 1 and live > 1:
        wanted = min(wanted, live - 1)
    return max(1, wanted)
