"""Seeded fault injection for data requests.

One draw per data request picks at most one fault, so the rates add up like
probabilities; a separate stream decides empty `$expand=Media` lists per listing. Both
are seeded, so a run with the same requests in the same order sees the same faults.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Sequence
from typing import Literal, TypeVar

from .config import SimulatorConfig

Fault = Literal["5xx", "429", "connection_reset", "truncated_body", "html_error"]
_ORDER: tuple[tuple[Fault, str], ...] = (
    ("5xx", "rate_5xx"),
    ("429", "rate_429"),
    ("connection_reset", "rate_connection_reset"),
    ("truncated_body", "rate_truncated_body"),
    ("html_error", "rate_html_error"),
)
_T = TypeVar("_T")


class FaultInjector:
    def __init__(self, seed: int) -> None:
        self._lock = threading.Lock()
        self.reseed(seed)

    def reseed(self, seed: int) -> None:
        with self._lock:
            self._requests = random.Random(f"{seed}:requests")
            self._expands = random.Random(f"{seed}:expands")
            self._details = random.Random(f"{seed}:details")

    def draw(self, config: SimulatorConfig) -> Fault | None:
        with self._lock:
            roll = self._requests.random()
        threshold = 0.0
        for fault, rate_field in _ORDER:
            threshold += float(getattr(config, rate_field))
            if roll < threshold:
                return fault
        return None

    def empty_expand(self, config: SimulatorConfig) -> bool:
        if config.rate_empty_expand <= 0:
            return False
        with self._lock:
            return self._expands.random() < config.rate_empty_expand

    def choose(self, options: Sequence[_T]) -> _T:
        with self._lock:
            return self._details.choice(options)
