"""When to poll which resource: often where changes come, rarely where they do not, and
never more than a share of the credential's hour quota for all of them together.

Pure: times are epoch seconds passed in, state is plain values (the Celery layer keeps it
in Redis between ticks; coordination/poll_state.py).

- **Budget.** `budget_per_hour` requests (SYNC_POLL_QUOTA_SHARE of the hour quota the
  server announces) for every resource's polls together, paced like the quota limiter
  (GCRA: a burst of a few, then one every 3600 / budget s).
- **Listings first.** What users watch is Property (a new listing, a price change); the
  other resources (OpenHouse, Member, Office...) are *secondary*: all of them changing all
  the time take at most `secondary_share` of the budget (at the default 420 requests an
  hour and three of them, each at most every ~2 minutes), and Property has the rest
  (`planned_share` of the budget, less what the secondaries' current intervals use: about
  every 10-11 s). A feed without Property shares `busiest_share` of the budget between
  its resources as equals.
- **Adaptive interval.** A poll that found changes sets its resource's interval to the
  fastest allowed; idle polls stretch it to a third of the time since the last change
  (a listing feed quiet for a few seconds between changes stays fast; Office quiet for an
  hour, or Property at night, drifts to `slowest_s`).
- **Fairness.** Due resources are polled most overdue first, lateness measured in their own
  intervals, Property ahead by one interval: a busy Property cannot starve Office's rare
  polls, nor do Office's polls delay Property's unless the budget has fallen behind.
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
# The resources whose freshness users compare (docs/running.md): polled first.
PRIMARY_RESOURCES = frozenset({"Property"})
# An idle resource is polled again after a third of the time since it last changed.
QUIET_DIVISOR = 3.0


@dataclass(frozen=True)
class PollPolicy:
    budget_per_hour: float
    floor_s: float = 2.0  # never faster than this, however large the budget
    slowest_s: float = 300.0  # an idle resource is still polled this often
    growth: float = 1.5  # an idle poll's stretch before any change was seen
    busiest_share: float = 0.85  # one resource of a feed without Property
    # Planned for polls of one request; the rest absorbs polls that fetch more.
    planned_share: float = 0.95
    secondary_share: float = 0.2  # every secondary resource changing all the time

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
        """The interval of a feed's only resource when it changes all the time: it may
        spend `busiest_share` of the budget."""
        return self.bounded(self.request_spacing_s / self.busiest_share)

    def bounded(self, interval_s: float) -> float:
        return min(self.slowest_s, max(self.floor_s, interval_s))

    def fastest_intervals(self, resources: list[str],
                          states: Mapping[str, ResourcePolls]) -> dict[str, float]:
        """Each resource's fastest interval now. The secondaries' share of the budget is
        split between them; Property has what they leave at their current intervals."""
        primaries = [r for r in resources if r in PRIMARY_RESOURCES]
        if not primaries:  # equals: all of them changing all the time fit the budget
            equal = self.bounded(len(resources) * self.request_spacing_s / self.busiest_share)
            return {r: equal for r in resources}
        secondaries = [r for r in resources if r not in PRIMARY_RESOURCES]
        secondary = self.bounded(
            len(secondaries) * self.request_spacing_s / self.secondary_share)
        used = sum(1.0 / max(states[r].interval_s if r in states else secondary, secondary)
                   for r in secondaries)  # polls a second
        left = self.planned_share / self.request_spacing_s - used
        primary = self.bounded(len(primaries) / left) if left > 0 else self.slowest_s
        return {r: primary if r in PRIMARY_RESOURCES else secondary for r in resources}


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

    def after(self, status: str, policy: PollPolicy, now: float,
              fastest_s: float | None = None) -> ResourcePolls:
        """The schedule after a poll that ended with `status`; `fastest_s` is this
        resource's fastest interval now (PollPolicy.fastest_intervals)."""
        fastest = policy.fastest_s if fastest_s is None else fastest_s
        if status in (CHANGED, TOO_MANY):
            interval = fastest
        elif status == BUSY:
            # A run holds the resource: look again soon, the interval unchanged.
            return replace(self, due_at=now + fastest, last_status=status)
        elif status in (FAILED, NO_WATERMARK):
            interval = min(policy.slowest_s, max(fastest, self.interval_s * 2))
        elif self.last_change_at is not None:
            quiet = now - self.last_change_at
            interval = min(policy.slowest_s, max(fastest, quiet / QUIET_DIVISOR))
        else:
            interval = min(policy.slowest_s, max(fastest, self.interval_s * policy.growth))
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
        return now >= self.allowed_from(policy)

    def allowed_from(self, policy: PollPolicy) -> float:
        """The first moment allows() holds."""
        return self.tat - (BUDGET_BURST - 1) * policy.request_spacing_s

    def charge(self, policy: PollPolicy, now: float, requests: int) -> PollBudget:
        return PollBudget(max(self.tat, now) + requests * policy.request_spacing_s)


def schedules(resources: list[str], known: Mapping[str, ResourcePolls], policy: PollPolicy,
              now: float) -> dict[str, ResourcePolls]:
    """Every polled resource's schedule: a new one is due at once; an interval the policy
    no longer allows (the budget or the settings changed) is brought within it."""
    fastest = policy.fastest_intervals(resources, known)
    result = {}
    for resource in resources:
        state = known.get(resource) or ResourcePolls.first(policy, now)
        bounded = min(policy.slowest_s, max(fastest[resource], state.interval_s))
        if bounded != state.interval_s:
            since = state.last_poll_at if state.last_poll_at is not None else now
            state = replace(state, interval_s=bounded,
                            due_at=min(max(state.due_at, since + bounded), now + bounded))
        result[resource] = state
    return result


def due_order(states: Mapping[str, ResourcePolls], now: float,
              primary: frozenset[str] = PRIMARY_RESOURCES) -> list[str]:
    """Resources due now, most overdue (in their own intervals) first, Property ahead by
    one interval."""
    due = [name for name, state in states.items() if state.due_at <= now]
    return sorted(due, key=lambda name: (
        -(states[name].lateness(now) + (1.0 if name in primary else 0.0)), name))


def next_poll_at(states: Mapping[str, ResourcePolls], budget: PollBudget,
                 policy: PollPolicy) -> float | None:
    """When the next poll may go: the soonest due resource, or, the budget being spent till
    later, when it allows one again. None with nothing to poll."""
    if not states:
        return None
    return max(min(state.due_at for state in states.values()), budget.allowed_from(policy))
