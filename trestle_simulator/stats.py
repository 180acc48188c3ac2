"""What the simulator served, for tests and benchmarks to assert on (thread-safe)."""

from __future__ import annotations

import threading
from collections import Counter, defaultdict
from typing import Any

ANONYMOUS = "-"  # requests without a valid token


class Stats:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self._requests: dict[str, dict[str, Any]] = defaultdict(
                lambda: {"total": 0, "by_status": Counter(), "by_resource": Counter()}
            )
            self._throttled = 0
            self._faults: Counter[str] = Counter()
            self._tokens: Counter[str] = Counter()
            self._token_failures = 0
            self._records = 0
            self._records_by_resource: Counter[str] = Counter()
            self._in_flight = 0
            self._peak_in_flight = 0

    def request(self, client_id: str | None, resource: str, status: int | str) -> None:
        with self._lock:
            entry = self._requests[client_id or ANONYMOUS]
            entry["total"] += 1
            entry["by_status"][str(status)] += 1
            entry["by_resource"][resource] += 1
            if status == 429:  # quota and injected alike
                self._throttled += 1

    def entered(self) -> None:
        """A data request began: how many are served at once shows a client's parallelism."""
        with self._lock:
            self._in_flight += 1
            self._peak_in_flight = max(self._peak_in_flight, self._in_flight)

    def left(self) -> None:
        with self._lock:
            self._in_flight = max(0, self._in_flight - 1)

    def fault(self, kind: str) -> None:
        with self._lock:
            self._faults[kind] += 1

    def token(self, client_id: str | None) -> None:
        with self._lock:
            if client_id is None:
                self._token_failures += 1
            else:
                self._tokens[client_id] += 1

    def records(self, resource: str, count: int) -> None:
        with self._lock:
            self._records += count
            self._records_by_resource[resource] += count

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            requests = {
                client: {
                    "total": entry["total"],
                    "by_status": dict(entry["by_status"]),
                    "by_resource": dict(entry["by_resource"]),
                }
                for client, entry in self._requests.items()
            }
            return {
                "requests": requests,
                "requests_total": sum(entry["total"] for entry in requests.values()),
                "throttled_429": self._throttled,
                "faults": dict(self._faults),
                "faults_total": sum(self._faults.values()),
                "tokens_issued": sum(self._tokens.values()),
                "tokens_issued_by_client": dict(self._tokens),
                "token_failures": self._token_failures,
                "records_served": self._records,
                "records_served_by_resource": dict(self._records_by_resource),
                "peak_in_flight": self._peak_in_flight,
            }
