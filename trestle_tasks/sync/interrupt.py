"""A Ctrl-C during a run of this process (`sync --local`, `reconcile`): the run cleaned up.

SIGINT reaches Python as a KeyboardInterrupt in the main thread, wherever it happens to be
(planning, waiting for the window threads, a census request, a repair). The run that was
under way is then closed `interrupted` in the sync log (when its row exists and is still
open: a row finalize closed already is left alone) and its run lock released at once, so
the next cron run does not wait out the lease. The watermark is not touched: only
finalize moves it, and finalize is never cut short by a Ctrl-C (`sigint_deferred`).

What was done is raised on as `RunInterrupted`, still a KeyboardInterrupt, so callers
that stop on a Ctrl-C stop as before, and the command line prints it as one line.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

from trestle_tasks.coordination.locks import LockGrant, RunLock, lock_name
from trestle_tasks.core.errors import FatalError
from trestle_tasks.store.store import Store
from trestle_tasks.store.sync_log import INTERRUPTED

log = logging.getLogger(__name__)

INTERRUPTED_ERROR = "interrupted by its operator (Ctrl-C)"


class WalkStopped(FatalError):
    """Raised in a window thread (at its next page) once the run was interrupted: the
    window is recorded failed, never succeeded, and its thread ends."""

    def __init__(self) -> None:
        super().__init__(f"window stopped: the run was {INTERRUPTED_ERROR}")


class RunInterrupted(KeyboardInterrupt):
    """A Ctrl-C stopped this run, and it was cleaned up: `status` is its sync-log row's
    status afterwards (`interrupted`; another if it had closed already; None: it had no
    row yet), `lock_released` whether this run's lock was freed here."""

    def __init__(self, resource: str, run_id: str, *, kind: str = "run",
                 status: str | None = None, lock_released: bool = False,
                 problem: str | None = None) -> None:
        super().__init__(resource, run_id)
        self.resource = resource
        self.run_id = run_id
        self.kind = kind
        self.status = status
        self.lock_released = lock_released
        self.problem = problem  # a cleanup step that failed, in a few words

    def describe(self) -> str:
        """One sentence for the operator: what happened to the run and to its lock."""
        what = f"{self.resource} {self.kind} {self.run_id}"
        if self.status == INTERRUPTED:
            text = f"{what} marked interrupted"
        elif self.status is not None:
            text = f"{what} had already ended {self.status}"
        elif self.problem is None:
            text = f"{what} stopped before its sync log row was written"
        else:
            text = f"{what} could not be marked interrupted ({self.problem})"
        if self.lock_released:
            return f"{text}; its lock was released"
        return f"{text}; its lock could not be released and lapses with its lease"


def _main_thread_with_default_handler() -> bool:
    return (threading.current_thread() is threading.main_thread()
            and signal.getsignal(signal.SIGINT) is signal.default_int_handler)


@contextmanager
def sigint_deferred() -> Iterator[None]:
    """A Ctrl-C during the block waits for its end, then is raised: for steps that must
    not be cut in the middle (finalize moves the watermark, then closes the row).

    Only where Python's own Ctrl-C handler is in place, in the main thread; elsewhere
    (a Celery worker, a thread) the block runs as it is."""
    if not _main_thread_with_default_handler():
        yield
        return
    pending: list[int] = []

    def note(signum: int, _frame: FrameType | None) -> None:
        pending.append(signum)

    signal.signal(signal.SIGINT, note)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if pending:
        raise KeyboardInterrupt


@contextmanager
def sigint_shielded() -> Iterator[None]:
    """Cleaning up after a Ctrl-C: a second Ctrl-C does not cut the cleanup short (it is
    noted and ignored); a third ends the process at once, the way SIGINT ends a program
    without a handler (no traceback, nothing more cleaned up)."""
    if not _main_thread_with_default_handler():
        yield
        return

    def again(_signum: int, _frame: FrameType | None) -> None:
        signal.signal(signal.SIGINT, signal.SIG_DFL)

    signal.signal(signal.SIGINT, again)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def stop_run(store: Store, lock: RunLock, *, resource: str, run_id: str,
             grant: LockGrant | None, kind: str = "run",
             before_close: Callable[[], object] | None = None) -> RunInterrupted:
    """Close the run's open row `interrupted` and release its lock; what was done.

    Without a `grant` (a Ctrl-C while the lock was being taken or the run planned) the
    lock is released if this run (`run_id`) holds it. `before_close` adds what only the
    caller knows (the requests counted so far). Never raises: every step is best effort,
    and a failed one is named in the result.
    """
    problem = None
    status = None
    released = False
    with sigint_shielded():
        try:
            if before_close is not None:
                before_close()
            run = store.sync_log.close_run(run_id, resource, status=INTERRUPTED,
                                           error=INTERRUPTED_ERROR)
            status = run.status if run is not None else None
        except Exception as error:  # the lock must still be released
            problem = f"{type(error).__name__}: {error}"[:200]
        try:
            released = _release(lock, lock_name(resource), run_id, grant)
        except Exception as error:  # it lapses with its lease then
            problem = problem or f"{type(error).__name__}: {error}"[:200]
    stopped = RunInterrupted(resource, run_id, kind=kind, status=status,
                             lock_released=released, problem=problem)
    log.warning("%s", stopped.describe(),
                extra={"run_id": run_id, "resource": resource, "outcome": INTERRUPTED})
    return stopped


def _release(lock: RunLock, name: str, run_id: str, grant: LockGrant | None) -> bool:
    """Free the lock if this run holds it; True once it is not this run's any more."""
    if grant is not None:
        lock.release(grant)
    holder = lock.holder(name)
    if holder is not None and holder.owner == run_id:  # taken, but no grant came back
        lock.release(LockGrant(name, holder.owner, holder.fence))
        holder = lock.holder(name)
    return holder is None or holder.owner != run_id
