"""One poll tick of a feed: the resources that are due, within the budget, one after the
other; each poll's outcome in its hour's sync log row, its freshness recorded, and a
delta too large for the fast path handed to a regular run.

Celery-free: the Celery layer (tasks.py) passes in what it builds from the settings.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from trestle_tasks.coordination.locks import RunLock
from trestle_tasks.store.store import Store
from trestle_tasks.sync.poll import (
    BUSY,
    FAILED,
    NO_WATERMARK,
    POLL_MAX_PAGES,
    POLL_TOP,
    TOO_MANY,
    PollOutcome,
    poll_resource,
)
from trestle_tasks.sync.poll_schedule import PollPolicy, due_order, next_poll_at, schedules
from trestle_tasks.sync.poll_state import PollStateStore
from trestle_tasks.trestle.client import TrestleClient

log = logging.getLogger(__name__)

# A tick polls for at most this long, then leaves the rest to the next tick: a poll of a
# busy feed never holds its worker process for long.
POLL_TICK_WORK_S = 20.0


@dataclass(frozen=True)
class TickServices:
    store: Store
    lock: RunLock
    new_client: Callable[[], TrestleClient]  # a fresh client: its request count its own
    states: PollStateStore
    record_freshness: Callable[[str, Sequence[float]], None]
    record_clock: Callable[[float], None]  # Trestle's clock minus ours, seconds
    escalate: Callable[[str], None]  # start a regular run of the resource


@dataclass(frozen=True)
class TickResult:
    outcomes: list[PollOutcome]
    # When the next poll may go (wall clock): the soonest due resource, or later if the
    # budget is spent till then. The Celery task sends the next tick for that moment when
    # it falls between two of beat's ticks, so a poll is not late by up to a tick.
    next_at: float | None


def poll_log_id(at: datetime) -> str:
    """The sync log row of the polls of one hour (UTC)."""
    return f"poll-{at.astimezone(UTC):%Y%m%dT%H}"


def poll_tick(resources: Sequence[str], services: TickServices, policy: PollPolicy, *,
              settle_s: float = 0.0, with_media: Callable[[str], bool] = lambda _: False,
              work_s: float = POLL_TICK_WORK_S, top: int = POLL_TOP,
              max_pages: int = POLL_MAX_PAGES,
              clock: Callable[[], float] = time.time) -> TickResult | None:
    """Poll what is due; None when another tick has the turn."""
    turn = services.states.take_turn()
    if turn is None:
        return None
    try:
        return _tick(resources, services, policy, settle_s=settle_s, with_media=with_media,
                     work_s=work_s, top=top, max_pages=max_pages, clock=clock)
    finally:
        services.states.end_turn(turn)


def _tick(resources: Sequence[str], services: TickServices, policy: PollPolicy, *,
          settle_s: float, with_media: Callable[[str], bool], work_s: float, top: int,
          max_pages: int, clock: Callable[[], float]) -> TickResult:
    state = services.states.load()
    started = time.monotonic()
    state.resources = schedules(list(resources), state.resources, policy, clock())
    outcomes = []
    for resource in due_order(state.resources, clock()):
        if not state.budget.allows(policy, clock()):
            break  # the budget is spent for now; the most overdue go first next tick
        outcome = _poll_one(resource, services, settle_s=settle_s,
                            with_media=with_media(resource), top=top, max_pages=max_pages)
        now = clock()
        state.budget = state.budget.charge(policy, now, outcome.requests)
        fastest = policy.fastest_intervals(list(resources), state.resources)[resource]
        state.resources[resource] = state.resources[resource].after(outcome.status, policy,
                                                                    now, fastest)
        services.states.save(state)
        outcomes.append(outcome)
        if time.monotonic() - started > work_s:
            break
    services.states.save(state)
    return TickResult(outcomes, next_poll_at(state.resources, state.budget, policy))


def _poll_one(resource: str, services: TickServices, *, settle_s: float, with_media: bool,
              top: int, max_pages: int) -> PollOutcome:
    store = services.store
    log_id = poll_log_id(datetime.now(UTC))
    mark = store.sync_log.read_watermark(resource)
    if mark is None:  # a first load is a run's: no row, no request
        return PollOutcome(resource, NO_WATERMARK)
    store.sync_log.open_poll_log(log_id, resource, watermark_from=mark.text)
    outcome = poll_resource(resource, store=store, client=services.new_client(),
                            lock=services.lock, log_run_id=log_id, with_media=with_media,
                            top=top, max_pages=max_pages, settle_s=settle_s)
    _record(services, log_id, outcome)
    if outcome.status == TOO_MANY:
        log.info("%s changed more than the fast path takes: a run is started", resource)
        services.escalate(resource)
    elif outcome.status == FAILED:
        log.warning("poll of %s failed: %s", resource, outcome.error)
    return outcome


def _record(services: TickServices, log_id: str, outcome: PollOutcome) -> None:
    """The outcome where `status` reads it. Busy polls cost nothing and change nothing:
    they are not written anywhere."""
    if outcome.status == BUSY:
        return
    services.store.sync_log.record_poll(
        log_id, outcome.resource, failed=outcome.status == FAILED, error=outcome.error,
        watermark_to=outcome.watermark_to, api_requests=outcome.requests,
        retries=outcome.retries, rate_limited=outcome.rate_limited,
        api_bytes=outcome.api_bytes,
        tallies={"polls": 1, outcome.status: 1, "media_listings": outcome.media_listings})
    try:
        if outcome.latencies_s:
            services.record_freshness(outcome.resource, outcome.latencies_s)
        if outcome.server_clock_offset_s is not None:
            services.record_clock(outcome.server_clock_offset_s)
    except Exception as error:  # the records are stored; only the figure is lost
        log.warning("could not record freshness: %s", type(error).__name__)
