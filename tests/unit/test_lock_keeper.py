"""LockKeeper: `lost` is set when the lock is no longer ours, and `ensure_held` stops the
step that must not run without it (renewing on the spot, not waiting for the thread)."""

from __future__ import annotations

import pytest

from trestle_tasks.coordination.locks import LockGrant, LockKeeper
from trestle_tasks.core.errors import LockLostError, is_retriable

GRANT = LockGrant("c:Property", "run-1", 7)


class FakeLock:
    def __init__(self, ours: bool) -> None:
        self.ours = ours
        self.renewals = 0

    def renew(self, grant: LockGrant, ttl_s: float) -> bool:
        self.renewals += 1
        return self.ours


def test_a_held_lock_passes_and_is_renewed_on_the_spot() -> None:
    lock = FakeLock(ours=True)
    with LockKeeper(lock, GRANT, 600) as keeper:
        keeper.ensure_held()
        assert lock.renewals == 1 and not keeper.lost.is_set()


def test_a_lapsed_lock_is_lost_and_stops_the_step() -> None:
    lock = FakeLock(ours=False)
    with LockKeeper(lock, GRANT, 600) as keeper:
        with pytest.raises(LockLostError, match="c:Property") as raised:
            keeper.ensure_held()
        assert keeper.lost.is_set() and is_retriable(raised.value)
        with pytest.raises(LockLostError):  # lost stays lost
            keeper.ensure_held()
        assert lock.renewals == 1


def test_the_background_renewal_notices_a_lost_lock() -> None:
    lock = FakeLock(ours=False)
    with LockKeeper(lock, GRANT, 0.03) as keeper:
        assert keeper.lost.wait(5)
        with pytest.raises(LockLostError):
            keeper.ensure_held()
