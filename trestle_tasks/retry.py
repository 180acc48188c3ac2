"""Retry policy as an immutable value, and `Retry-After` parsing as a pure function.

The budget is measured in time, not in attempts: a walk that meets a minute-long outage
should ride it out whether that takes four retries or ten.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TypeVar

from trestle_tasks.errors import RetriableError, RetriesExhaustedError


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


T = TypeVar("T")


def call_with_retries(
    attempt: Callable[[], T],
    policy: RetryPolicy,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    rng: random.Random | None = None,
    on_retry: Callable[[RetriableError, float], None] | None = None,
) -> T:
    """Call `attempt` until it returns, retrying RetriableError within the time budget.

    Fatal errors pass straight through. When the next wait would end past the budget,
    RetriesExhaustedError is raised with the last error chained.
    """
    deadline = clock() + policy.budget_s
    tries = 0
    while True:
        try:
            return attempt()
        except RetriableError as error:
            retry_after = error.details.get("retry_after")
            wait = policy.delay(tries, retry_after=retry_after, rng=rng)
            tries += 1
            if clock() + wait > deadline:
                raise RetriesExhaustedError(
                    f"gave up after {tries} attempt(s) within the {policy.budget_s:g} s "
                    f"retry budget; last error: {error}",
                    attempts=tries,
                ) from error
            if on_retry is not None:
                on_retry(error, wait)
            sleep(wait)
