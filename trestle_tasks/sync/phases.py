"""Start and end lines for each phase of a run (plan, window, finalize, reconcile).

A run logs two INFO lines per phase, never one per record or request (those go to the
api log at DEBUG). The end line carries the phase's figures as fields of the log record,
so JSON lines can be summed without parsing messages:

    phase, event ("start" | "end"), outcome, duration_s, records, requests, retries,
    rate_limited (429s received), records_per_s

A failed phase still writes its end line (at WARNING), so every start has an end.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from trestle_tasks.core.wording import count
from trestle_tasks.trestle.client import RequestStats

FIGURE_FIELDS = ("duration_s", "records", "requests", "retries", "rate_limited",
                 "records_per_s")
START, END = "start", "end"


@dataclass(frozen=True)
class Figures:
    duration_s: float
    records: int = 0
    requests: int = 0
    retries: int = 0
    rate_limited: int = 0
    api_bytes: int = 0

    @property
    def records_per_s(self) -> float:
        return self.records / self.duration_s if self.duration_s > 0 else 0.0

    def fields(self) -> dict[str, Any]:
        return {"duration_s": round(self.duration_s, 3), "records": self.records,
                "requests": self.requests, "retries": self.retries,
                "rate_limited": self.rate_limited, "api_bytes": self.api_bytes,
                "records_per_s": round(self.records_per_s, 1)}

    def describe(self) -> str:
        return (f"{count(self.records, 'record')}, {count(self.requests, 'request')}, "
                f"{count(self.retries, 'retry', 'retries')}, {count(self.rate_limited, '429')}, "
                f"{self.duration_s:.1f} s ({self.records_per_s:,.0f} records/s)")


class Phase:
    """One phase being timed: wall time, and the client's requests, retries and 429s
    since `start` (a client shared with other threads would count theirs too: give each
    phase its own, as windows have)."""

    def __init__(self, logger: logging.Logger, phase: str, *,
                 stats: RequestStats | None = None,
                 context: Mapping[str, object] | None = None) -> None:
        self._log = logger
        self.phase = phase
        self._stats = stats
        self._context = dict(context or {})
        self._started = time.monotonic()
        self._before = _snapshot(stats)

    def start(self, message: str, *args: object, **fields: object) -> Phase:
        self._started = time.monotonic()
        self._before = _snapshot(self._stats)
        self._log.info(message, *args, extra={**self._context, "phase": self.phase,
                                              "event": START, **fields})
        return self

    def count_from_here(self) -> None:
        """Count the client's requests from now on (the clock keeps running): a first
        run's `$metadata` read, say, is not the run's own."""
        self._before = _snapshot(self._stats)

    def figures(self, records: int = 0) -> Figures:
        """What the phase did so far, from the client's counters."""
        now = _snapshot(self._stats)
        requests, retries, limited, received = (
            a - b for a, b in zip(now, self._before, strict=True))
        return Figures(time.monotonic() - self._started, records, requests, retries, limited,
                       received)

    def end(self, message: str, *args: object, figures: Figures, outcome: str = "succeeded",
            **fields: object) -> Figures:
        """The end line; `message` gets the figures' description appended."""
        level = logging.INFO if outcome in ("succeeded", "planned") else logging.WARNING
        self._log.log(level, f"{message}; %s", *args, figures.describe(),
                      extra={**self._context, "phase": self.phase, "event": END,
                             "outcome": outcome, **figures.fields(), **fields})
        return figures


def _snapshot(stats: RequestStats | None) -> tuple[int, int, int, int]:
    if stats is None:
        return (0, 0, 0, 0)
    return (stats.requests, stats.retries, stats.rate_limited, stats.api_bytes)
