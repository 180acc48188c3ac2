"""Celery settings, read from the environment through the one settings reader.

`celeryconfig.py` at the repository root re-exports these (and is the place to override
them); a worker started anywhere else falls back to this module.
"""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlsplit

from kombu.entity import Queue

from trestle_tasks.coordination.presence import WATCHDOG_INTERVAL_S
from trestle_tasks.core.feeds import DEFAULT_FEED, load_feeds
from trestle_tasks.core.settings import Settings, load_settings

_settings = load_settings(require_credentials=False)
# Beat triggers each feed's resources at the feed's own interval (TRESTLE_FEEDS).
_feeds = load_feeds(require_credentials=False)

broker_url = _settings.broker_url
result_backend = _settings.result_backend

# JSON only: task arguments stay readable in Flower and nothing executable crosses the wire.
task_serializer = "json"
result_serializer = "json"
accept_content = ["json"]
timezone = "UTC"
enable_utc = True

# A window is acknowledged only when it finished: a worker killed mid-window gets its
# message redelivered (RabbitMQ at once, Redis after its visibility timeout), never
# silently dropped. Redelivery alone is not recovery, though: the window ledger's tokens
# drop a delivery that lost its window, and the watchdog (`trestle.watch_runs` on beat)
# hands out again, within about a minute, a window whose worker stopped beating. A window
# that kills its worker every time is failed after a few crashes instead of looping.
task_acks_late = True
task_reject_on_worker_lost = True
worker_prefetch_multiplier = 1
task_track_started = True
# Flower (and `celery events`) see tasks only when workers send events.
worker_send_task_events = True
task_send_sent_event = True
result_expires = timedelta(days=1)
# A pool process that grew past CELERY_WORKER_MAX_MEMORY_MB is replaced once its task ends
# (Celery counts KiB), so one huge page or a slow leak cannot grow a worker until the
# kernel kills it mid-window.
worker_max_memory_per_child = _settings.worker_max_memory_mb * 1024 or None

WINDOW_SOFT_LIMIT_S = 3 * 3600
WINDOW_HARD_LIMIT_S = WINDOW_SOFT_LIMIT_S + 300
# Longer than the longest task, or the broker hands a window that is still running to a
# second worker. Redis: its visibility timeout (a dead worker's window comes back through
# the watchdog, not through this). RabbitMQ has no such option: its server's
# `consumer_timeout` (30 minutes by default) must be raised instead; see docs/deployment.md.
_LONGEST_TASK_S = WINDOW_HARD_LIMIT_S + 3600
_scheme = urlsplit(broker_url).scheme
if _scheme in ("redis", "rediss", "redis+socket"):
    broker_transport_options = {"visibility_timeout": _LONGEST_TASK_S}
if _scheme == "redis":
    # kombu's Redis transport, but a worker that loses Redis mid-task reconnects instead
    # of exiting (celery_broker.py).
    broker_transport = "trestle_tasks.worker.celery_broker:Transport"
elif _scheme in ("amqp", "amqps", "pyamqp"):
    # A message is only sent once the broker confirmed it: a window handed out during a
    # broker restart is never lost unnoticed.
    broker_transport_options = {"confirm_publish": True}
if urlsplit(result_backend).scheme in ("redis", "rediss", "redis+socket"):
    result_backend_transport_options = {"visibility_timeout": _LONGEST_TASK_S}
broker_connection_retry_on_startup = True

# Separate queues, so a long backfill in `windows` cannot starve planning and finalizing.
task_queues = (
    Queue("planning"),
    Queue("windows"),
    Queue("maintenance"),
    Queue("polling"),
)
task_default_queue = "planning"
task_routes = {
    "trestle.plan_sync": {"queue": "planning"},
    "trestle.finalize_sync": {"queue": "planning"},
    "trestle.sync_window": {"queue": "windows"},
    "trestle.hand_out_windows": {"queue": "planning"},
    "trestle.watch_runs": {"queue": "planning"},
    "trestle.reap_stale_runs": {"queue": "maintenance"},
    "trestle.check_alerts": {"queue": "maintenance"},
    "trestle.refresh_metadata": {"queue": "maintenance"},
    "trestle.reconcile": {"queue": "maintenance"},
    "trestle.poll": {"queue": "polling"},
}

# A per-worker ceiling only (Celery applies rate_limit in each worker process); the
# cluster-wide guarantee is the Redis quota limiter every request goes through.
task_annotations = (
    {"trestle.sync_window": {"rate_limit": _settings.worker_rate_limit}}
    if _settings.worker_rate_limit else {}
)




def _entry_name(kind: str, feed: str, resource: str) -> str:
    # The default feed's entries keep the names they always had.
    return f"{kind}-{resource}" if feed == DEFAULT_FEED else f"{kind}-{feed}-{resource}"


def _feed_kwargs(feed: str) -> dict[str, str]:
    return {} if feed == DEFAULT_FEED else {"feed": feed}


def _sync_entries(feed: str, settings: Settings) -> dict[str, dict[str, object]]:
    interval_s = settings.sync_interval_minutes * 60
    return {
        _entry_name("sync", feed, resource): {
            "task": "trestle.plan_sync",
            "schedule": timedelta(seconds=interval_s),
            "args": (resource,),
            # The trigger claims its interval: a second beat by mistake doubles nothing.
            "kwargs": {"beat_interval_s": interval_s, **_feed_kwargs(feed)},
            # A trigger that waited longer than one interval is stale: the next one is due.
            "options": {"expires": interval_s},
        }
        for resource in settings.resources
    }


def _reconcile_entries(feed: str, settings: Settings) -> dict[str, dict[str, object]]:
    return {
        _entry_name("reconcile", feed, resource): {
            "task": "trestle.reconcile",
            "schedule": timedelta(days=1),
            "args": (resource,),
            "kwargs": {"beat_interval_s": 86400, **_feed_kwargs(feed)},
            "options": {"expires": 6 * 3600},
        }
        for resource in settings.resources
    }


# Beat's poll tick: each tick polls only the resources whose adaptive interval is up
# (sync/poll_schedule.py), so a tick this often costs a Trestle request only when one is.
POLL_TICK_S = 2.0


def _poll_entries(feed: str, settings: Settings) -> dict[str, dict[str, object]]:
    if settings.poll_quota_share <= 0:
        return {}
    return {_entry_name("poll", feed, "feed").removesuffix("-feed"): {
        "task": "trestle.poll",
        "schedule": timedelta(seconds=POLL_TICK_S),
        "kwargs": _feed_kwargs(feed),
        "options": {"expires": POLL_TICK_S * 2},
    }}


beat_schedule = {
    **{name: entry for feed, settings in _feeds.items()
       for name, entry in _sync_entries(feed, settings).items()},
    **{name: entry for feed, settings in _feeds.items()
       for name, entry in _reconcile_entries(feed, settings).items()},
    **{name: entry for feed, settings in _feeds.items()
       for name, entry in _poll_entries(feed, settings).items()},
    # The watchdog: dead workers' windows handed out again, finished runs finalized, free
    # window slots filled. In the planning queue: short tasks only, never behind a backfill.
    "watch-runs": {
        "task": "trestle.watch_runs",
        "schedule": timedelta(seconds=WATCHDOG_INTERVAL_S),
        "options": {"expires": WATCHDOG_INTERVAL_S},
    },
    "reap-stale-runs": {
        "task": "trestle.reap_stale_runs",
        "schedule": timedelta(minutes=10),
        "options": {"expires": 600},
    },
    "check-alerts": {
        "task": "trestle.check_alerts",
        "schedule": timedelta(minutes=5),
        "options": {"expires": 300},
    },
    "refresh-metadata": {
        "task": "trestle.refresh_metadata",
        "schedule": timedelta(days=1),
        "options": {"expires": 3600},
    },
}
