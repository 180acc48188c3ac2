"""Server-side cursors behind replication nextLinks.

A cursor remembers the query and a keyset position (the last key served, walking in key
order), not a snapshot: a record modified during the walk stays where its key is, so it
is neither skipped nor served twice among the others. A cursor unused for the configured
TTL expires, as Trestle's do after 5 minutes.
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass

from .query import CollectionQuery


@dataclass
class Cursor:
    resource: str
    query: CollectionQuery
    after_key: str
    last_used: float


class CursorExpired(LookupError):
    pass


class ReplicationCursors:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cursors: dict[str, Cursor] = {}

    def open(self, resource: str, query: CollectionQuery, after_key: str) -> str:
        cursor_id = secrets.token_urlsafe(24)
        with self._lock:
            self._cursors[cursor_id] = Cursor(resource, query, after_key, time.monotonic())
        return cursor_id

    def take(self, cursor_id: str, ttl_s: float) -> Cursor:
        """The cursor for a followed link; raises CursorExpired when unknown or stale."""
        now = time.monotonic()
        with self._lock:
            self._forget_stale(now, ttl_s)
            cursor = self._cursors.get(cursor_id)
            if cursor is None:
                raise CursorExpired(cursor_id)
            cursor.last_used = now
            return cursor

    def advance(self, cursor_id: str, after_key: str) -> None:
        with self._lock:
            cursor = self._cursors.get(cursor_id)
            if cursor is not None:
                cursor.after_key = after_key
                cursor.last_used = time.monotonic()

    def close(self, cursor_id: str) -> None:
        with self._lock:
            self._cursors.pop(cursor_id, None)

    def _forget_stale(self, now: float, ttl_s: float) -> None:
        stale = [key for key, cursor in self._cursors.items() if now - cursor.last_used > ttl_s]
        for key in stale:
            del self._cursors[key]
