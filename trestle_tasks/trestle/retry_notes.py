"""What a Trestle retry loop says when it starts waiting, and the error when it gives up.

A loop waiting out a transient failure says so once, when it starts (not per attempt),
with what it retries and until when: a command must not sit silent for minutes. When the
budget of no progress runs out, the error names the host (never the whole URL, whose
userinfo may hold a password) and what was tried, in one line.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

from trestle_tasks.core.errors import (
    ConnectionFailedError,
    HTTPStatusError,
    InvalidResponseError,
    NoProgressError,
    RateLimitedError,
    RetriableError,
    RetriesExhaustedError,
)

# Its own logger: a command that shows only errors on stderr still shows these notes.
NOTES_LOGGER = "trestle_tasks.trestle.retries"
log = logging.getLogger(NOTES_LOGGER)


def host_of(url: str) -> str:
    try:
        return (urlsplit(url).hostname or "").lower() or "an unnamed host"
    except ValueError:
        return "an unreadable URL"


def failure_summary(error: RetriableError, host: str) -> tuple[str, str]:
    """(state of the service, what failed): ("unreachable", "ConnectionError to h")."""
    if isinstance(error, ConnectionFailedError):
        return "unreachable", f"{error.details.get('kind') or 'no answer'} to {host}"
    if isinstance(error, RateLimitedError):
        return "rate-limited", f"HTTP 429 from {host}"
    if isinstance(error, HTTPStatusError):
        return "failing", f"HTTP {error.status} from {host}"
    if isinstance(error, InvalidResponseError):
        return "answering garbage", f"a body that is not JSON from {host}"
    return "failing", f"{type(error).__name__} from {host}"


def waiting_note(what: str, host: str, error: RetriableError, left_s: float,
                 budget_s: float, *, now: datetime | None = None) -> str:
    state, failed = failure_summary(error, host)
    until = (now or datetime.now(UTC)) + timedelta(seconds=max(left_s, 0.0))
    return (f"Trestle {state} ({failed}, {what}); retrying until {until:%H:%M:%S} UTC at "
            f"the latest (budget {budget_s:g} s, TRESTLE_RETRY_BUDGET)")


def on_first_wait(what: str, url: str, budget_s: float) -> Callable[[RetriableError, float], None]:
    """The note a retry loop logs (WARNING) once, when it starts waiting."""
    host = host_of(url)

    def note(error: RetriableError, left_s: float) -> None:
        log.warning("%s", waiting_note(what, host, error, left_s, budget_s))

    return note


def gave_up(what: str, url: str,
            budget_s: float) -> Callable[[RetriableError, int, float], RetriesExhaustedError]:
    """The one-line error of a loop whose budget of no progress ran out."""
    host = host_of(url)

    def error(last: RetriableError, attempts: int, tried_s: float) -> RetriesExhaustedError:
        _state, failed = failure_summary(last, host)
        return NoProgressError(
            f"no successful answer from Trestle at {host} within the {budget_s:g} s retry "
            f"budget (TRESTLE_RETRY_BUDGET): tried {what} {attempts} time(s) over "
            f"{tried_s:.0f} s, the last failing with {failed}",
            attempts=attempts, host=host)

    return error
