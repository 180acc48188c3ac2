"""Suppressing repeats: one alert per dedup key per cooldown, across processes.

A claim is taken before delivery and given back when every channel failed, so two workers
raising the same alert at once send it once, and an alert that could not be delivered is
tried again by its next occurrence instead of being silenced for a whole cooldown.

- `RedisCooldown` serves the Celery workers: `SET key token NX PX` is atomic cluster-wide.
- `FileCooldown` serves `sync --local` without Redis. Process memory would not do: a cron
  job is a new process every five minutes, exactly the repeat a cooldown must stop. A file
  per key under LOCK_DIR with flock around the check-and-set covers every process on the
  machine.
- `MemoryCooldown` is for tests and embedding.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import redis


class Cooldown(Protocol):
    def claim(self, key: str, ttl_s: float) -> str | None:
        """A token when the caller may send this alert now; None while it is cooling down."""

    def release(self, key: str, token: str) -> None:
        """Give a claim back (nothing was delivered); only the claim with `token` is freed."""


def _token() -> str:
    return uuid.uuid4().hex


_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class RedisCooldown:
    def __init__(self, client: redis.Redis, *, prefix: str = "trestle:alert:") -> None:
        self._redis = client
        self._prefix = prefix
        self._release = client.register_script(_RELEASE)

    def claim(self, key: str, ttl_s: float) -> str | None:
        token = _token()
        if ttl_s <= 0:
            return token  # no cooldown configured: every occurrence goes out
        taken = self._redis.set(self._prefix + key, token, nx=True, px=max(int(ttl_s * 1000), 1))
        return token if taken else None

    def release(self, key: str, token: str) -> None:
        self._release(keys=[self._prefix + key], args=[token])


class MemoryCooldown:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._until: dict[str, tuple[float, str]] = {}
        self._lock = threading.Lock()
        self._clock = clock

    def claim(self, key: str, ttl_s: float) -> str | None:
        token = _token()
        if ttl_s <= 0:
            return token
        now = self._clock()
        with self._lock:
            held = self._until.get(key)
            if held is not None and held[0] > now:
                return None
            self._until[key] = (now + ttl_s, token)
        return token

    def release(self, key: str, token: str) -> None:
        with self._lock:
            if self._until.get(key, (0.0, ""))[1] == token:
                del self._until[key]


class FileCooldown:
    """`<expiry epoch seconds> <token>` in one small file per key, changed under flock."""

    def __init__(self, directory: Path, clock: Callable[[], float] = time.time) -> None:
        self._directory = directory
        self._clock = clock

    def _path(self, key: str) -> Path:
        digest = hashlib.sha256(key.encode()).hexdigest()[:24]
        return self._directory / f"trestle-etl-alert-{digest}.cooldown"

    def _locked(self, key: str, change: Callable[[str], str | None]) -> None:
        self._directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._path(key), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            current = os.read(fd, 256).decode(errors="replace")
            new = change(current)
            if new is not None:
                os.lseek(fd, 0, os.SEEK_SET)
                os.ftruncate(fd, 0)
                os.write(fd, new.encode())
        finally:
            os.close(fd)  # closing drops the flock

    def claim(self, key: str, ttl_s: float) -> str | None:
        token = _token()
        if ttl_s <= 0:
            return token
        granted: list[str] = []

        def change(current: str) -> str | None:
            expiry_text, _, _ = current.partition(" ")
            try:
                expiry = float(expiry_text)
            except ValueError:
                expiry = 0.0  # empty or unreadable: not cooling down
            now = self._clock()
            if expiry > now:
                return None
            granted.append(token)
            return f"{now + ttl_s:.3f} {token}"

        self._locked(key, change)
        return granted[0] if granted else None

    def release(self, key: str, token: str) -> None:
        self._locked(key, lambda current: "" if current.partition(" ")[2] == token else None)
