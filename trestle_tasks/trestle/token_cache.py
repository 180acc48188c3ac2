"""Where access tokens live between requests (the Redis-shared cache is in coordination/).

A cache also offers a fetch lock, so that when a token expires exactly one caller (per
process, or per cluster with Redis) asks the token endpoint while the others wait and then
read what it stored.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class CachedToken:
    access_token: str
    expires_at: float  # epoch seconds
    lifetime_s: float = 0.0

    def __repr__(self) -> str:
        return f"CachedToken(access_token='********', expires_at={self.expires_at})"


class TokenCache(Protocol):
    def get(self, key: str) -> CachedToken | None: ...

    def put(self, key: str, token: CachedToken, ttl_s: float) -> None: ...

    def discard(self, key: str, access_token: str) -> None:
        """Forget the token only if it is still this one (another caller may have refreshed)."""

    def fetch_lock(self, key: str) -> AbstractContextManager[None]: ...


class MemoryTokenCache:
    """One process's cache; the fetch lock serializes this process's threads."""

    def __init__(self) -> None:
        self._tokens: dict[str, CachedToken] = {}
        self._guard = threading.Lock()
        self._fetch_locks: dict[str, threading.Lock] = {}

    def get(self, key: str) -> CachedToken | None:
        with self._guard:
            return self._tokens.get(key)

    def put(self, key: str, token: CachedToken, ttl_s: float) -> None:
        with self._guard:
            self._tokens[key] = token

    def discard(self, key: str, access_token: str) -> None:
        with self._guard:
            current = self._tokens.get(key)
            if current is not None and current.access_token == access_token:
                del self._tokens[key]

    @contextmanager
    def fetch_lock(self, key: str) -> Iterator[None]:
        with self._guard:
            lock = self._fetch_locks.setdefault(key, threading.Lock())
        with lock:
            yield
