"""A process's collaborators, from settings read once: what the tasks work with.

A Celery worker process reads its settings (the environment and `.env`) once, on its
first task, instead of on every task; the mode (cluster: token cache and quota shared
through Redis) is fixed here once instead of passed to each builder. The long-lived
collaborators (the store and its connection pool, the Redis client) are built on first
use and kept; those that carry per-use state (a Trestle client counts its requests, a run
lock and the window gate are cheap handles) are made fresh by the runtime on each call.
A forked child builds its own runtime: no socket crosses a fork. A changed `.env` takes
effect when the workers restart, as any Celery setting does.
"""

from __future__ import annotations

import os
import threading
from functools import cached_property
from typing import TYPE_CHECKING

from trestle_tasks import factory
from trestle_tasks.settings import Settings, load_settings

if TYPE_CHECKING:
    import redis

    from trestle_tasks.coordination.concurrency import RedisWindowGate
    from trestle_tasks.coordination.locks import RunLock
    from trestle_tasks.coordination.quota import QuotaLimiter
    from trestle_tasks.store.store import Store
    from trestle_tasks.trestle.client import TrestleClient


class Runtime:
    def __init__(self, settings: Settings, *, shared: bool) -> None:
        self.settings = settings
        self.shared = shared  # cluster mode: tokens and quota shared through Redis

    @cached_property
    def store(self) -> Store:
        return factory.store(self.settings)

    @cached_property
    def redis(self) -> redis.Redis:
        return factory.redis_client(self.settings)

    def trestle_client(self) -> TrestleClient:
        return factory.trestle_client(self.settings, shared=self.shared)

    def quota_limiter(self) -> QuotaLimiter:
        return factory.quota_limiter(self.settings, shared=self.shared)

    def run_lock(self) -> RunLock:
        return factory.run_lock(self.settings)

    def window_gate(self) -> RedisWindowGate:
        return factory.window_gate(self.settings)


_cluster: tuple[int, Runtime] | None = None
_cluster_lock = threading.Lock()


def cluster_runtime() -> Runtime:
    """This process's cluster runtime, built on first use."""
    global _cluster
    with _cluster_lock:
        if _cluster is None or _cluster[0] != os.getpid():
            _cluster = (os.getpid(), Runtime(load_settings(), shared=True))
        return _cluster[1]


def forget_cluster_runtime() -> None:
    """Read the settings again on the next task (tests that change the environment)."""
    global _cluster
    with _cluster_lock:
        _cluster = None
