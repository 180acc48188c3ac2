"""When to poll which resource: often where changes come, rarely where they do not, and
never more than a share of the credential's hour quota for all of them together.

Pure: times are epoch seconds passed in, state is plain values (the Celery layer keeps it
in Redis between ticks; coordination/poll_state.py).

- **Adaptive interval.** A poll that found changes sets its resource's interval to the
  fastest the budget allows; each idle poll stretches it by `growth`, up to `slowest_s`.
  Property in business hours stays fast; Office at night drifts to once every few minutes.
- **Budget.** `budget_per_hour` requests (SYNC_POLL_QUOTA_SHARE of the hour quota the
  server announces) for every resource's polls together, paced like the quota limiter
  (GCRA: a burst of a few, then one every 3600 / budget s). The fastest interval leaves
  `busiest_share` of the budget to one resource that changes all the time, so the others'
  idle polls always fit in the rest.
- **Fairness.** Due resources are polled most overdue first, lateness measured in their own
  intervals, so a busy Property cannot starve Office's rare polls, nor Office Property's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

from trestle_tasks.sync.poll import BUSY, CHANGED, FAILED, NO_WATERMARK, TOO_MANY

HOUR_S = 3600.0
# Trestle's published baseline, until a response's headers say what this account has.
DEFAULT_HOUR_QUOTA = 7200
BUDGET_BURST = 3  # poll requests that may go at once after a quiet spell
ESCALATION_PAUSE_S = 30.0  # after a delta too large for a poll, while its run is planned


@dataclass(frozen=True)
class PollPolicy:
    budget_per_hour: float
    floor_s: float = 2.0  # never faster than this, however large the budget
    slowest_s: float = 300.0  # an idle resource is still polled this often
    growth: float = 1.5
    busiest_share: float = 0.85

    @classmethod
    def for_quota(cls, hour_quota: float, share: float, *, floor_s: float = 2.0,
                  slowest_s: float = 300.0) -> PollPolicy:
        return cls(budget_per_hour=max(1.0, hour_quota * share), floor_s=floor_s,
                   slowest_s=max(slowest_s, floor_s))

    @property
    def request_spacing_s(self) -> float:
        """Seconds of budget one request costs."""
        return HOUR_S / self.budget_per_hour

    @property
    def fastest_s(self) -> float:
        """The interval of a resource that changes all the time: it alone may spend
        `busiest_share` of the budget."""
        return min(self.slowest_s,
                   max(self.floor_s, self.request_spacing_s / self.busiest_share))


@dataclass(frozen=True)
class ResourcePolls:
    """One resource's schedule."""

    interval_s: float
    due_at: float
    last_poll_at: float | None = None
    last_change_at: float | None = None
    last_status: str | None = None

    @classmethod
    def first(cls, policy: PollPolicy, now: float) -> ResourcePolls:
        return cls(interval_s=policy.fastest_s, due_at=now)

    def lateness(self, now: float) -> float:
        """How overdue, in intervals (negative: not due yet)."""
        return (now - self.due_at) / max(self.interval_s, 1e-9)

    def after(self, status: str, policy: PollPolicy, now: float) -> ResourcePolls:
        """The schedule after a poll that ended with `status`."""
        if status in (CHANGED, TOO_MANY):
            interval = policy.fastest_s
        elif status == BUSY:
            # A run holds the resource: look again soon, the interval unchanged.
            return replace(self, due_at=now + policy.fastest_s, last_status=status)
        elif status in (FAILED, NO_WATERMARK):
            interval = min(policy.slowest_s, self.interval_s * 2)
        else:
            interval = min(policy.slowest_s, max(policy.fastest_s, self.interval_s * policy.growth))
        # A delta handed to a run: the run takes the resource's lock a moment later (polls
        # then find it busy); polling it again before that would fetch the same pages.
        wait = max(interval, ESCALATION_PAUSE_S) if status == TOO_MANY else interval
        return ResourcePolls(
            interval_s=interval, due_at=now + wait, last_poll_at=now,
            last_change_at=now if status in (CHANGED, TOO_MANY) else self.last_change_at,
            last_status=status)

    def to_dict(self) -> dict[str, float | str | None]:
        return {"interval_s": self.interval_s, "due_at": self.due_at,
                "last_poll_at": self.last_poll_at, "last_change_at": self.last_change_at,
                "last_status": self.last_status}

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> ResourcePolls:
        def number(name: str) -> float | None:
            value = data.get(name)
            return float(value) if isinstance(value, int | float) else None

        status = data.get("last_status")
        return cls(interval_s=number("interval_s") or 0.0, due_at=number("due_at") or 0.0,
                   last_poll_at=number("last_poll_at"),
                   last_change_at=number("last_change_at"),
                   last_status=status if isinstance(status, str) else None)


@dataclass(frozen=True)
class PollBudget:
    """The polls' own pace (GCRA): `tat` is when the budget is next wholly unspent."""

    tat: float = 0.0

    def allows(self, policy: PollPolicy, now: float) -> bool:
        return self.tat - now <= (BUDGET_BURST - 1) * policy.request_spacing_s

    def charge(self, policy: PollPolicy, now: float, requests: int) -> PollBudget:
        return PollBudget(max(self.tat, now) + requests * policy.request_spacing_s)


def schedules(resources: list[str], known: Mapping[str, ResourcePolls], policy: PollPolicy,
              now: float) -> dict[str, ResourcePolls]:
    """Every polled resource's schedule: a new one is due at once; an interval the policy
    no longer allows (the budget or the settings changed) is brought within it."""
    result = {}
    for resource in resources:
        state = known.get(resource) or ResourcePolls.first(policy, now)
        bounded = min(policy.slowest_s, max(policy.fastest_s, state.interval_s))
        if bounded != state.interval_s:
            state = replace(state, interval_s=bounded,
                            due_at=min(state.due_at, now + bounded))
        result[resource] = state
    return result


def due_order(states: Mapping[str, ResourcePolls], now: float) -> list[str]:
    """Resources due now, most overdue (in their own intervals) first."""
    due = [name for name, state in states.items() if state.due_at <= now]
    return sorted(due, key=lambda name: (-states[name].lateness(now), name))
