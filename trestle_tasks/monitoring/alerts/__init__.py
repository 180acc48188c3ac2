"""Alerts: failed runs, credentials, quota, rejects, staleness and stuck locks, by email and
webhook, with retries and a cooldown.

- `model`: the Alert value. `rules`: when to alert (pure). `checks`: what the periodic
  rules read. `channels`: SMTP, JSON webhook, Slack. `cooldown`: repeat suppression.
  `dispatcher`: cooldown, retries, never raising. `hooks`: the calls tasks and local runs make.
"""

from trestle_tasks.monitoring.alerts.dispatcher import AlertDispatcher, Delivery
from trestle_tasks.monitoring.alerts.model import Alert

__all__ = ["Alert", "AlertDispatcher", "Delivery"]
