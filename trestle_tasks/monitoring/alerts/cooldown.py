"""Suppressing repeats: one alert per dedup key per cooldown, across processes.

A claim is taken before delivery and given back when every channel failed, so two workers
raising the same alert at once send it once, and an alert that could not be delivered is
tried again by its next occurrence instead of being silenced for a whole cooldown.

- `RedisCooldown` serves the Celery workers: `SET key token NX PX` is atomic cluster-wide.
- `FileCooldown` serves `sync --local` without Redis. Process memory would not do: a cron
  job is a new process every five minutes, exactly the repeat a cooldown must stop. A file
  per key with flock around the check-and-set covers every process of this user on the
  machine. The files live in a private folder (0700, this user's) under LOCK_DIR or the
  temp dir, never in the shared folder itself: there, anyone could plant a symlink where a
  cooldown file will be opened (and have it truncate another file) or a file that silences
  an alert for years.
- `MemoryCooldown` is for tests and embedding.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import stat
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


log = logging.getLogger(__name__)


def private_folder(parent: Path) -> Path | None:
    """`parent/trestle-etl-alerts-<uid>`, made 0700; None unless it is a real folder of
    this user that nobody else can write to (someone may have made it first, or put a
    symlink there: the parent may be the shared temp dir)."""
    folder = parent / f"trestle-etl-alerts-{os.geteuid()}"
    try:
        parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):
            folder.mkdir(mode=0o700)
        info = folder.lstat()
    except OSError:
        return None
    if (not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid()
            or info.st_mode & 0o077):
        return None
    return folder


class FileCooldown:
    """`<expiry epoch seconds> <token>` in one small file per key, changed under flock.

    Where no private folder can be had (see private_folder), the cooldown is this
    process's only, with a warning: an alert may then repeat, but is never silenced."""

    def __init__(self, directory: Path, clock: Callable[[], float] = time.time) -> None:
        self._parent = directory
        self._directory: Path | None = None
        self._fallback: MemoryCooldown | None = None
        self._clock = clock

    def _folder(self) -> Path | None:
        if self._directory is None and self._fallback is None:
            self._directory = private_folder(self._parent)
            if self._directory is None:
                log.warning("alert cooldowns kept in this process only: %s/trestle-etl-"
                            "alerts-%d is not a private folder of this user (set LOCK_DIR "
                            "to a folder of its own)", self._parent, os.geteuid())
                self._fallback = MemoryCooldown(clock=self._clock)
        return self._directory

    def _path(self, folder: Path, key: str) -> Path:
        digest = hashlib.sha256(key.encode()).hexdigest()[:24]
        return folder / f"trestle-etl-alert-{digest}.cooldown"

    def _locked(self, folder: Path, key: str, change: Callable[[str], str | None]) -> None:
        # O_NOFOLLOW: even in a private folder, never write through a symlink.
        fd = os.open(self._path(folder, key),
                     os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
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
        folder = self._folder()
        if folder is None:
            assert self._fallback is not None
            return self._fallback.claim(key, ttl_s)
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

        self._locked(folder, key, change)
        return granted[0] if granted else None

    def release(self, key: str, token: str) -> None:
        folder = self._folder()
        if folder is None:
            assert self._fallback is not None
            self._fallback.release(key, token)
            return
        self._locked(folder, key,
                     lambda current: "" if current.partition(" ")[2] == token else None)
