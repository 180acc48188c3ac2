"""An alert as a value: what happened, where, how bad, and the key its repeats share."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

CRITICAL = "critical"
WARNING = "warning"

RUN_FAILED = "run_failed"
AUTH_FAILED = "auth_failed"
QUOTA_HIGH = "quota_high"
REJECTS_HIGH = "rejects_high"
STALE = "stale"
FRESHNESS = "freshness"  # p95 change-to-commit time over the threshold
LOCK_HELD = "lock_held"
DRIFT = "drift"  # a reconcile found the replica differing from the feed


@dataclass(frozen=True)
class Alert:
    """One thing an operator should hear about.

    `dedup_key` names the condition rather than the occurrence (by default kind and
    resource), so the same failure repeating every five minutes shares one cooldown.
    `feed` names the feed in a deployment of several (None with one): the dispatcher of
    each feed's runtime sets it, and the cooldown is already the feed's own.
    """

    kind: str
    title: str
    text: str
    severity: str = WARNING
    resource: str | None = None
    dedup_key: str = ""
    feed: str | None = None
    raised_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def __post_init__(self) -> None:
        if not self.dedup_key:
            object.__setattr__(self, "dedup_key", f"{self.kind}:{self.resource or '*'}")

    def as_payload(self) -> dict[str, str | None]:
        """The generic webhook body (JSON)."""
        return {
            "kind": self.kind,
            "severity": self.severity,
            "resource": self.resource,
            "feed": self.feed,
            "title": self.title,
            "text": self.text,
            "dedup_key": self.dedup_key,
            "raised_at": self.raised_at.isoformat(timespec="seconds"),
            "source": "trestle-etl",
        }
