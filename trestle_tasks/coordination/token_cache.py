"""The token cache shared by every worker of one credential, in Redis.

One token fetch per credential per token lifetime, not one per worker or task: a worker
that finds no valid token takes a Redis lock, checks again, and only then fetches.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager, suppress

import redis
from redis.exceptions import LockError

from trestle_tasks.trestle.token_cache import CachedToken

# Delete the key only while it still holds the token the caller saw refused.
_COMPARE_AND_DELETE = """
local current = redis.call('GET', KEYS[1])
if current and cjson.decode(current)['access_token'] == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class RedisTokenCache:
    """Shared by every worker that uses one credential: one token fetch per token lifetime."""

    def __init__(self, client: redis.Redis, *, lock_timeout_s: float = 60.0) -> None:
        self._redis = client
        self._lock_timeout_s = lock_timeout_s
        self._discard = client.register_script(_COMPARE_AND_DELETE)

    def get(self, key: str) -> CachedToken | None:
        raw = self._redis.get(key)
        if raw is None:
            return None
        try:
            data = json.loads(raw)
            return CachedToken(
                str(data["access_token"]),
                float(data["expires_at"]),
                float(data.get("lifetime_s", 0.0)),
            )
        except (ValueError, KeyError, TypeError):
            return None

    def put(self, key: str, token: CachedToken, ttl_s: float) -> None:
        payload = json.dumps(
            {
                "access_token": token.access_token,
                "expires_at": token.expires_at,
                "lifetime_s": token.lifetime_s,
            }
        )
        self._redis.set(key, payload, px=max(1, int(ttl_s * 1000)))

    def discard(self, key: str, access_token: str) -> None:
        self._discard(keys=[key], args=[access_token])

    @contextmanager
    def fetch_lock(self, key: str) -> Iterator[None]:
        lock = self._redis.lock(
            f"{key}:fetch",
            timeout=self._lock_timeout_s,
            blocking_timeout=self._lock_timeout_s,
        )
        acquired = lock.acquire()
        try:
            # Not acquired means the holder is stuck past the timeout: fetch anyway rather
            # than stall every worker; the cost is one extra token request.
            yield
        finally:
            if acquired:
                # The lock may have expired meanwhile; then there is nothing to undo.
                with suppress(LockError):
                    lock.release()
