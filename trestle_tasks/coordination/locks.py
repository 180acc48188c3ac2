"""Run locks: one run per resource and database at a time, with fencing tokens.

A lock has a short lease (SYNC_LOCK_TTL, a minute) renewed every third of it by whatever
process of its run is alive (planner, windows, finalize, the watchdog for a run whose
windows wait), so a crashed holder frees it by itself within a minute. Every acquisition
gets a fencing token larger than any before it; the watermark only accepts advances from a
token at least as new as the last one, so a run that lost its lock (a long pause, a lapsed
lease taken over) cannot move the watermark behind its successor's back.

The one implementation, `DatabaseRunLock` (db_lock.py), keeps the lock in the target
database, so every mode (Celery workers, `sync --local`, reconcile, the demo) shares it.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Protocol

from trestle_tasks.core.errors import LockLostError

log = logging.getLogger(__name__)


def lock_name(resource: str) -> str:
    """The run lock of `resource`: one per resource and database, whatever the credential
    or mode, since two runs of one resource into one database must never overlap. The name
    is the resource itself, so the lock can read the fence stored with its watermark."""
    return resource


@dataclass(frozen=True)
class LockGrant:
    name: str
    owner: str
    fence: int


@dataclass(frozen=True)
class LockHolder:
    owner: str
    fence: int
    ttl_s: float | None

    @property
    def is_poll(self) -> bool:
        """A poll's fast path (sync/poll.py): it holds a resource for a request or three."""
        return self.owner.startswith(POLL_OWNER_PREFIX)


# A poll's owner name begins so (sync/poll.py new_poll_owner).
POLL_OWNER_PREFIX = "poll-"


class RunLock(Protocol):
    def acquire(self, name: str, owner: str, ttl_s: float) -> LockGrant | None:
        """The grant, or None when someone else holds the lock."""

    def renew(self, grant: LockGrant, ttl_s: float) -> bool:
        """Extend the lock (or resume a lapsed lease nobody took since); False when it is
        no longer ours."""

    def release(self, grant: LockGrant) -> bool:
        """Free the lock if it is still ours; False otherwise (never frees another's)."""

    def holder(self, name: str) -> LockHolder | None: ...


class LockKeeper:
    """Renews a grant in the background while a run lives; `lost` is set once a renewal
    finds the lock no longer ours. A step that must not run without the lock (reconcile's
    repair and soft deletes) calls `ensure_held` first; window walks need not, since
    finalize moves the watermark only while the run's fencing token still holds the lock.
    """

    def __init__(self, lock: RunLock, grant: LockGrant, ttl_s: float) -> None:
        self._lock = lock
        self._grant = grant
        self._ttl_s = ttl_s
        self._stop = threading.Event()
        self.lost = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"lock-keeper-{grant.name}",
                                        daemon=True)

    def __enter__(self) -> LockKeeper:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self._ttl_s / 3):
            try:
                still_ours = self._lock.renew(self._grant, self._ttl_s)
            except Exception as error:  # a database blip: the TTL covers a few missed beats
                log.warning("could not renew lock %s: %s", self._grant.name, error)
                continue
            if not still_ours:
                self.lost.set()
                return

    def ensure_held(self) -> None:
        """Raise LockLostError unless the lock is still ours. Renews on the spot, so a lease
        taken over since the last background renewal is caught too, and the step that
        follows starts with a whole lease."""
        if not self.lost.is_set() and not self._lock.renew(self._grant, self._ttl_s):
            self.lost.set()
        if self.lost.is_set():
            raise LockLostError(f"the run lock {self._grant.name} was lost (its lease lapsed; "
                                "another run may hold it now): stopped before changing "
                                "anything")
