"""The window ledger on SQLite, MariaDB and PostgreSQL: a plan kept in the database, windows
handed out in order only with a gate slot, one delivery per dispatch token, dead workers'
windows handed out again, crashes counted, transient failures waiting their turn."""

from __future__ import annotations

import time

from tests.store_fixtures import StoreTarget, store_target  # noqa: F401
from trestle_tasks.store.migrate import evolve_bookkeeping
from trestle_tasks.store.sync_log import FAILED, RUNNING, SUCCEEDED, SyncLog
from trestle_tasks.sync.handout import hand_out, hand_out_all, slot_holder
from trestle_tasks.sync.ledger import (
    GAVE_UP,
    PENDING,
    QUEUED,
    RUN,
    STALE,
    WAIT,
    WindowLedger,
)
from trestle_tasks.sync.model import RunPlan, Window, WindowOutcome

RESOURCE = "Property"


class CountingGate:
    """The window gate's contract in memory: holders up to `max_slots`, a holder keeps its
    slot when it asks again."""

    def __init__(self, max_slots: int) -> None:
        self.max_slots = max_slots
        self.holders: set[str] = set()
        self.peak = 0

    def acquire(self, holder: str, ttl_s: float) -> bool:
        if holder in self.holders or len(self.holders) < self.max_slots:
            self.holders.add(holder)
            self.peak = max(self.peak, len(self.holders))
            return True
        return False

    def release(self, holder: str) -> None:
        self.holders.discard(holder)


def a_plan(run_id: str, windows: int) -> RunPlan:
    return RunPlan(run_id=run_id, resource=RESOURCE, key_field="ListingKey", lower_ticks=None,
                   upper_ticks=10_000, lock_name=RESOURCE, lock_owner=run_id, fence=7,
                   windows=tuple(Window(i, i * 100 or None, (i + 1) * 100, 50)
                                 for i in range(windows)))


def planned(target: StoreTarget, run_id: str = "run-1", windows: int = 5
            ) -> tuple[WindowLedger, RunPlan]:
    evolve_bookkeeping(target.engine, target.schema)
    plan = a_plan(run_id, windows)
    SyncLog(target.engine, schema=target.schema).open_run(
        run_id, RESOURCE, windows_total=windows, details={"expected_records": 250})
    ledger = WindowLedger(target.engine, schema=target.schema)
    ledger.record_plan(plan)
    ledger.record_plan(plan)  # a planning task delivered twice adds nothing
    return ledger, plan


def test_the_plan_is_kept_and_read_back_whole(store_target):  # noqa: F811
    ledger, plan = planned(store_target)
    assert ledger.plan("run-1", RESOURCE) == plan
    assert ledger.header("run-1", RESOURCE) == plan.header()
    assert "windows" not in plan.header()
    assert [w.status for w in ledger.windows("run-1", RESOURCE)] == [PENDING] * 5
    assert ledger.open_runs() == [("run-1", RESOURCE)]
    assert ledger.unfinished("run-1", RESOURCE) == 5
    sync_log = SyncLog(store_target.engine, schema=store_target.schema)
    assert sync_log.get_run("run-1", RESOURCE).details["expected_records"] == 250


def test_windows_go_out_in_order_only_with_a_slot(store_target):  # noqa: F811
    ledger, _ = planned(store_target)
    gate, sent = CountingGate(2), []
    count, full = hand_out(ledger, gate, "run-1", RESOURCE,
                           lambda r, s, w, t: sent.append((w.index, t)), slot_ttl_s=60)
    assert (count, full) == (2, True)
    assert sent == [(0, 1), (1, 1)]
    assert gate.holders == {slot_holder("run-1", RESOURCE, "w00000"),
                            slot_holder("run-1", RESOURCE, "w00001")}
    # Nothing more goes out until a slot frees; waiting windows cost no message.
    assert hand_out_all(ledger, gate, ledger.open_runs(), lambda *a: sent.append(a),
                        slot_ttl_s=60) == 0
    assert len(sent) == 2
    statuses = [w.status for w in ledger.windows("run-1", RESOURCE)]
    assert statuses == [QUEUED, QUEUED, PENDING, PENDING, PENDING]


def test_one_delivery_per_dispatch_and_finishing_frees_the_next(store_target):  # noqa: F811
    ledger, _ = planned(store_target, windows=3)
    gate, sent = CountingGate(1), []
    hand_out(ledger, gate, "run-1", RESOURCE, lambda r, s, w, t: sent.append((w, t)),
             slot_ttl_s=60)
    (window, token), = sent
    ids = ("run-1", RESOURCE, window.window_id)
    assert ledger.claim(*ids, token, stale_s=30, max_crashes=3)[0] == RUN
    # The same dispatch delivered again while its worker beats: it must wait, not run.
    assert ledger.claim(*ids, token, stale_s=30, max_crashes=3)[0] == WAIT
    assert ledger.claim(*ids, token - 1, stale_s=30, max_crashes=3)[0] == STALE
    assert ledger.heartbeat(*ids, token)
    outcome = WindowOutcome(window.window_id, window.index, SUCCEEDED, fetched=50)
    assert ledger.settle(*ids, token, outcome)
    assert ledger.claim(*ids, token, stale_s=0, max_crashes=3)[0] == STALE  # finished
    gate.release(slot_holder(*ids))
    hand_out(ledger, gate, "run-1", RESOURCE, lambda r, s, w, t: sent.append((w, t)),
             slot_ttl_s=60)
    assert [w.index for w, _ in sent] == [0, 1]
    assert ledger.unfinished("run-1", RESOURCE) == 2
    assert ledger.outcomes("run-1", RESOURCE) == [outcome]


def test_a_dead_workers_window_is_handed_out_again_and_fails_after_crashes(
        store_target):  # noqa: F811
    ledger, _ = planned(store_target, windows=1)
    gate, sent = CountingGate(1), []

    def send(run_id, resource, window, token):
        sent.append(token)

    for crash in range(1, 3):
        hand_out(ledger, gate, "run-1", RESOURCE, send, slot_ttl_s=60)
        ids = ("run-1", RESOURCE, "w00000")
        assert ledger.claim(*ids, sent[-1], stale_s=30, max_crashes=3)[0] == RUN
        time.sleep(0.01)  # the worker dies here: its heartbeat stops
        changes = ledger.requeue_stale("run-1", RESOURCE, running_stale_s=0,
                                       queued_stale_s=3600, max_crashes=3)
        assert [str(c) for c in changes] == [
            "w00000: its worker stopped beating: handed out again"]
        assert not changes[0].gave_up
        row, = ledger.windows("run-1", RESOURCE)
        assert (row.status, row.crashes) == (PENDING, crash)
        # The dead delivery, should its message come back, finds an old token.
        assert not ledger.heartbeat(*ids, sent[-1])
    # A third death: RabbitMQ redelivers the message of the dispatch that died; taking it
    # over would be the third crash, so the window fails for good instead.
    hand_out(ledger, gate, "run-1", RESOURCE, send, slot_ttl_s=60)
    assert ledger.claim(*ids, sent[-1], stale_s=30, max_crashes=3)[0] == RUN
    time.sleep(0.01)
    assert ledger.claim(*ids, sent[-1], stale_s=0, max_crashes=3)[0] == GAVE_UP
    row, = ledger.windows("run-1", RESOURCE)
    assert (row.status, row.crashes) == (FAILED, 3)
    outcome, = ledger.outcomes("run-1", RESOURCE)
    assert outcome.status == FAILED and not outcome.retriable and "died 3 times" in outcome.error
    assert ledger.unfinished("run-1", RESOURCE) == 0


def test_a_lost_message_and_a_transient_failure(store_target):  # noqa: F811
    ledger, _ = planned(store_target, windows=2)
    gate, sent = CountingGate(2), []
    hand_out(ledger, gate, "run-1", RESOURCE, lambda r, s, w, t: sent.append((w, t)),
             slot_ttl_s=60)
    time.sleep(0.01)
    # Window 0's message was lost (a Redis restart): queued, never started.
    assert [str(c) for c in ledger.requeue_stale(
        "run-1", RESOURCE, running_stale_s=3600, queued_stale_s=0, max_crashes=3)] == [
        "w00000: its message never started: handed out again",
        "w00001: its message never started: handed out again"]
    old_token = sent[0][1]
    hand_out(ledger, gate, "run-1", RESOURCE, lambda r, s, w, t: sent.append((w, t)),
             slot_ttl_s=60)
    new_token = sent[2][1]
    assert new_token == old_token + 1
    ids = ("run-1", RESOURCE, "w00000")
    assert ledger.claim(*ids, old_token, stale_s=30, max_crashes=3)[0] == STALE
    assert ledger.claim(*ids, new_token, stale_s=30, max_crashes=3)[0] == RUN
    failure = WindowOutcome("w00000", 0, FAILED, error="503", retriable=True)
    assert ledger.settle(*ids, new_token, failure, retry_in_s=3600)
    row = ledger.windows("run-1", RESOURCE)[0]
    assert (row.status, row.retries) == (PENDING, 1)
    # Not handed out before its retry time (window 1 is out again already).
    assert ledger.dispatchable("run-1", RESOURCE, 10) == []
    assert ledger.unfinished("run-1", RESOURCE) == 2


def test_a_window_finished_but_not_settled_is_settled_by_the_watchdog(
        store_target):  # noqa: F811
    ledger, _ = planned(store_target, windows=1)
    sent = []
    hand_out(ledger, CountingGate(1), "run-1", RESOURCE,
             lambda r, s, w, t: sent.append(t), slot_ttl_s=60)
    ids = ("run-1", RESOURCE, "w00000")
    assert ledger.claim(*ids, sent[0], stale_s=30, max_crashes=3)[0] == RUN
    sync_log = SyncLog(store_target.engine, schema=store_target.schema)
    sync_log.start_window(*ids)
    sync_log.finish_window(*ids, status=SUCCEEDED, api_requests=2)
    assert ledger.unfinished("run-1", RESOURCE) == 1  # killed before it recorded its outcome
    time.sleep(0.01)
    assert [str(c) for c in ledger.requeue_stale(
        "run-1", RESOURCE, running_stale_s=0, queued_stale_s=0, max_crashes=3)] == [
        "w00000: settled from its sync log row"]
    assert ledger.unfinished("run-1", RESOURCE) == 0
    outcome, = ledger.outcomes("run-1", RESOURCE)
    assert (outcome.status, outcome.requests) == (SUCCEEDED, 2)
    assert sync_log.windows("run-1", RESOURCE)[0].status == SUCCEEDED != RUNNING


def test_a_window_whose_last_allowed_crash_the_watchdog_sees_is_given_up(
        store_target):  # noqa: F811
    ledger, _ = planned(store_target, windows=1)
    sent = []
    hand_out(ledger, CountingGate(1), "run-1", RESOURCE,
             lambda r, s, w, t: sent.append(t), slot_ttl_s=60)
    assert ledger.claim("run-1", RESOURCE, "w00000", sent[0], stale_s=30,
                        max_crashes=1)[0] == RUN
    time.sleep(0.01)  # its worker dies
    change, = ledger.requeue_stale("run-1", RESOURCE, running_stale_s=0,
                                   queued_stale_s=3600, max_crashes=1)
    assert (change.window_id, change.gave_up) == ("w00000", True)
    assert str(change) == "w00000: failed after 1 crashes"
    assert ledger.unfinished("run-1", RESOURCE) == 0
