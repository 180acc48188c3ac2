"""Where alerts go: email over SMTP, a generic JSON webhook, a Slack-compatible webhook.

A channel sends once or raises AlertDeliveryError; retrying is the dispatcher's job.
Channel names and error messages carry hosts only: a webhook URL's path is often its token
(Slack's is), and an SMTP login carries a password.
"""

from __future__ import annotations

import email.policy
import smtplib
import socket
import ssl
from collections.abc import Sequence
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Protocol
from urllib.parse import urlsplit

import requests

from trestle_tasks.core.errors import AlertDeliveryError
from trestle_tasks.core.masking import Secret
from trestle_tasks.monitoring.alerts.model import Alert

DEFAULT_TIMEOUT_S = 10.0


class Channel(Protocol):
    name: str

    def send(self, alert: Alert) -> None:
        """Deliver once; raise AlertDeliveryError when the receiver did not take it."""


def one_line(text: str, limit: int = 200) -> str:
    """Printable text on one line: a header with a line break in it is refused (or, worse,
    would inject headers), and titles come from error messages."""
    printable = "".join(ch if ch.isprintable() else " " for ch in text)
    line = " ".join(printable.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


# Python's header folding can put the fold between two encoded words, and decoders drop
# whitespace there ("a b" arrives as "ab"). Subjects are kept short and never folded: the
# limit is RFC 5322's 998 characters a line.
MAIL_POLICY = email.policy.SMTP.clone(max_line_length=998)
SUBJECT_CHARS = 200


def subject(alert: Alert) -> str:
    where = "/".join(part for part in (alert.feed, alert.resource) if part)
    where = f" [{where}]" if where else ""
    return one_line(f"[trestle-etl] {alert.severity.upper()}{where}: {alert.title}"
                    )[:SUBJECT_CHARS]


class SmtpChannel:
    def __init__(
        self,
        *,
        host: str,
        port: int,
        sender: str,
        recipients: Sequence[str],
        user: str | None = None,
        password: Secret | None = None,
        starttls: bool = True,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        if not recipients:
            raise ValueError("an email channel needs at least one recipient")
        self._host, self._port = host, port
        self._sender, self._recipients = sender, list(recipients)
        self._user, self._password = user, password
        self._starttls, self._timeout_s = starttls, timeout_s
        # Tests pass a context trusting their own certificate; production verifies normally.
        self._ssl_context = ssl_context
        self.name = f"email via {host}:{port}"

    def message(self, alert: Alert) -> EmailMessage:
        message = EmailMessage(policy=MAIL_POLICY)
        message["Subject"] = subject(alert)
        message["From"] = self._sender
        message["To"] = ", ".join(self._recipients)
        message["Date"] = formatdate(localtime=False, usegmt=True)
        message["Message-ID"] = make_msgid(domain="trestle-etl")
        message["X-Trestle-Alert"] = alert.dedup_key
        message.set_content(
            f"{alert.text}\n\nkind: {alert.kind}\nseverity: {alert.severity}\n"
            f"resource: {alert.resource or '-'}\n"
            + (f"feed: {alert.feed}\n" if alert.feed else "")
            + f"raised at: {alert.raised_at:%Y-%m-%d %H:%M:%S} UTC\n"
        )
        return message

    def send(self, alert: Alert) -> None:
        try:
            with smtplib.SMTP(self._host, self._port, timeout=self._timeout_s) as smtp:
                smtp.ehlo()
                if self._starttls:
                    smtp.starttls(context=self._ssl_context or ssl.create_default_context())
                    smtp.ehlo()
                if self._user:
                    smtp.login(self._user, self._password.reveal() if self._password else "")
                refused = smtp.send_message(self.message(alert), self._sender, self._recipients)
        except smtplib.SMTPAuthenticationError as error:
            raise AlertDeliveryError(
                f"{self.name}: the server refused the login ({error.smtp_code})",
                channel=self.name) from None
        except smtplib.SMTPResponseException as error:
            reply = error.smtp_error.decode(errors="replace") if isinstance(
                error.smtp_error, bytes) else str(error.smtp_error)
            raise AlertDeliveryError(f"{self.name}: {error.smtp_code} {reply[:200]}",
                                     channel=self.name) from None
        except (smtplib.SMTPException, OSError, ssl.SSLError) as error:
            raise AlertDeliveryError(f"{self.name}: {type(error).__name__}: {error}",
                                     channel=self.name) from None
        if refused:
            raise AlertDeliveryError(f"{self.name}: {len(refused)} recipient(s) refused",
                                     channel=self.name)


def default_sender() -> str:
    return f"trestle-etl@{socket.getfqdn() or 'localhost'}"


def _host_of(url: str) -> str:
    try:
        parts = urlsplit(url)
        return f"{parts.hostname}:{parts.port}" if parts.port else str(parts.hostname)
    except ValueError:
        return "(invalid URL)"


class WebhookChannel:
    """POSTs the alert as JSON; any 2xx is delivery."""

    kind = "webhook"

    def __init__(self, url: Secret, *, timeout_s: float = DEFAULT_TIMEOUT_S,
                 session: requests.Session | None = None) -> None:
        self._url = url
        self._timeout_s = timeout_s
        self._session = session or requests.Session()
        self.name = f"{self.kind} to {_host_of(url.reveal())}"

    def payload(self, alert: Alert) -> dict[str, str | None]:
        return alert.as_payload()

    def send(self, alert: Alert) -> None:
        try:
            response = self._session.post(self._url.reveal(), json=self.payload(alert),
                                          timeout=self._timeout_s, allow_redirects=False)
        except requests.RequestException as error:
            # requests puts the whole URL (token included) into its messages: name the type.
            raise AlertDeliveryError(f"{self.name}: {type(error).__name__}",
                                     channel=self.name) from None
        if not 200 <= response.status_code < 300:
            raise AlertDeliveryError(f"{self.name}: HTTP {response.status_code}",
                                     channel=self.name, status=response.status_code)


class SlackChannel(WebhookChannel):
    """Slack incoming webhooks (and the many services that accept their `{"text": …}`)."""

    kind = "slack"

    def payload(self, alert: Alert) -> dict[str, str | None]:
        return {"text": f"*{subject(alert)}*\n{alert.text}"}
