"""Retry policy as an immutable value, and `Retry-After` parsing as a pure function.

The budget is measured in time, not in attempts: a walk that meets a minute-long outage
should ride it out whether that takes four retries or ten.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TypeVar

from trestle_tasks.core.errors import RetriableError, RetriesExhaustedError


def parse_retry_after(value: str | None, *, now: datetime, cap_s: float) -> float | None:
    """Seconds to wait from a `Retry-After` header (delta-seconds or HTTP-date).

    Clamped to [0, cap_s]; None when absent or unreadable (the caller falls back to backoff).
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None:
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - now).total_seconds()
    if seconds != seconds:  # NaN
        return None
    return min(max(seconds, 0.0), cap_s)


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with equal jitter inside a time budget.

    Equal jitter draws each delay from [d/2, d] where d doubles per attempt, so delays never
    shrink from one attempt to the next (until the cap) while workers still spread out.
    Trestle's own advice is 1, 2, 4 … 32 s.
    """

    budget_s: float = 300.0
    base_delay_s: float = 1.0
    max_delay_s: float = 32.0
    max_retry_after_s: float = 300.0

    def __post_init__(self) -> None:
        if self.budget_s < 0 or self.base_delay_s <= 0 or self.max_delay_s < self.base_delay_s:
            raise ValueError("retry policy needs budget >= 0 and 0 < base delay <= max delay")

    def backoff_ceiling(self, attempt: int) -> float:
        """The largest delay for this attempt (0-based), before jitter."""
        # Cap the exponent first: 2**attempt overflows float for very long outages.
        return min(self.max_delay_s, self.base_delay_s * 2 ** min(attempt, 64))

    def delay(
        self,
        attempt: int,
        *,
        retry_after: float | None = None,
        rng: random.Random | None = None,
    ) -> float:
        """Seconds to wait before retry number `attempt` (0-based).

        The server's Retry-After wins when given (clamped), since it knows when its window
        resets; otherwise backoff with equal jitter.
        """
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_retry_after_s)
        ceiling = self.backoff_ceiling(attempt)
        draw = (rng or random).random()
        return ceiling / 2 + draw * ceiling / 2


class NoProgressDeadline:
    """One budget of no progress, shared by every retry loop that holds it.

    A request and the token fetch it needs, or every request of one command, hold the same
    one: the budget runs from the first failed attempt since the last successful answer,
    and any successful answer starts it afresh. So a loop nested in another (the token
    fetch inside a request) cannot spend a second budget, and a command whose every request
    fails gives up after one budget, not one per request. Thread-safe (window lanes and a
    local run's windows share one). Times are this object's own clock.
    """

    def __init__(self, budget_s: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.budget_s = budget_s
        self._clock = clock
        self._lock = threading.Lock()
        self._since: float | None = None  # the failing attempt that began the stall
        self._noted = False

    def progressed(self) -> None:
        """A successful answer: the next failure begins a new budget."""
        with self._lock:
            self._since = None
            self._noted = False

    def failed(self, attempt_took_s: float = 0.0) -> float:
        """Note a failed attempt that took `attempt_took_s`; the seconds left of the budget."""
        with self._lock:
            now = self._clock()
            if self._since is None:
                self._since = now - max(attempt_took_s, 0.0)
            return self._since + self.budget_s - now

    def left(self) -> float | None:
        """Seconds left of the budget while a stall lasts; None while answers come."""
        with self._lock:
            return None if self._since is None else self._since + self.budget_s - self._clock()

    def attempt_timeout(self, timeout_s: float, *, floor_s: float = 1.0) -> float:
        """An attempt's timeout: `timeout_s`, but no longer than what is left of a stall's
        budget (at least `floor_s`), so a service that accepts connections and never
        answers cannot make a retry outlast the budget by a whole timeout."""
        left = self.left()
        return timeout_s if left is None else min(timeout_s, max(left, floor_s))

    def first_wait(self) -> bool:
        """True once per stall: whoever waits first says so (a note, not one per attempt)."""
        with self._lock:
            first, self._noted = not self._noted, True
            return first


T = TypeVar("T")


def call_with_retries(
    attempt: Callable[[], T],
    policy: RetryPolicy,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    rng: random.Random | None = None,
    on_retry: Callable[[RetriableError, float], None] | None = None,
    shared: NoProgressDeadline | None = None,
    on_first_wait: Callable[[RetriableError, float], None] | None = None,
    gave_up: Callable[[RetriableError, int, float], RetriesExhaustedError] | None = None,
) -> T:
    """Call `attempt` until it returns, retrying RetriableError within the time budget.

    Fatal errors pass straight through, and so does a RetriesExhaustedError from a retry
    loop inside `attempt` (its budget ran out: retrying it would nest a second one). When
    the next wait would end past the budget (this call's own, or the `shared` budget of no
    progress, whichever ends first), `gave_up(last error, attempts, seconds tried)` is
    raised (a plain RetriesExhaustedError by default) with the last error chained.
    `on_first_wait(error, seconds left)` is called before the second wait in a row (once
    per stall with `shared`), so a loop that keeps waiting can say so once.
    """
    started = clock()
    deadline = started + policy.budget_s
    tries = 0
    noted = False
    while True:
        attempt_started = clock()
        try:
            result = attempt()
        except RetriesExhaustedError:
            raise
        except RetriableError as error:
            retry_after = error.details.get("retry_after")
            wait = policy.delay(tries, retry_after=retry_after, rng=rng)
            tries += 1
            now = clock()
            left = deadline - now
            if shared is not None:
                left = min(left, shared.failed(now - attempt_started))
            if wait > left:
                if gave_up is not None:
                    raise gave_up(error, tries, now - started) from error
                raise RetriesExhaustedError(
                    f"gave up after {tries} attempt(s) within the {policy.budget_s:g} s "
                    f"retry budget; last error: {error}",
                    attempts=tries,
                ) from error
            # Said once the same request failed twice in a row: a single retried blip
            # (a 429, one 5xx among thousands of pages) is no outage worth a line.
            if on_first_wait is not None and not noted and tries >= 2:
                noted = True
                if shared is None or shared.first_wait():
                    on_first_wait(error, left)
            if on_retry is not None:
                on_retry(error, wait)
            sleep(wait)
        else:
            if shared is not None:
                shared.progressed()
            return result
