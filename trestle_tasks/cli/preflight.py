"""Checks a command makes before it starts work that needs a service.

Without them a missing Redis shows up as twenty seconds of Celery reconnect attempts and a
traceback; with them it is one line naming the URL and what to do.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from trestle_tasks.core.errors import FatalError
from trestle_tasks.core.masking import mask_url

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
    """Ping the Celery broker and result backend: Redis by PING, RabbitMQ (amqp://) by
    opening one connection. Others (a database result backend, say) are not checked."""
    for url in dict.fromkeys((broker_url, result_backend)):
        scheme = urlsplit(url).scheme
        if scheme in REDIS_SCHEMES:
            require_redis(url, needed_for=needed_for)
        elif scheme in AMQP_SCHEMES:
            require_amqp(url, needed_for=needed_for)


AMQP_SCHEMES = ("amqp", "amqps", "pyamqp")


def require_amqp(url: str, *, needed_for: str, timeout_s: float = 3.0) -> None:
    """Raise FatalError unless the RabbitMQ at `url` accepts a connection within
    `timeout_s`: without it, Celery's publish fails as a bare "OperationalError"."""
    from kombu.connection import Connection

    connection = Connection(url, connect_timeout=timeout_s)
    try:
        # One attempt: a command is told at once; workers have their own reconnect loop.
        connection.ensure_connection(max_retries=1, interval_start=0, interval_step=0,
                                     timeout=timeout_s)
    except Exception as error:  # kombu wraps socket errors and refusals in its own types
        reason = " ".join(str(error).split()) or type(error).__name__
        raise FatalError(f"{needed_for} needs the Celery broker, and RabbitMQ at "
                         f"{where(url)} did not answer ({reason}); check CELERY_BROKER_URL"
                         ) from None
    finally:
        connection.release()


def where(url: str) -> str:
    """host:port of a service URL: what an error names, never its user or password."""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return parts.path
    try:
        port = parts.port
    except ValueError:
        port = None
    host = parts.hostname or "localhost"
    return f"{host}:{port}" if port is not None else host


def broker_answers(broker_url: str, result_backend: str) -> str:
    """check-config's broker check: what answered, or FatalError naming what did not."""
    require_broker(broker_url, result_backend, needed_for="Celery (sync without --local)")
    shown = [mask_url(url) for url in dict.fromkeys((broker_url, result_backend))]
    return "broker and result backend answer: " + ", ".join(shown)


