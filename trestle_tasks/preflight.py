"""Checks a command makes before it starts work that needs a service.

Without them a missing Redis shows up as twenty seconds of Celery reconnect attempts and a
traceback; with them it is one line naming the URL and what to do.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from trestle_tasks.errors import FatalError
from trestle_tasks.masking import mask_url

REDIS_SCHEMES = ("redis", "rediss", "unix")


def require_redis(url: str, *, needed_for: str, timeout_s: float = 3.0) -> None:
    """Raise FatalError unless the Redis at `url` answers a PING within `timeout_s`."""
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=timeout_s,
                                  socket_timeout=timeout_s)
    try:
        client.ping()
    except (redis.RedisError, OSError) as error:
        reason = " ".join(str(error).split()) or type(error).__name__
        raise FatalError(f"{needed_for} needs Redis, and Redis at {mask_url(url)} did not "
                         f"answer ({reason})") from None
    finally:
        client.close()


def require_broker(broker_url: str, result_backend: str, *, needed_for: str) -> None:
    """Ping the Celery broker and result backend when they are Redis (others are not checked)."""
    for url in dict.fromkeys((broker_url, result_backend)):
        if urlsplit(url).scheme in REDIS_SCHEMES:
            require_redis(url, needed_for=needed_for)


def require_database(engine: Any) -> None:
    """Open and close one connection, so an unreachable or refusing database fails the
    command at once (as the driver's own error) instead of after the store's retry budget,
    which is there for outages in the middle of a run."""
    with engine.connect():
        pass
