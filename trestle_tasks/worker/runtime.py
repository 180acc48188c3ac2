"""A process's collaborators, from settings read once: what commands and tasks work with.

Two runtimes, one per way of running, instead of a mode flag passed to each builder:

- `ClusterRuntime`: the workers, and the commands that speak for the cluster (`sync`
  dispatching to the workers, `reconcile` without --local, `metrics`, the quota `status`
  reports). The token cache, the quota limiter and the alert cooldown are shared through
  Redis, so every worker process paces one credential together.
- `LocalRuntime`: one process working alone (`sync --local`, `reconcile --local`, the demo,
  `migrate`, `status --live`'s requests, `check-config`). Token cache and quota limiter live
  in this process, the alert cooldown in files under LOCK_DIR; Redis is not needed.

Both share the rest (`Runtime`): the store, the Redis client, the run lock (in the database
whatever the runtime, so both kinds of run exclude each other), the credential id, the
token provider, the Trestle client and the alert dispatcher.

A command builds its runtime once, from the settings it loaded, and passes it down; a
Celery worker process builds its cluster runtime on its first task (`cluster_runtime()`)
and keeps it, so it reads its settings (the environment and `.env`) once. A changed `.env`
takes effect when the workers restart, as any Celery setting does. A forked child builds
its own.

A runtime caches nothing that holds a socket: the store, Redis connections, the HTTP
session and the in-process quota limiter and token cache are cached per process id in
factory.py, which every runtime of the process asks. So several runtimes in one process
(a test's, the demo's two syncs) share one pool and one pace, and an object inherited
across a fork is never used by the child. What carries per-use state (a Trestle client
counts its requests; a run lock, the window gate and a dispatcher are cheap handles) is
made fresh on each call.

Use cases below the command layer (sync/, monitoring/, store/) never see a runtime: they
are handed the collaborators.
"""

from __future__ import annotations

import os
import threading
from abc import ABC, abstractmethod
from functools import cached_property
from typing import TYPE_CHECKING

from trestle_tasks.core.errors import ConfigurationError
from trestle_tasks.core.feeds import DEFAULT_FEED, load_feeds
from trestle_tasks.core.settings import Settings
from trestle_tasks.worker import factory

if TYPE_CHECKING:
    import redis

    from trestle_tasks.coordination.concurrency import RedisWindowGate
    from trestle_tasks.coordination.locks import RunLock
    from trestle_tasks.coordination.quota import QuotaLimiter
    from trestle_tasks.core.retry import NoProgressDeadline
    from trestle_tasks.monitoring.alerts.cooldown import Cooldown
    from trestle_tasks.monitoring.alerts.dispatcher import AlertDispatcher
    from trestle_tasks.store.store import Store
    from trestle_tasks.trestle.auth import TokenProvider
    from trestle_tasks.trestle.client import TrestleClient
    from trestle_tasks.trestle.token_cache import TokenCache


class Runtime(ABC):
    """What the cluster and a single process build alike; subclasses say where tokens,
    the quota's pace and the alert cooldown are kept."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @property
    def store(self) -> Store:
        return factory.store(self.settings)

    @property
    def redis(self) -> redis.Redis:
        return factory.redis_client(self.settings)

    @cached_property
    def credential_id(self) -> str:
        return factory.credential_id(self.settings)

    def run_lock(self) -> RunLock:
        return factory.run_lock(self.settings)

    @abstractmethod
    def token_cache(self) -> TokenCache: ...

    @abstractmethod
    def quota_limiter(self) -> QuotaLimiter: ...

    @abstractmethod
    def alert_cooldown(self) -> Cooldown: ...

    def no_progress(self) -> NoProgressDeadline:
        """The budget of no progress (TRESTLE_RETRY_BUDGET) a client and the token
        fetches its requests need share: here a fresh one per client (a window's
        attempt); LocalRuntime shares one across the command."""
        return factory.no_progress_deadline(self.settings)

    def token_provider(self, progress: NoProgressDeadline | None = None) -> TokenProvider:
        """Raises ConfigurationError when the credentials are not set."""
        return factory.token_provider(self.settings, self.token_cache(),
                                      progress=progress or self.no_progress())

    def trestle_client(self, priority: bool = False) -> TrestleClient:
        """A fresh client (its request counts are one run's), paced by this runtime's
        quota limiter; it and its token fetches share one budget of no progress.
        `priority`: a poll's, ahead of runs' requests at the limiter."""
        limiter = self.quota_limiter()
        progress = self.no_progress()
        return factory.trestle_client(self.settings, tokens=self.token_provider(progress),
                                      limiter=limiter, progress=progress, priority=priority)

    def alert_dispatcher(self) -> AlertDispatcher:
        return factory.alert_dispatcher(self.settings, self.alert_cooldown())


class ClusterRuntime(Runtime):
    """The workers' runtime: tokens, the quota's pace and the alert cooldown in Redis."""

    def token_cache(self) -> TokenCache:
        return factory.redis_token_cache(self.settings)

    def quota_limiter(self) -> QuotaLimiter:
        return factory.redis_quota_limiter(self.settings)

    def alert_cooldown(self) -> Cooldown:
        return factory.redis_cooldown(self.settings)

    def window_gate(self) -> RedisWindowGate:
        """The cluster's limit on windows running at once (a single process has its own
        thread pool instead)."""
        return factory.window_gate(self.settings)


class LocalRuntime(Runtime):
    """One process working alone: tokens and the quota's pace in this process, the alert
    cooldown in files (so one cron-started run after another does not repeat an alert)."""

    def token_cache(self) -> TokenCache:
        return factory.memory_token_cache()

    def quota_limiter(self) -> QuotaLimiter:
        return factory.local_quota_limiter(self.settings)

    def alert_cooldown(self) -> Cooldown:
        return factory.file_cooldown(self.settings)

    def no_progress(self) -> NoProgressDeadline:
        """One budget of no progress for the whole command: its requests, windows and
        token fetches give up together once nothing succeeded for TRESTLE_RETRY_BUDGET,
        not one budget after another."""
        return self._command_progress

    @cached_property
    def _command_progress(self) -> NoProgressDeadline:
        return factory.no_progress_deadline(self.settings)


_cluster: tuple[int, dict[str, ClusterRuntime]] | None = None
_cluster_lock = threading.Lock()


def cluster_runtimes() -> dict[str, ClusterRuntime]:
    """This worker process's cluster runtime of every feed (TRESTLE_FEEDS; one, `default`,
    without it), built on first use (after any fork)."""
    global _cluster
    with _cluster_lock:
        if _cluster is None or _cluster[0] != os.getpid():
            _cluster = (os.getpid(), {name: ClusterRuntime(feed_settings)
                                      for name, feed_settings in load_feeds().items()})
        return _cluster[1]


def cluster_runtime(feed: str = DEFAULT_FEED) -> ClusterRuntime:
    """This worker process's cluster runtime of `feed`. A feed the settings do not name
    (a task sent before a feed was removed) is a configuration error, never retried."""
    runtimes = cluster_runtimes()
    if feed not in runtimes:
        raise ConfigurationError(
            f"feed {feed!r} is not configured (TRESTLE_FEEDS names {', '.join(runtimes)})",
            problems=[f"TRESTLE_FEEDS: does not name {feed!r}"])
    return runtimes[feed]


def forget_cluster_runtime() -> None:
    """Read the settings again on the next task (tests that change the environment)."""
    global _cluster
    with _cluster_lock:
        _cluster = None
