"""Per-credential request quotas in fixed windows aligned to the wall-clock minute/hour.

Trestle counts requests per credential (connection), shared by every worker using it, and
reports the state in headers on every response. The simulator does the same, so a client
can be tested for reading the headers instead of hard-coding a rate.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

# Limits reported when a quota is configured as unlimited (None): large, so a client that
# paces itself by the headers does not slow down, yet still well-formed numbers.
NOMINAL_MINUTE_LIMIT = 1_000_000
NOMINAL_HOUR_LIMIT = 60_000_000


@dataclass(frozen=True)
class QuotaStatus:
    allowed: bool
    minute_limit: int
    minute_available: int
    hour_limit: int
    hour_available: int
    hour_reset_ms: int
    seconds_to_reset: float  # until the window that is exhausted (or the minute) resets

    def headers(self, as_float: bool) -> list[tuple[str, str]]:
        def show(value: int) -> str:
            return f"{float(value)}" if as_float else str(value)

        return [
            ("QuotaType", "Api"),
            ("Minute-Quota-Limit", show(self.minute_limit)),
            ("Minute-Quota-Available", show(self.minute_available)),
            ("Hour-Quota-Limit", show(self.hour_limit)),
            ("Hour-Quota-Available", show(self.hour_available)),
            ("Hour-Quota-ResetTime", str(self.hour_reset_ms)),
        ]


class QuotaBook:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        # client_id -> [minute window, used in it, hour window, used in it]
        self._usage: dict[str, list[int]] = {}

    def charge(
        self,
        client_id: str,
        minute_limit: int | None,
        hour_limit: int | None,
        now: float | None = None,
    ) -> QuotaStatus:
        """Count one request if both windows have room; report the state either way."""
        now = time.time() if now is None else now
        minute, hour = int(now // 60), int(now // 3600)
        minute_cap = NOMINAL_MINUTE_LIMIT if minute_limit is None else minute_limit
        hour_cap = NOMINAL_HOUR_LIMIT if hour_limit is None else hour_limit
        with self._lock:
            usage = self._usage.setdefault(client_id, [minute, 0, hour, 0])
            if usage[0] != minute:
                usage[0], usage[1] = minute, 0
            if usage[2] != hour:
                usage[2], usage[3] = hour, 0
            allowed = usage[1] < minute_cap and usage[3] < hour_cap
            if allowed:
                usage[1] += 1
                usage[3] += 1
            minute_used, hour_used = usage[1], usage[3]
        hour_reset = (hour + 1) * 3600
        wait = hour_reset - now if hour_used >= hour_cap else (minute + 1) * 60 - now
        return QuotaStatus(
            allowed=allowed,
            minute_limit=minute_cap,
            minute_available=max(0, minute_cap - minute_used),
            hour_limit=hour_cap,
            hour_available=max(0, hour_cap - hour_used),
            hour_reset_ms=hour_reset * 1000,
            seconds_to_reset=max(0.0, wait),
        )

    def reset(self) -> None:
        with self._lock:
            self._usage.clear()
