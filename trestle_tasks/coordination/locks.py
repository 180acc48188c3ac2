"""Run locks: one run per (credential, resource) at a time, with fencing tokens.

A lock has a TTL and is renewed while its run lives, so a crashed holder frees it by
itself. Every acquisition gets a fencing token larger than any before it; the watermark
only accepts advances from a token at least as new as the last one, so a run that lost its
lock (a long pause, a Redis restart) cannot move the watermark behind its successor's back.

`RedisRunLock` serves the cluster. `FileRunLock` serves `sync --local` and the demo on one
machine without Redis: the kernel holds the lock for exactly as long as the process lives.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import redis

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LockGrant:
    name: str
    owner: str
    fence: int


@dataclass(frozen=True)
class LockHolder:
    owner: str
    fence: int
    ttl_s: float | None


class RunLock(Protocol):
    def acquire(self, name: str, owner: str, ttl_s: float) -> LockGrant | None:
        """The grant, or None when someone else holds the lock."""

    def renew(self, grant: LockGrant, ttl_s: float) -> bool:
        """Extend the lock; False when it is no longer ours."""

    def release(self, grant: LockGrant) -> bool:
        """Free the lock if it is still ours; False otherwise (never frees another's)."""

    def holder(self, name: str) -> LockHolder | None: ...


_ACQUIRE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return false end
local fence = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], ARGV[1] .. '|' .. fence, 'PX', ARGV[2])
return fence
"""
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class RedisRunLock:
    def __init__(self, client: redis.Redis, *, prefix: str = "trestle:lock:") -> None:
        self._redis = client
        self._prefix = prefix
        self._acquire = client.register_script(_ACQUIRE)
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)

    def _keys(self, name: str) -> list[str]:
        return [f"{self._prefix}{name}", f"{self._prefix}{name}:fence"]

    def acquire(self, name: str, owner: str, ttl_s: float) -> LockGrant | None:
        if "|" in owner:
            raise ValueError("a lock owner may not contain '|'")
        fence = self._acquire(keys=self._keys(name), args=[owner, int(ttl_s * 1000)])
        return None if fence is None else LockGrant(name, owner, int(fence))

    def renew(self, grant: LockGrant, ttl_s: float) -> bool:
        value = f"{grant.owner}|{grant.fence}"
        return bool(self._renew(keys=self._keys(grant.name)[:1], args=[value, int(ttl_s * 1000)]))

    def release(self, grant: LockGrant) -> bool:
        value = f"{grant.owner}|{grant.fence}"
        return bool(self._release(keys=self._keys(grant.name)[:1], args=[value]))

    def holder(self, name: str) -> LockHolder | None:
        key = self._keys(name)[0]
        pipe = self._redis.pipeline()
        pipe.get(key)
        pipe.pttl(key)
        raw, pttl = pipe.execute()
        if raw is None:
            return None
        owner, _, fence = raw.decode().rpartition("|")
        return LockHolder(owner, int(fence), pttl / 1000 if pttl and pttl > 0 else None)


class FileRunLock:
    """flock(2) on a file per lock name: held while this process keeps it open."""

    def __init__(self, directory: Path) -> None:
        self._directory = directory
        self._open: dict[str, int] = {}
        self._guard = threading.Lock()

    def _path(self, name: str) -> Path:
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
        return self._directory / f"trestle-etl-{safe}.lock"

    def acquire(self, name: str, owner: str, ttl_s: float) -> LockGrant | None:
        self._directory.mkdir(parents=True, exist_ok=True)
        path = self._path(name)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        # Nanosecond time is a fence that only grows on one machine.
        fence = time.time_ns()
        os.ftruncate(fd, 0)
        os.write(fd, f"{owner}|{fence}|{os.getpid()}\n".encode())
        with self._guard:
            self._open[name] = fd
        return LockGrant(name, owner, fence)

    def renew(self, grant: LockGrant, ttl_s: float) -> bool:
        with self._guard:
            return grant.name in self._open

    def release(self, grant: LockGrant) -> bool:
        with self._guard:
            fd = self._open.pop(grant.name, None)
        if fd is None:
            return False
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
        return True

    def holder(self, name: str) -> LockHolder | None:
        path = self._path(name)
        if not path.exists():
            return None
        fd = os.open(path, os.O_RDONLY)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                text = path.read_text(encoding="utf-8", errors="replace").strip()
                owner, _, rest = text.partition("|")
                fence = rest.split("|", 1)[0]
                return LockHolder(owner, int(fence) if fence.isdigit() else 0, None)
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        finally:
            os.close(fd)


class LockKeeper:
    """Renews a grant in the background while a run lives; notices when it is lost."""

    def __init__(self, lock: RunLock, grant: LockGrant, ttl_s: float) -> None:
        self._lock = lock
        self._grant = grant
        self._ttl_s = ttl_s
        self._stop = threading.Event()
        self.lost = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"lock-keeper-{grant.name}",
                                        daemon=True)

    def __enter__(self) -> LockKeeper:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self._ttl_s / 3):
            try:
                still_ours = self._lock.renew(self._grant, self._ttl_s)
            except Exception as error:  # a Redis blip: the TTL covers a few missed beats
                log.warning("could not renew lock %s: %s", self._grant.name, error)
                continue
            if not still_ours:
                self.lost.set()
                return
