"""The poll schedule's state in Redis, one key per credential, and the tick's turn.

Beat sends a poll tick every few seconds; a tick that finds the previous one still polling
leaves (`take_turn`), so two ticks never spend the budget twice or poll one resource at
once. The turn is a lease: a worker killed mid-tick frees it within TURN_LEASE_S. The
schedule is read at the start of a tick and written after each poll, under the turn.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from trestle_tasks.sync.poll_schedule import PollBudget, ResourcePolls

KEY_PREFIX = "trestle:poll:"
# Longer than a tick may poll for (tasks.POLL_TICK_WORK_S, plus one poll's worth).
TURN_LEASE_S = 90
STATE_TTL_S = 7 * 86400  # an unused schedule is forgotten: a new one starts fast

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


@dataclass
class PollState:
    budget: PollBudget = field(default_factory=PollBudget)
    resources: dict[str, ResourcePolls] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps({"budget_tat": self.budget.tat,
                           "resources": {r: s.to_dict() for r, s in self.resources.items()}})

    @classmethod
    def from_json(cls, text: str | bytes | None) -> PollState:
        """The stored state; a missing or unreadable one starts afresh (it only paces)."""
        try:
            data = json.loads(text) if text else {}
        except ValueError:
            data = {}
        if not isinstance(data, dict):
            data = {}
        tat = data.get("budget_tat")
        stored = data.get("resources")
        resources = {str(name): ResourcePolls.from_dict(value)
                     for name, value in (stored.items() if isinstance(stored, dict) else ())
                     if isinstance(value, dict)}
        return cls(PollBudget(float(tat) if isinstance(tat, int | float) else 0.0), resources)


class PollStateStore:
    def __init__(self, client: Any, credential: str) -> None:
        self._client = client
        self._key = f"{KEY_PREFIX}{credential}:state"
        self._turn_key = f"{KEY_PREFIX}{credential}:turn"

    def load(self) -> PollState:
        return PollState.from_json(self._client.get(self._key))

    def save(self, state: PollState) -> None:
        self._client.set(self._key, state.to_json(), ex=STATE_TTL_S)

    def take_turn(self) -> str | None:
        """A token while this tick has the turn; None when another tick is polling."""
        token = uuid.uuid4().hex
        return token if self._client.set(self._turn_key, token, nx=True, ex=TURN_LEASE_S) \
            else None

    def end_turn(self, token: str) -> None:
        self._client.eval(_RELEASE, 1, self._turn_key, token)
