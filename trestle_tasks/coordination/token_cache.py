"""The token cache shared by every worker of one credential, in Redis.

One token fetch per credential per token lifetime, not one per worker or task: a worker
that finds no valid token takes a Redis lock, checks again, and only then fetches.

Tokens are stored sealed (trestle/token_seal.py): Redis holds no bearer token and no
secret, only ciphertext that the holders of the client secret can open.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, suppress

import redis
from redis.exceptions import LockError

from trestle_tasks.trestle.token_cache import CachedToken
from trestle_tasks.trestle.token_seal import TokenSeal

# Delete the key only while it still holds the token the caller saw refused. Redis cannot
# open the seal, so the envelope names its token by a keyed hash ('tid'); a value that is
# not such an envelope (an older plain-text entry) is not ours to judge and is left to expire.
_COMPARE_AND_DELETE = """
local current = redis.call('GET', KEYS[1])
if not current then return 0 end
local ok, envelope = pcall(cjson.decode, current)
if ok and type(envelope) == 'table' and envelope['tid'] == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class RedisTokenCache:
    """Shared by every worker that uses one credential: one token fetch per token lifetime."""

    def __init__(self, client: redis.Redis, seal: TokenSeal, *,
                 lock_timeout_s: float = 60.0) -> None:
        self._redis = client
        self._seal = seal
        self._lock_timeout_s = lock_timeout_s
        self._discard = client.register_script(_COMPARE_AND_DELETE)

    def get(self, key: str) -> CachedToken | None:
        raw = self._redis.get(key)
        return None if raw is None else self._seal.open(key, raw)

    def put(self, key: str, token: CachedToken, ttl_s: float) -> None:
        self._redis.set(key, self._seal.seal(key, token), px=max(1, int(ttl_s * 1000)))

    def discard(self, key: str, access_token: str) -> None:
        self._discard(keys=[key], args=[self._seal.token_id(access_token)])

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
