"""The mail an alert becomes: its subject survives encoding, folding and decoding."""

from __future__ import annotations

import dataclasses
import email.policy
from email import message_from_bytes

import pytest

from trestle_tasks.monitoring.alerts.channels import SmtpChannel
from trestle_tasks.monitoring.alerts.model import CRITICAL, Alert


@pytest.mark.parametrize("title", [
    "0000000000¡¡ ¡",  # found by Hypothesis: a fold between encoded words lost the space
    "plain ascii title",
    "¡ ¡ ¡ " * 8,
], ids=["fold-between-encoded-words", "ascii", "long-non-ascii"])
def test_the_subject_arrives_as_it_was_written(title):
    channel = SmtpChannel(host="mail.example", port=587, sender="etl@example.com",
                          recipients=["ops@example.com"])
    alert = Alert(kind="run_failed", title=title, text="body", severity=CRITICAL,
                  resource="Property")
    sent = channel.message(alert).as_bytes()
    received = message_from_bytes(sent, policy=email.policy.default)
    assert str(received["Subject"]) == f"[trestle-etl] CRITICAL [Property]: {title}".strip()


class _Recorder:
    name = "recorder"

    def __init__(self) -> None:
        self.sent: list[Alert] = []

    def send(self, alert: Alert) -> None:
        self.sent.append(alert)


class _Open:
    """A cooldown that lets every alert through."""

    def claim(self, key: str, seconds: float) -> str:
        return "token"

    def release(self, key: str, token: str) -> None:
        pass


@pytest.mark.parametrize(("feed_names", "named"), [
    ((), None), (("north", "south"), "north"), (("north",), "north"),
], ids=["one-feed", "two-feeds", "one-named-feed"])
def test_with_named_feeds_every_alert_names_its_feed(feed_names, named):
    from trestle_tasks.core.settings import load_settings
    from trestle_tasks.worker import factory

    settings = load_settings({"TRESTLE_CLIENT_ID": "id", "TRESTLE_CLIENT_SECRET": "secret"},
                             env_file=None)
    if feed_names:
        settings = dataclasses.replace(settings, feed="north", feed_names=feed_names)
    dispatcher = factory.alert_dispatcher(settings, _Open())  # type: ignore[arg-type]
    recorder = _Recorder()
    dispatcher.channels = [recorder]
    delivery = dispatcher.send(Alert(kind="run_failed", title="sync failed", text="why",
                                     severity=CRITICAL, resource="Property"))
    assert delivery.status == "sent"
    [alert] = recorder.sent
    assert alert.feed == named
    assert alert.as_payload()["feed"] == named
    mail = SmtpChannel(host="mail.example", port=587, sender="etl@example.com",
                       recipients=["ops@example.com"]).message(alert)
    where = f"{named}/Property" if named else "Property"
    assert mail["Subject"] == f"[trestle-etl] CRITICAL [{where}]: sync failed"
    assert (f"feed: {named}\n" in mail.get_content()) == bool(named)
