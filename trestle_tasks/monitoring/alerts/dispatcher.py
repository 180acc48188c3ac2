"""Sending an alert: cooldown first, then every channel with a few retries.

`AlertDispatcher.send` never raises: it runs inside finalize and at task boundaries, and a
mail server being down must never fail a sync. Every problem is logged at WARNING (hosts
only, never URLs or passwords) and reported in the returned `Delivery`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from trestle_tasks.core.logs import redact
from trestle_tasks.monitoring.alerts.channels import Channel
from trestle_tasks.monitoring.alerts.cooldown import Cooldown
from trestle_tasks.monitoring.alerts.model import Alert

log = logging.getLogger(__name__)

# Three attempts per channel: a receiver restarting or a brief network blip is ridden out,
# while a dead one costs a finalize at most a few seconds plus the timeouts.
DEFAULT_RETRY_DELAYS_S: tuple[float, ...] = (1.0, 4.0)

SENT = "sent"
SUPPRESSED = "suppressed"
FAILED = "failed"
DISABLED = "disabled"


@dataclass(frozen=True)
class Delivery:
    dedup_key: str
    status: str  # sent, suppressed (cooling down), failed (no channel took it), disabled
    delivered: tuple[str, ...] = ()
    failed: tuple[str, ...] = ()


def deliver_with_retries(channel: Channel, alert: Alert, delays_s: Sequence[float],
                         sleep: Callable[[float], None]) -> bool:
    """True when the channel took the alert within 1 + len(delays_s) attempts."""
    attempts = len(delays_s) + 1
    for attempt in range(1, attempts + 1):
        try:
            channel.send(alert)
            return True
        except Exception as error:  # any channel fault: retry, then give up quietly
            log.warning("alert %s: %s failed (attempt %d of %d): %s", alert.dedup_key,
                        channel.name, attempt, attempts, error)
        if attempt < attempts:
            sleep(delays_s[attempt - 1])
    return False


class AlertDispatcher:
    def __init__(
        self,
        channels: Sequence[Channel],
        cooldown: Cooldown,
        *,
        cooldown_s: float,
        retry_delays_s: Sequence[float] = DEFAULT_RETRY_DELAYS_S,
        sleep: Callable[[float], None] = time.sleep,
        feed: str | None = None,
    ) -> None:
        self.channels = list(channels)
        self._cooldown = cooldown
        self._cooldown_s = cooldown_s
        self._delays = tuple(retry_delays_s)
        self._sleep = sleep
        self._feed = feed  # stamped on every alert, so each names the feed it is about

    @property
    def enabled(self) -> bool:
        return bool(self.channels)

    def send(self, alert: Alert) -> Delivery:
        try:
            return self._send(alert)
        except Exception as error:  # belt and braces: never into the sync
            log.warning("alert %s could not be sent: %s: %s", alert.dedup_key,
                        type(error).__name__, error)
            return Delivery(alert.dedup_key, FAILED)

    def send_all(self, alerts: Sequence[Alert]) -> list[Delivery]:
        return [self.send(alert) for alert in alerts]

    def _send(self, alert: Alert) -> Delivery:
        # Error texts in alerts come from runs and exceptions: mask any secret they carry.
        alert = replace(alert, title=redact(alert.title), text=redact(alert.text),
                        feed=alert.feed or self._feed)
        if not self.channels:
            return Delivery(alert.dedup_key, DISABLED)
        try:
            token = self._cooldown.claim(alert.dedup_key, self._cooldown_s)
        except Exception as error:
            # The cooldown store (Redis) is down. Fail open: a duplicate alert is better than
            # silence at the moment something is already wrong.
            log.warning("alert cooldown unavailable (%s); sending %s anyway",
                        type(error).__name__, alert.dedup_key)
            token = ""
        if token is None:
            log.info("alert %s suppressed: sent less than %.0f min ago", alert.dedup_key,
                     self._cooldown_s / 60)
            return Delivery(alert.dedup_key, SUPPRESSED)
        delivered: list[str] = []
        failed: list[str] = []
        for channel in self.channels:
            ok = deliver_with_retries(channel, alert, self._delays, self._sleep)
            (delivered if ok else failed).append(channel.name)
        if not delivered:
            if token:
                try:  # nothing went out: let the next occurrence try again
                    self._cooldown.release(alert.dedup_key, token)
                except Exception as error:
                    log.warning("alert cooldown release failed: %s", type(error).__name__)
            log.warning("alert %s reached no channel: %s", alert.dedup_key, alert.title)
            return Delivery(alert.dedup_key, FAILED, failed=tuple(failed))
        log.info("alert %s sent to %s", alert.dedup_key, ", ".join(delivered))
        return Delivery(alert.dedup_key, SENT, tuple(delivered), tuple(failed))
