"""The one place that turns settings into objects: sessions, token providers, clients.

Nothing here runs at import time, and nothing here chooses between the cluster and a
single process: runtime.py's `ClusterRuntime` and `LocalRuntime` pick the builders (a token
cache, quota limiter and alert cooldown in Redis, or in this process) and pass what one
builder makes to the next. Commands and tasks ask a runtime, not these builders.

What is by nature one per process is cached here per process id, not in a runtime: the
HTTP session, Redis connections, the store's engine and pool (Celery's prefork workers must
not share sockets inherited from their parent), and the in-process token cache and quota
limiter (one credential's pacing in this process is one, however many runtimes ask). So a
process may hold several runtimes (a command's, a test's, the demo's) and they share these.
"""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from trestle_tasks.coordination.quota import LocalQuotaLimiter, QuotaLimiter
from trestle_tasks.core.errors import ConfigurationError
from trestle_tasks.core.retry import NoProgressDeadline, RetryPolicy
from trestle_tasks.core.settings import Settings
from trestle_tasks.trestle.auth import TokenProvider, credential_fingerprint
from trestle_tasks.trestle.client import TrestleClient, new_session
from trestle_tasks.trestle.sessions import SessionPerThread
from trestle_tasks.trestle.token_cache import MemoryTokenCache, TokenCache

if TYPE_CHECKING:
    import redis

    from trestle_tasks.coordination.concurrency import RedisWindowGate
    from trestle_tasks.coordination.locks import RunLock
    from trestle_tasks.monitoring.alerts.cooldown import Cooldown
    from trestle_tasks.monitoring.alerts.dispatcher import AlertDispatcher
    from trestle_tasks.store.store import Store

_per_process: dict[tuple[int, str], Any] = {}
_per_process_lock = threading.Lock()
_T = TypeVar("_T")


def _once_per_process(name: str, build: Callable[[], _T]) -> _T:
    key = (os.getpid(), name)
    with _per_process_lock:
        if key not in _per_process:
            _per_process[key] = build()
        return _per_process[key]


def http_session() -> SessionPerThread:
    """Requests made through it use the calling thread's own Session (requests does not
    promise a Session is thread-safe); one per process, so never shared across a fork."""
    return _once_per_process("http", lambda: SessionPerThread(new_session))


def redis_client(settings: Settings) -> redis.Redis:
    import redis

    return _once_per_process(
        f"redis:{settings.redis_url}",
        lambda: redis.Redis.from_url(settings.redis_url, socket_timeout=10,
                                     socket_connect_timeout=5, health_check_interval=30),
    )


def retry_policy(settings: Settings) -> RetryPolicy:
    return RetryPolicy(budget_s=settings.retry_budget_s)


def no_progress_deadline(settings: Settings) -> NoProgressDeadline:
    """A fresh budget of no progress (TRESTLE_RETRY_BUDGET), for the requests that share it."""
    return NoProgressDeadline(settings.retry_budget_s)


def memory_token_cache() -> TokenCache:
    """This process's tokens, in memory (a single process: `sync --local`, the demo)."""
    return _once_per_process("memory-token-cache", MemoryTokenCache)


def redis_token_cache(settings: Settings) -> TokenCache:
    """Tokens shared by the cluster's processes through Redis.

    In Redis the tokens are sealed with a key derived from the client secret, so the
    secret is needed here (token_provider checks it is set)."""
    from trestle_tasks.coordination.token_cache import RedisTokenCache
    from trestle_tasks.trestle.token_seal import TokenSeal

    secret = settings.client_secret.reveal() if settings.client_secret else ""
    seal = TokenSeal.for_credential(settings.token_url, settings.client_id or "", secret)
    return RedisTokenCache(redis_client(settings), seal)


def token_provider(settings: Settings, cache: TokenCache, *,
                   progress: NoProgressDeadline | None = None) -> TokenProvider:
    if settings.client_id is None or settings.client_secret is None:
        raise ConfigurationError(
            "TRESTLE_CLIENT_ID and TRESTLE_CLIENT_SECRET are required",
            problems=["TRESTLE_CLIENT_ID: is required", "TRESTLE_CLIENT_SECRET: is required"],
        )
    return TokenProvider(
        session=http_session(),
        token_url=settings.token_url,
        client_id=settings.client_id,
        client_secret=settings.client_secret,
        cache=cache,
        retry=retry_policy(settings),
        timeout_s=settings.http_timeout_s,
        progress=progress,
        allow_http=settings.allow_http_token_url,
    )


def credential_id(settings: Settings) -> str:
    return credential_fingerprint(settings.token_url, settings.client_id or "")


def local_quota_limiter(settings: Settings) -> QuotaLimiter:
    """The credential's pace in this process alone (local runs and the demo)."""
    cap = settings.quota_cap_per_minute
    return _once_per_process(f"local-quota:{credential_id(settings)}:{cap}",
                             lambda: LocalQuotaLimiter(cap_per_minute=cap))


def redis_quota_limiter(settings: Settings) -> QuotaLimiter:
    """The credential's pace across the cluster, in Redis (workers, and what `status` and
    `metrics` report)."""
    from trestle_tasks.coordination.quota import RedisQuotaLimiter

    return RedisQuotaLimiter(redis_client(settings), f"trestle:quota:{credential_id(settings)}",
                             cap_per_minute=settings.quota_cap_per_minute)


def trestle_client(settings: Settings, *, tokens: TokenProvider, limiter: QuotaLimiter,
                   progress: NoProgressDeadline | None = None,
                   priority: bool = False) -> TrestleClient:
    """A client whose every request waits its turn at the credential's quota limiter;
    `progress` is the budget of no progress it shares with `tokens`; `priority` (polls)
    may use the part of the limiter's burst runs leave free."""
    return TrestleClient(
        session=http_session(),
        odata_root=settings.base_url,
        tokens=tokens,
        retry=retry_policy(settings),
        timeout_s=settings.http_timeout_s,
        max_response_bytes=settings.max_response_mb * 1024 * 1024,
        before_request=lambda: limiter.wait_turn(priority),
        on_quota=limiter.observe,
        on_rate_limited=lambda error: limiter.penalize(error.retry_after),
        progress=progress,
    )


def store(settings: Settings) -> Store:
    """The process's Store of one feed (engine and pool), built on first use after any
    fork. Keyed by URL and schema: two feeds on one server keep their tables apart."""
    from trestle_tasks.store.store import Store

    return _once_per_process(f"store:{settings.database_url}:{settings.database_schema}",
                             lambda: Store.from_settings(settings))


def window_gate(settings: Settings) -> RedisWindowGate:
    """The cluster's adaptive limit on windows running at once, per credential (one per
    feed): SYNC_MAX_CONCURRENT_WINDOWS, and with several feeds or polling their fair
    share of the live worker slots (coordination/worker_slots.feed_share)."""
    from trestle_tasks.coordination import worker_slots
    from trestle_tasks.coordination.concurrency import RedisWindowGate

    client = redis_client(settings)
    slots = settings.max_concurrent_windows
    if worker_slots.sharers(settings) > 1:
        slots = worker_slots.feed_share(slots, worker_slots.live_slots(client),
                                        worker_slots.sharers(settings))
    return RedisWindowGate(client, credential_id(settings), max_slots=slots)


def run_lock(settings: Settings) -> RunLock:
    """The run lock in the target database, for the cluster and a single process alike:
    workers, `sync --local`, reconcile and the demo then exclude each other (see
    coordination/db_lock.py)."""
    from trestle_tasks.coordination.db_lock import DatabaseRunLock

    db = store(settings)
    key = (os.getpid(), f"run-lock:{settings.database_url}:{settings.database_schema}")
    with _per_process_lock:
        lock = _per_process.get(key)
        # Kept per process (its table check runs once), and rebuilt with a new Store.
        if lock is None or lock.engine is not db.engine:
            lock = _per_process[key] = DatabaseRunLock(db.engine, schema=db.schema,
                                                       retry=db.retry)
        return lock


def redis_cooldown(settings: Settings) -> Cooldown:
    """The alert cooldown the cluster's processes share, in Redis, per credential."""
    from trestle_tasks.monitoring.alerts.cooldown import RedisCooldown

    return RedisCooldown(redis_client(settings), prefix=f"trestle:alert:{credential_id(settings)}:")


def file_cooldown(settings: Settings) -> Cooldown:
    """The alert cooldown of runs in single processes, in files under LOCK_DIR: one
    `sync --local` after another (cron) must not repeat an alert, so not in memory (see
    monitoring/alerts/cooldown.py)."""
    from trestle_tasks.monitoring.alerts.cooldown import FileCooldown

    return FileCooldown(Path(settings.lock_dir) if settings.lock_dir
                        else Path(tempfile.gettempdir()))


def alert_dispatcher(settings: Settings, cooldown: Cooldown) -> AlertDispatcher:
    """Channels from the ALERT_* settings, each alert sent at most once per cooldown."""
    from trestle_tasks.monitoring.alerts.channels import (
        SlackChannel,
        SmtpChannel,
        WebhookChannel,
        default_sender,
    )
    from trestle_tasks.monitoring.alerts.dispatcher import AlertDispatcher

    channels: list[Any] = []
    if settings.alert_email_to and settings.alert_smtp_host:
        channels.append(SmtpChannel(
            host=settings.alert_smtp_host, port=settings.alert_smtp_port,
            sender=settings.alert_email_from or default_sender(),
            recipients=settings.alert_email_to, user=settings.alert_smtp_user,
            password=settings.alert_smtp_password, starttls=settings.alert_smtp_starttls,
        ))
    if settings.alert_webhook_url:
        channels.append(WebhookChannel(settings.alert_webhook_url))
    if settings.alert_slack_webhook_url:
        channels.append(SlackChannel(settings.alert_slack_webhook_url))
    # With several feeds every alert names its feed; with one, alerts read as they always did.
    return AlertDispatcher(channels, cooldown, cooldown_s=settings.alert_cooldown_minutes * 60,
                           feed=settings.feed if settings.feed_names else None)
