"""API usage and cost: requests per hour and per day from the sync log, against the quota.

The sync log counts every request each run made (planning, windows, retries), so the
figures cover every worker and every local run that wrote to this database.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from trestle_tasks.store.store import Store
from trestle_tasks.store.sync_log_reports import counter_since


@dataclass(frozen=True)
class Usage:
    last_hour: int
    last_day: int
    last_10_minutes: int
    hour_limit: int | None
    hour_available: int | None
    minutes_until_hour_quota_runs_out: float | None
    estimated_cost_last_day: float | None
    gigabytes_last_hour: float = 0.0
    gigabytes_last_day: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


GIGABYTE = 1024 ** 3


def requests_since(store: Store, since: datetime, counter: str = "api_requests") -> int:
    """Requests (or another counter: `api_bytes`) of the runs started since `since`."""
    return counter_since(store, since, counter)


def usage(
    store: Store,
    *,
    hour_limit: int | None = None,
    hour_available: int | None = None,
    cost_per_request: float | None = None,
    cost_per_gb: float | None = None,
    now: datetime | None = None,
) -> Usage:
    now = now or datetime.now(UTC)
    last_10 = requests_since(store, now - timedelta(minutes=10))
    last_hour = requests_since(store, now - timedelta(hours=1))
    last_day = requests_since(store, now - timedelta(days=1))
    runway = None
    if hour_available is not None and last_10 > 0:
        runway = round(hour_available / (last_10 / 10), 1)  # at the last 10 minutes' rate
    gb_hour = requests_since(store, now - timedelta(hours=1), "api_bytes") / GIGABYTE
    gb_day = requests_since(store, now - timedelta(days=1), "api_bytes") / GIGABYTE
    cost = None
    if cost_per_request is not None or cost_per_gb is not None:
        cost = round(last_day * (cost_per_request or 0) + gb_day * (cost_per_gb or 0), 4)
    return Usage(last_hour, last_day, last_10, hour_limit, hour_available, runway, cost,
                 round(gb_hour, 6), round(gb_day, 6))
