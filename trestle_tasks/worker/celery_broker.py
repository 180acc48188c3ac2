"""The Redis broker transport: kombu's own, with a closed connection reported as one.

Celery 5.7.0 handles a lost broker connection by `collect()`ing it, which drops the
transport, and then closing it again. A channel used after that (the second close
restoring an unacknowledged message, a window finishing and acknowledging its message
while the worker reconnects) asks the dropped transport for its connection parameters
and raises AttributeError, which nothing catches: the worker exits with "Unrecoverable
error" instead of reconnecting. Seen whenever Redis restarted under a running window
(a window is always running `acks_late`). Here that case raises redis-py's
ConnectionError, one of the transport's connection errors, which Celery and kombu already
handle: the close is skipped, the acknowledgement logged as lost (the message comes back
by the visibility timeout, or went with a Redis restarted empty: the watchdog sends the
window again), and the worker reconnects.

Used for `redis://` brokers (celery_settings.py: `broker_transport`).
"""

from __future__ import annotations

from typing import Any

from kombu.transport import redis as kombu_redis
from redis.exceptions import ConnectionError as RedisConnectionError


class Channel(kombu_redis.Channel):
    def _connparams(self, asynchronous: bool = False) -> Any:
        if self.connection.client is None:
            raise RedisConnectionError("the broker connection was closed (reconnecting)")
        return super()._connparams(asynchronous=asynchronous)


class Transport(kombu_redis.Transport):
    Channel = Channel
