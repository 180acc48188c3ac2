"""Handing windows out: a message is sent for a window only once it holds a gate slot.

The window gate caps the windows running at once across the cluster. Instead of sending
every window at once and letting those without a slot bounce through the broker every few
seconds (and, after enough bounces, run without a slot), a window stays `pending` in the
ledger until a slot is free; then the slot is taken in its name and its message sent. A
finishing window frees its slot and hands out the next ones (of every open run, oldest
first); the watchdog on beat does the same every half minute, which also covers slots
freed by expiry. No window runs without its slot, and waiting costs no messages.

Celery-free: `send(window, token)` is what a task passes in.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Protocol

from trestle_tasks.sync.ledger import WindowLedger
from trestle_tasks.sync.model import Window

log = logging.getLogger(__name__)

Send = Callable[[str, str, Window, int], None]  # run_id, resource, window, token


class Gate(Protocol):
    max_slots: int

    def acquire(self, holder: str, ttl_s: float) -> bool: ...

    def release(self, holder: str) -> None: ...


def slot_holder(run_id: str, resource: str, window_id: str) -> str:
    """The gate slot's name: one per window, so every delivery of a window (a redelivery,
    a hand-out after its worker died) uses the same slot instead of taking a second one."""
    return f"{run_id}/{resource}/{window_id}"


def hand_out(ledger: WindowLedger, gate: Gate, run_id: str, resource: str, send: Send, *,
             slot_ttl_s: float) -> tuple[int, bool]:
    """Send the run's pending windows, in order, while slots are free; returns how many
    were sent and whether the gate is full."""
    sent = 0
    for pending in ledger.dispatchable(run_id, resource, limit=gate.max_slots + 1):
        window_id = pending.window.window_id
        if not gate.acquire(slot_holder(run_id, resource, window_id), slot_ttl_s):
            return sent, True
        token = ledger.mark_queued(run_id, resource, window_id, pending.token)
        if token is None:
            continue  # another hand-out sent it a moment ago, in the same slot
        send(run_id, resource, pending.window, token)
        sent += 1
    return sent, False


def hand_out_all(ledger: WindowLedger, gate: Gate, runs: Iterable[tuple[str, str]],
                 send: Send, *, slot_ttl_s: float) -> int:
    """Hand out windows of `runs` (oldest first) until the gate is full."""
    total = 0
    for run_id, resource in runs:
        sent, full = hand_out(ledger, gate, run_id, resource, send, slot_ttl_s=slot_ttl_s)
        total += sent
        if full:
            break
    return total
