"""A lease for a job that holds no run lock (the metadata refresh): while it runs, a key
with a short TTL is renewed beside a `due` mark; a job that ends in any way clears both.
Only a process killed mid-job leaves the mark without its lease, which the watchdog reads
as "started, never finished, nobody on it" and sends the job again.

A job that failed (an exception) is not due again: it was reported, and re-sending it
every half minute would only repeat the failure.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

log = logging.getLogger(__name__)

PREFIX = "trestle:job:"
# The mark outlives any job; it only needs to last until the watchdog's next pass.
DUE_TTL_S = 24 * 3600


class JobLease:
    def __init__(self, client: Any, name: str, *, lease_s: float) -> None:
        self._client = client
        self._lease_key = f"{PREFIX}{name}:lease"
        self._due_key = f"{PREFIX}{name}:due"
        self._lease_ms = max(1, int(lease_s * 1000))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._renew, name=f"job-lease-{name}",
                                        daemon=True)

    def __enter__(self) -> JobLease:
        pipe = self._client.pipeline()
        pipe.set(self._due_key, 1, ex=DUE_TTL_S)
        pipe.set(self._lease_key, 1, px=self._lease_ms)
        pipe.execute()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        try:
            self._client.delete(self._lease_key, self._due_key)
        except Exception as error:  # Redis away: the mark's lapsed lease re-sends the job
            log.warning("could not clear the job's lease: %s", type(error).__name__)

    def _renew(self) -> None:
        while not self._stop.wait(self._lease_ms / 3000):
            try:
                self._client.set(self._lease_key, 1, px=self._lease_ms)
            except Exception as error:  # a blip: the lease covers a few missed renewals
                log.warning("could not renew the job's lease: %s", type(error).__name__)


def take_orphaned(client: Any, name: str) -> bool:
    """True once for a job whose process died mid-job (due, lease lapsed): the mark is
    taken, so of two watchdogs only one sends it again."""
    due_key, lease_key = f"{PREFIX}{name}:due", f"{PREFIX}{name}:lease"
    if client.exists(lease_key) or not client.exists(due_key):
        return False
    return bool(client.delete(due_key))
