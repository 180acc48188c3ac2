"""Checks a command makes before it starts work that needs a service.

Without them a missing Redis shows up as twenty seconds of Celery reconnect attempts and a
traceback; with them it is one line naming the URL and what to do.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from trestle_tasks.core.errors import ConfigurationError, FatalError
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


def require_database(engine: Any) -> None:
    """Open and close one connection, so an unreachable or refusing database fails the
    command at once (as the driver's own error) instead of after the store's retry budget,
    which is there for outages in the middle of a run. A database that does not exist is
    a ConfigurationError saying how to create it: the driver's "Unknown database" does not."""
    import sqlalchemy as sa

    try:
        with engine.connect():
            pass
    except sa.exc.OperationalError as error:
        hint = missing_database_hint(engine.url, error)
        if hint is None:
            raise
        raise ConfigurationError(hint) from error


# MySQL/MariaDB: ER_BAD_DB_ERROR. PostgreSQL says it in words (SQLSTATE 3D000 is not
# always passed on for a connection refused at start-up).
_MYSQL_UNKNOWN_DATABASE = 1049


def missing_database_hint(url: Any, error: BaseException) -> str | None:
    """How to create the database `url` names, if `error` says it does not exist."""
    orig = getattr(error, "orig", None)
    args = getattr(orig, "args", ())
    backend, name = url.get_backend_name(), url.database
    where = f"{url.host or 'localhost'}:{url.port or ''}".rstrip(":")
    if backend in ("mysql", "mariadb") and args and args[0] == _MYSQL_UNKNOWN_DATABASE:
        return (f"database {name!r} does not exist on {where}: create it with "
                f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4; "
                "(then run `trestle-etl migrate`)")
    if backend == "postgresql" and f'database "{name}" does not exist' in str(orig):
        return (f"database {name!r} does not exist on {where}: create it with "
                f'CREATE DATABASE "{name}"; (or createdb {name}; then run '
                "`trestle-etl migrate`)")
    return None
