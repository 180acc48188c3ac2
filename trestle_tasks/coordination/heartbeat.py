"""A running window's heartbeat: its lease in the ledger, its gate slot and its run's lock.

One background thread per running window renews all three every `interval_s` (a quarter
of SYNC_WINDOW_STALE_SECONDS), so the watchdog can tell a dead worker from a slow one, a
slot never expires under a long window, and the run lock lives as long as any of its
windows works. A failed beat (the database restarting) is logged and tried again at the
next one: the stale limit allows several to be missed. When the ledger says the window
was handed to another delivery, `superseded` is set and the walk stops at its next page.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from trestle_tasks.coordination.locks import LockGrant, RunLock
from trestle_tasks.core.errors import WindowSupersededError

log = logging.getLogger(__name__)


class WindowHeartbeat:
    def __init__(self, *, beat: Any, gate: Any, holder: str, slot_ttl_s: float,
                 lock: RunLock, grant: LockGrant, lock_ttl_s: float,
                 interval_s: float) -> None:
        self._beat = beat  # () -> bool: False once the window is no longer ours
        self._gate = gate
        self._holder = holder
        self._slot_ttl_s = slot_ttl_s
        self._lock, self._grant, self._lock_ttl_s = lock, grant, lock_ttl_s
        self._interval_s = interval_s
        self._stop = threading.Event()
        self.superseded = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{holder}",
                                        daemon=True)

    def __enter__(self) -> WindowHeartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def check(self, _records: int = 0) -> None:
        """Called between pages: stop walking a window another delivery now owns."""
        if self.superseded.is_set():
            raise WindowSupersededError("the window was handed to another worker")

    def _run(self) -> None:
        last_lock_renewal = time.monotonic()
        while not self._stop.wait(self._interval_s):
            self._guarded("heartbeat", self._beat_once)
            self._guarded("gate slot", lambda: self._gate.acquire(self._holder,
                                                                  self._slot_ttl_s))
            if time.monotonic() - last_lock_renewal >= self._lock_ttl_s / 3:
                last_lock_renewal = time.monotonic()
                self._guarded("run lock", lambda: self._lock.renew(self._grant,
                                                                   self._lock_ttl_s))
            if self.superseded.is_set():
                return

    def _beat_once(self) -> None:
        if not self._beat():
            log.warning("window %s was handed to another worker: this one stops", self._holder)
            self.superseded.set()

    @staticmethod
    def _guarded(what: str, renew: Any) -> None:
        try:
            renew()
        except Exception as error:  # an outage: the stale limit covers a few missed beats
            log.warning("could not renew the %s: %s: %s", what, type(error).__name__, error)
