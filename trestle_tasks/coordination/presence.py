"""Whether the watchdog runs: `sync --wait` tells a run that will be looked after from one
nobody will ever pick up again (beat not running).

The watchdog (`trestle.watch_runs`, on beat every WATCHDOG_INTERVAL_S) marks a key with
a TTL of a few intervals each time it runs; workers announce themselves the same way
(coordination/worker_slots.py).
"""

from __future__ import annotations

from typing import Any

WATCHDOG_KEY = "trestle:watchdog"
WATCHDOG_INTERVAL_S = 30
# Three missed runs before the watchdog is taken for gone: its task may wait in a queue
# behind a busy worker's current task.
WATCHDOG_TTL_S = 3 * WATCHDOG_INTERVAL_S


def mark_watchdog(client: Any) -> None:
    client.set(WATCHDOG_KEY, 1, ex=WATCHDOG_TTL_S)


def watchdog_alive(client: Any) -> bool:
    return bool(client.exists(WATCHDOG_KEY))
