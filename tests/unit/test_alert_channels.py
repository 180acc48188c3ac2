"""The mail an alert becomes: its subject survives encoding, folding and decoding."""

from __future__ import annotations

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
