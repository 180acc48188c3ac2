"""Alert delivery reliability.

Every alert reaches a real SMTP server (aiosmtpd) and real HTTP receivers (a JSON webhook and
a Slack-compatible one), is retried when a receiver refuses it for a while, and is
suppressed while its cooldown runs, with the cooldown in Redis (keys of this run's own in
the tests' shared database, tests/redis_space.py) or in files.
"""

from __future__ import annotations

import email.policy
import re
import tempfile
import uuid
from collections import Counter
from collections.abc import Iterator
from email import message_from_bytes
from pathlib import Path

import pytest
import redis
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.alert_receivers import HttpReceiver, SmtpReceiver
from tests.redis_space import run_key, shared_client
from trestle_tasks.core.logs import redact
from trestle_tasks.core.masking import Secret
from trestle_tasks.monitoring.alerts.channels import (
    SlackChannel,
    SmtpChannel,
    WebhookChannel,
    one_line,
)
from trestle_tasks.monitoring.alerts.cooldown import Cooldown, FileCooldown, RedisCooldown
from trestle_tasks.monitoring.alerts.dispatcher import (
    FAILED,
    SENT,
    SUPPRESSED,
    AlertDispatcher,
)
from trestle_tasks.monitoring.alerts.model import CRITICAL, WARNING, Alert

HOOK_PATH = "/hooks/T0KEN-in-the-path"
SLACK_PATH = "/services/T000/B000/slack-token"


@pytest.fixture(scope="module")
def smtp() -> Iterator[SmtpReceiver]:
    receiver = SmtpReceiver().start()
    yield receiver
    receiver.stop()


@pytest.fixture(scope="module")
def hook() -> Iterator[HttpReceiver]:
    receiver = HttpReceiver().start()
    yield receiver
    receiver.stop()


@pytest.fixture(scope="module")
def slack() -> Iterator[HttpReceiver]:
    receiver = HttpReceiver().start()
    yield receiver
    receiver.stop()


@pytest.fixture(scope="module")
def alert_redis() -> Iterator[redis.Redis]:
    """The shared test database; each cooldown's keys are under a prefix of this run's."""
    client = shared_client()
    client.ping()
    yield client
    client.close()


def new_cooldown(kind: str, client: redis.Redis) -> Cooldown:
    if kind == "redis":
        return RedisCooldown(client, prefix=run_key("cooldown", uuid.uuid4().hex, ""))
    return FileCooldown(Path(tempfile.mkdtemp(prefix="alert-cooldown-")))


def dispatcher(smtp: SmtpReceiver, hook: HttpReceiver, slack: HttpReceiver,
               cooldown: Cooldown, sleeps: list[float]) -> AlertDispatcher:
    channels = [
        SmtpChannel(host="127.0.0.1", port=smtp.port, sender="etl@example.com",
                    recipients=["ops@example.com"], starttls=False, timeout_s=5),
        WebhookChannel(Secret(hook.url(HOOK_PATH)), timeout_s=5),
        SlackChannel(Secret(slack.url(SLACK_PATH)), timeout_s=5),
    ]
    # Delays are recorded, not slept: the retries are real, the waiting is not.
    return AlertDispatcher(channels, cooldown, cooldown_s=600, retry_delays_s=(0.5, 2.0),
                           sleep=sleeps.append)


def reset(*receivers: SmtpReceiver | HttpReceiver) -> None:
    for receiver in receivers:
        receiver.clear()


words = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=60)
alerts = st.builds(
    Alert,
    kind=st.sampled_from(["run_failed", "auth_failed", "quota_high", "rejects_high", "stale",
                          "lock_held", "drift"]),
    title=words,
    text=words,
    severity=st.sampled_from([CRITICAL, WARNING]),
    resource=st.sampled_from([None, "Property", "Member", "OpenHouse"]),
)


def squash(text: str) -> str:
    """Compare texts the way mail and chat keep them: whitespace runs become one space."""
    return re.sub(r"\s+", " ", text).strip()


@pytest.mark.parametrize("cooldown_kind", ["redis", "file"])
@settings(max_examples=12)
@given(batch=st.lists(alerts, min_size=1, max_size=3, unique_by=lambda a: a.dedup_key),
       smtp_refusals=st.integers(0, 2), hook_refusals=st.integers(0, 2),
       slack_refusals=st.integers(0, 2))
def test_every_alert_arrives_once_despite_refusals_and_repeats_are_suppressed(
    cooldown_kind, smtp, hook, slack, alert_redis, batch, smtp_refusals, hook_refusals,
    slack_refusals,
):
    reset(smtp, hook, slack)
    smtp.fail_next(smtp_refusals)
    hook.fail_next(hook_refusals)
    slack.fail_next(slack_refusals)
    sleeps: list[float] = []
    sender = dispatcher(smtp, hook, slack, new_cooldown(cooldown_kind, alert_redis), sleeps)

    deliveries = [sender.send(alert) for alert in batch]

    assert [d.status for d in deliveries] == [SENT] * len(batch)
    assert all(len(d.delivered) == 3 and not d.failed for d in deliveries)
    # Each refusal was met by a retry after the scheduled delay, never a lost alert.
    assert (smtp.failures.refused, hook.failures.refused, slack.failures.refused) == (
        smtp_refusals, hook_refusals, slack_refusals)
    assert len(sleeps) == smtp_refusals + hook_refusals + slack_refusals
    keys = [a.dedup_key for a in batch]
    mails = [message_from_bytes(m.as_bytes(), policy=email.policy.default)
             for m in smtp.messages]
    assert Counter(m["X-Trestle-Alert"] for m in mails) == Counter(keys)
    assert Counter(b["dedup_key"] for b in hook.bodies(HOOK_PATH)) == Counter(keys)
    assert len(slack.bodies(SLACK_PATH)) == len(batch)
    for alert, mail, body, chat in zip(batch, mails, hook.bodies(HOOK_PATH),
                                       slack.bodies(SLACK_PATH), strict=True):
        title, text = redact(alert.title), redact(alert.text)
        assert squash(one_line(title)) in squash(str(mail["Subject"]))
        assert squash(text) in squash(mail.get_content())
        assert (body["title"], body["text"], body["kind"], body["resource"]) == (
            title, text, alert.kind, alert.resource)
        assert squash(one_line(title)) in squash(chat["text"])
        assert squash(text) in squash(chat["text"])

    # The same conditions again, within the cooldown: nothing is sent anywhere.
    reset(smtp, hook, slack)
    again = [sender.send(Alert(a.kind, "again: " + a.title, a.text, resource=a.resource))
             for a in batch]
    assert [d.status for d in again] == [SUPPRESSED] * len(batch)
    assert smtp.messages == [] and hook.requests == [] and slack.requests == []


@pytest.mark.parametrize("cooldown_kind", ["redis", "file"])
def test_an_alert_no_channel_took_is_not_cooled_down(cooldown_kind, smtp, hook, slack,
                                                     alert_redis):
    reset(smtp, hook, slack)
    for receiver in (smtp, hook, slack):
        receiver.fail_next(3)  # every attempt of every channel refused
    sleeps: list[float] = []
    sender = dispatcher(smtp, hook, slack, new_cooldown(cooldown_kind, alert_redis), sleeps)
    alert = Alert("run_failed", "Property sync failed", "boom", resource="Property")

    first = sender.send(alert)
    assert first.status == FAILED and len(first.failed) == 3
    assert sleeps == [0.5, 2.0] * 3
    assert smtp.messages == [] and hook.requests == [] and slack.requests == []

    second = sender.send(alert)  # the receivers are back: the claim was given back
    assert second.status == SENT and len(second.delivered) == 3
    assert len(smtp.messages) == 1 and len(hook.requests) == 1 and len(slack.requests) == 1
    assert sender.send(alert).status == SUPPRESSED


def test_one_dead_channel_does_not_stop_the_others_or_the_cooldown(smtp, hook, alert_redis):
    reset(smtp, hook)
    dead = WebhookChannel(Secret("http://127.0.0.1:9/hooks/dead-token"), timeout_s=2)
    sender = AlertDispatcher(
        [dead, SmtpChannel(host="127.0.0.1", port=smtp.port, sender="etl@example.com",
                           recipients=["ops@example.com"], starttls=False)],
        new_cooldown("redis", alert_redis), cooldown_s=600, retry_delays_s=(0.0, 0.0),
        sleep=lambda s: None)
    delivery = sender.send(Alert("stale", "Member is stale", "90 min", resource="Member"))
    assert delivery.status == SENT
    assert delivery.failed == ("webhook to 127.0.0.1:9",)
    assert len(smtp.messages) == 1
    assert sender.send(Alert("stale", "Member is stale", "95 min", resource="Member")).status \
        == SUPPRESSED
