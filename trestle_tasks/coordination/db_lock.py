"""The run lock kept in the target database itself, for every mode.

Why the database: it is the one thing every run of a resource shares, whichever way it was
started (Celery workers, `sync --local` from cron, `reconcile`, the demo), so one row there
makes them exclude each other with no Redis needed for local runs. And the fence lives
next to the watermark it guards: a new fence is always greater than both the lock row's
last one and the fence stored with the watermark, so databases written with the older file
lock (whose fences were `time.time_ns()`, about 1.8e18) keep advancing.

Each operation is one conditional UPDATE whose row count says whether it took effect, so
two processes can never both win. Leases are measured by the database server's clock
(store/dbclock.py): hosts whose clocks disagree still agree on when a lease lapsed.

A lapsed lease is free for anyone to take, but until someone does, its holder may resume
it: every acquisition changes the owner and the fence, so a renewal that still finds both
its own proves that nobody held the lock in between. Leases are short (SYNC_LOCK_TTL, a
minute) so that a dead holder frees its resource quickly; resuming keeps a live holder
that was only slow (a busy worker whose renewal waited, a database restart) from failing
its run when nobody wanted the lock meanwhile.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from trestle_tasks.coordination.locks import LockGrant, LockHolder
from trestle_tasks.core.retry import RetryPolicy
from trestle_tasks.store.catalog import upsert_rows
from trestle_tasks.store.dbclock import db_now, db_now_plus
from trestle_tasks.store.dberrors import DEFAULT_DB_RETRY, in_transaction
from trestle_tasks.store.migrate import evolve_bookkeeping, racing_other_migrations
from trestle_tasks.store.schema import RUN_ID_CHARS, bookkeeping

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HeldLock:
    """A lock with an owner, as read at `now` (the database server's clock).

    `orphaned`: the lease lapsed while the owner is still set, so its owner stopped
    renewing it (a killed process, most likely); the next `acquire` takes it over.
    """

    name: str  # the resource
    owner: str  # a run id
    fence: int
    acquired_at: datetime | None
    expires_at: datetime | None
    now: datetime

    @property
    def held_s(self) -> float | None:
        """How long the owner has held it."""
        if self.acquired_at is None:
            return None
        return (self.now - self.acquired_at).total_seconds()

    @property
    def lease_left_s(self) -> float | None:
        """Until the lease lapses; negative once it has."""
        if self.expires_at is None:
            return None
        return (self.expires_at - self.now).total_seconds()

    @property
    def orphaned(self) -> bool:
        left = self.lease_left_s
        return left is None or left <= 0


class DatabaseRunLock:
    """`RunLock` on the `etl_run_lock` table of the store's database.

    A lock name is the resource whose watermark it guards (`lock_name` in locks.py): the
    first fence is taken above that watermark's stored fence.
    """

    def __init__(self, engine: Engine, *, schema: str | None = None,
                 retry: RetryPolicy = DEFAULT_DB_RETRY) -> None:
        self.engine = engine
        self.schema = schema
        self.retry = retry
        tables = bookkeeping(schema)
        self._locks = tables["etl_run_lock"]
        self._marks = tables["etl_watermark"]
        self._ready = False
        self._ready_guard = threading.Lock()

    def acquire(self, name: str, owner: str, ttl_s: float) -> LockGrant | None:
        if len(owner) > RUN_ID_CHARS:
            raise ValueError(f"a lock owner is at most {RUN_ID_CHARS} characters")
        self._ensure_table()
        locks = self._locks

        def work(conn: sa.Connection) -> LockGrant | None:
            upsert_rows(conn, locks, [{"name": name, "owner": None, "fence": 0}])
            now = db_now(conn.dialect)
            taken = conn.execute(sa.update(locks).where(
                locks.c.name == name,
                sa.or_(locks.c.owner.is_(None), locks.c.expires_at <= now),
            ).values(owner=owner, fence=self._next_fence(name), acquired_at=now,
                     expires_at=db_now_plus(conn.dialect, ttl_s)))
            if taken.rowcount != 1:
                # Ours already when a retried transaction had in fact committed.
                return self._live_grant(conn, name, owner)
            fence = conn.execute(sa.select(locks.c.fence).where(
                locks.c.name == name, locks.c.owner == owner)).scalar_one()
            return LockGrant(name, owner, int(fence))

        return self._tx(work)

    def renew(self, grant: LockGrant, ttl_s: float) -> bool:
        self._ensure_table()
        locks = self._locks

        locks = self._locks

        def work(conn: sa.Connection) -> bool:
            # No condition on expires_at: a lapsed lease nobody took is resumed.
            done = conn.execute(sa.update(locks).where(self._is_ours(grant)).values(
                expires_at=db_now_plus(conn.dialect, ttl_s)))
            return done.rowcount == 1

        return bool(self._tx(work))

    def release(self, grant: LockGrant) -> bool:
        """Free the lock if this grant still holds it (its fence too: an owner that lost
        the lock and took it again must not free the newer grant with the older one).
        The fence stays, so fences keep growing across holders."""
        self._ensure_table()
        locks = self._locks

        def work(conn: sa.Connection) -> bool:
            done = conn.execute(sa.update(locks).where(self._is_ours(grant)).values(
                owner=None, acquired_at=None, expires_at=None))
            return done.rowcount == 1

        return bool(self._tx(work))

    def holder(self, name: str) -> LockHolder | None:
        """The live holder; None when the lock is free or its lease lapsed."""
        self._ensure_table()
        locks = self._locks
        with self.engine.connect() as conn:
            now = db_now(conn.dialect)
            row = conn.execute(sa.select(
                locks.c.owner, locks.c.fence, locks.c.expires_at, now.label("now"),
            ).where(locks.c.name == name, locks.c.owner.is_not(None),
                    locks.c.expires_at > now)).first()
        if row is None:
            return None
        return LockHolder(row.owner, int(row.fence),
                          max((row.expires_at - row.now).total_seconds(), 0.0))

    def held_locks(self) -> list[HeldLock]:
        """Every lock with an owner, lapsed leases included, by name; [] on a database
        without the table (never synced: reading must not create it)."""
        if not sa.inspect(self.engine).has_table(self._locks.name, schema=self.schema):
            return []
        locks = self._locks
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(
                locks.c.name, locks.c.owner, locks.c.fence, locks.c.acquired_at,
                locks.c.expires_at, db_now(conn.dialect).label("now"),
            ).where(locks.c.owner.is_not(None)).order_by(locks.c.name)).all()
        return [HeldLock(row.name, row.owner, int(row.fence), row.acquired_at,
                         row.expires_at, row.now) for row in rows]

    # -- helpers --

    def _next_fence(self, name: str) -> sa.ColumnElement[Any]:
        """One more than the lock's last fence and the fence stored with the watermark,
        whichever is larger (portable: no GREATEST on SQLite)."""
        locks, marks = self._locks, self._marks
        stored = sa.select(sa.func.coalesce(sa.func.max(marks.c.fence), 0)).where(
            marks.c.resource == name).scalar_subquery()
        return sa.case((stored > locks.c.fence, stored), else_=locks.c.fence) + 1

    def _is_ours(self, grant: LockGrant) -> sa.ColumnElement[bool]:
        locks = self._locks
        return sa.and_(locks.c.name == grant.name, locks.c.owner == grant.owner,
                       locks.c.fence == grant.fence)

    def _live_grant(self, conn: sa.Connection, name: str, owner: str) -> LockGrant | None:
        locks = self._locks
        fence = conn.execute(sa.select(locks.c.fence).where(
            locks.c.name == name, locks.c.owner == owner,
            locks.c.expires_at > db_now(conn.dialect))).scalar()
        return None if fence is None else LockGrant(name, owner, int(fence))

    def _tx(self, work: Any) -> Any:
        return in_transaction(self.engine, work, policy=self.retry)

    def _ensure_table(self) -> None:
        """Create etl_run_lock (and the other bookkeeping tables) on first use: a run takes
        its lock before it creates anything else, and an older database lacks the table."""
        if self._ready:
            return
        with self._ready_guard:
            if not self._ready:
                racing_other_migrations(lambda: evolve_bookkeeping(self.engine, self.schema))
                self._ready = True
