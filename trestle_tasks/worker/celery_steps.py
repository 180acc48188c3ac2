"""Worker bootsteps: what a worker's main process does beside running tasks.

`SlotRegistration` keeps this worker's window slots (its pool size) in Redis for the
planner (coordination/worker_slots.py), on the worker's own timer: no thread, no task.
`SlotAnnouncementOnConnect` announces them again each time the worker's consumer
(re)connects to the broker: a Redis restarted empty lost the key, and the timer does not
tick while the consumer waits for the broker, so without it `sync --wait` could see no
worker for a whole refresh interval after the broker came back.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import bootsteps

from trestle_tasks.coordination import worker_slots

log = logging.getLogger(__name__)


class _Announcer:
    """Writes one worker's slots to Redis; the client is made on first use (the worker's
    main process needs only Redis, not the credentials)."""

    def __init__(self) -> None:
        self._client: Any = None

    def announce(self, worker: Any) -> None:
        try:
            if self._client is None:
                from trestle_tasks.core.settings import load_settings
                from trestle_tasks.worker.runtime import ClusterRuntime

                # Not cluster_runtime(): its settings must name the credentials.
                self._client = ClusterRuntime(load_settings(require_credentials=False)).redis
            worker_slots.register(self._client, worker.hostname, worker.concurrency)
        except Exception as error:  # Redis away: runs are cut by the setting meanwhile
            log.warning("could not announce this worker's window slots: %s",
                        type(error).__name__)

    def withdraw(self, worker: Any) -> None:
        try:
            if self._client is not None:
                worker_slots.unregister(self._client, worker.hostname)
        except Exception as error:  # the key expires anyway
            log.warning("could not withdraw this worker's window slots: %s",
                        type(error).__name__)


# One per worker process: both steps below run in the worker's main process.
_announcer = _Announcer()


class SlotRegistration(bootsteps.StartStopStep):
    requires = {"celery.worker.components:Pool", "celery.worker.components:Timer"}

    def __init__(self, worker: Any, **kwargs: Any) -> None:
        super().__init__(worker, **kwargs)
        self._timer_entry: Any = None

    def start(self, worker: Any) -> None:
        _announcer.announce(worker)
        self._timer_entry = worker.timer.call_repeatedly(
            worker_slots.REFRESH_S, _announcer.announce, (worker,), priority=10)

    def stop(self, worker: Any) -> None:
        if self._timer_entry is not None:
            self._timer_entry.cancel()
            self._timer_entry = None
        _announcer.withdraw(worker)


class SlotAnnouncementOnConnect(bootsteps.StartStopStep):
    """Announce at once whenever the consumer (re)starts: after a broker reconnection."""

    requires = {"celery.worker.consumer.connection:Connection"}

    def start(self, consumer: Any) -> None:
        if consumer.controller is not None:
            _announcer.announce(consumer.controller)
