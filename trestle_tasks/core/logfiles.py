"""Log files that several processes write and rotate together, without losing a line.

Celery's prefork pool runs one process per slot, all configured by the parent before it
forks, so every process writes the same `LOG_DIR` files. `RotatingFileHandler` is not
safe there: each process rotates on its own idea of the size, renames the file under the
others, and keeps writing to a renamed (or deleted) file.

Here every write and every rotation happens under an exclusive `flock` on a lock file next
to the log. Under the lock a process first reopens the log if another process rotated it
(the path no longer names the file it holds open), rotates if the next line would pass the
size limit, then appends the whole line with one `write()` on an `O_APPEND` descriptor. So
lines never interleave, none lands in a file already rotated away, and the size limit holds
across processes. The lock and the descriptors are per process (reopened after a fork),
because a lock inherited across `fork()` would be shared with the parent, not exclusive.

`flock` is advisory and local: give each host its own `LOG_DIR` (not a network share).
"""

from __future__ import annotations

import fcntl
import logging
import os
from pathlib import Path


class SharedRotatingFileHandler(logging.Handler):
    """A size-rotated log file (name, name.1 … name.N) shared safely by many processes."""

    def __init__(self, path: str | Path, *, max_bytes: int, backup_count: int) -> None:
        super().__init__()
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.backup_count = backup_count
        self._lock_path = self.path.with_name(self.path.name + ".lock")
        self._pid = -1
        self._fd = -1
        self._lock_fd = -1
        # The file exists from the start, as with logging's own file handlers: an operator
        # (or a log shipper) looking for it should not find nothing before the first line.
        os.close(self._open_log())

    def emit(self, record: logging.LogRecord) -> None:
        try:
            data = (self.format(record) + "\n").encode("utf-8", "backslashreplace")
            self._write(data)
        except Exception:
            self.handleError(record)

    def _write(self, data: bytes) -> None:
        self._own_descriptors()
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
        try:
            self._follow_rotation()
            size = os.fstat(self._fd).st_size
            if size > 0 and size + len(data) > self.max_bytes:
                self._rotate()
            written = os.write(self._fd, data)
            while written < len(data):  # a short write (rare: signals, full disks)
                written += os.write(self._fd, data[written:])
        finally:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def _own_descriptors(self) -> None:
        """Open (or reopen after a fork) this process's own log and lock descriptors."""
        if self._pid == os.getpid():
            return
        # A forked child closes its copies of the parent's descriptors (the parent's stay
        # open) and takes its own: sharing the lock's open file description with the
        # parent would make flock() exclude neither of them.
        for inherited in (self._fd, self._lock_fd):
            if inherited >= 0:
                os.close(inherited)
        self._pid = os.getpid()
        self._lock_fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        self._fd = self._open_log()

    def _open_log(self) -> int:
        return os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)

    def _follow_rotation(self) -> None:
        """Another process rotated: write to the file the path names now."""
        try:
            current = os.stat(self.path)
        except FileNotFoundError:
            current = None
        held = os.fstat(self._fd)
        if current is None or (current.st_ino, current.st_dev) != (held.st_ino, held.st_dev):
            os.close(self._fd)
            self._fd = self._open_log()

    def _rotate(self) -> None:
        os.close(self._fd)
        if self.backup_count > 0:
            for index in range(self.backup_count - 1, 0, -1):
                older = self._backup(index)
                if older.exists():
                    os.replace(older, self._backup(index + 1))
            os.replace(self.path, self._backup(1))
        else:
            self.path.unlink(missing_ok=True)
        self._fd = self._open_log()

    def _backup(self, index: int) -> Path:
        return self.path.with_name(f"{self.path.name}.{index}")

    def close(self) -> None:
        # Only this process's own descriptors; copies inherited and never used are closed
        # with the process.
        if self._pid == os.getpid():
            for fd in (self._fd, self._lock_fd):
                if fd >= 0:
                    os.close(fd)
            self._fd = self._lock_fd = -1
            self._pid = -1
        super().close()
