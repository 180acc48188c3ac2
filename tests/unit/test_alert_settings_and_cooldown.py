"""Alert settings (secrets stay masked) and the cooldown stores that work without Redis."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest

from trestle_tasks.core.errors import ConfigurationError
from trestle_tasks.core.settings import load_settings
from trestle_tasks.monitoring.alerts.channels import SlackChannel, SmtpChannel, WebhookChannel
from trestle_tasks.monitoring.alerts.cooldown import FileCooldown, MemoryCooldown
from trestle_tasks.worker.runtime import LocalRuntime

BASE = {"TRESTLE_CLIENT_ID": "c", "TRESTLE_CLIENT_SECRET": "secret-1"}
WEBHOOK = "https://hooks.example.com/services/T1/B2/sup3rtoken"
SLACK = "https://hooks.slack.example/services/T9/B9/slacktoken9"


def test_alert_secrets_are_masked_and_known_to_the_redactor():
    settings = load_settings({**BASE, "ALERT_SMTP_PASSWORD": "mail-pass-1",
                              "ALERT_WEBHOOK_URL": WEBHOOK, "ALERT_SLACK_WEBHOOK_URL": SLACK},
                             env_file=None)
    shown = repr(settings) + str(settings.masked())
    for secret in ("mail-pass-1", "sup3rtoken", "slacktoken9"):
        assert secret not in shown
    assert {"mail-pass-1", WEBHOOK, SLACK} <= set(settings.secret_values())
    with pytest.raises(ConfigurationError) as caught:
        load_settings({**BASE, "ALERT_WEBHOOK_URL": "hooks.example.com/sup3rtoken"},
                      env_file=None)
    assert "ALERT_WEBHOOK_URL=(hidden)" in str(caught.value)
    assert "sup3rtoken" not in str(caught.value)


@pytest.mark.parametrize(("text", "value"), [("true", True), ("No", False), ("1", True),
                                             ("off", False)])
def test_starttls_reads_the_usual_booleans(text, value):
    settings = load_settings({**BASE, "ALERT_SMTP_STARTTLS": text}, env_file=None)
    assert settings.alert_smtp_starttls is value


def test_channels_follow_the_settings_and_none_means_disabled(tmp_path):
    quiet = LocalRuntime(load_settings(BASE, env_file=None)).alert_dispatcher()
    assert not quiet.enabled
    # An address without a server is not a channel (and the other way round).
    assert not LocalRuntime(load_settings(
        {**BASE, "ALERT_EMAIL_TO": "ops@example.com"}, env_file=None)).alert_dispatcher().enabled
    loud = LocalRuntime(load_settings({
        **BASE, "ALERT_EMAIL_TO": "a@example.com,b@example.com", "ALERT_SMTP_HOST": "mail",
        "ALERT_WEBHOOK_URL": WEBHOOK, "ALERT_SLACK_WEBHOOK_URL": SLACK,
        "LOCK_DIR": str(tmp_path)}, env_file=None)).alert_dispatcher()
    kinds = [type(c) for c in loud.channels]
    assert kinds == [SmtpChannel, WebhookChannel, SlackChannel]
    names = " ".join(c.name for c in loud.channels)
    assert names == "email via mail:587 webhook to hooks.example.com slack to hooks.slack.example"


def test_memory_cooldown_expires_and_only_its_own_claim_is_released():
    now = [0.0]
    cooldown = MemoryCooldown(clock=lambda: now[0])
    token = cooldown.claim("k", 60)
    assert token and cooldown.claim("k", 60) is None
    cooldown.release("k", "someone-else")
    assert cooldown.claim("k", 60) is None
    now[0] = 61
    assert cooldown.claim("k", 60)
    assert cooldown.claim("other", 0) and cooldown.claim("other", 0)  # 0: no cooldown


def test_file_cooldown_survives_the_process_and_releases_by_token(tmp_path):
    now = [1000.0]
    first = FileCooldown(tmp_path, clock=lambda: now[0])
    token = first.claim("run_failed:Property", 300)
    assert token
    again = FileCooldown(tmp_path, clock=lambda: now[0])  # the next cron run
    assert again.claim("run_failed:Property", 300) is None
    assert again.claim("run_failed:Member", 300)
    again.release("run_failed:Property", "not-the-token")
    assert again.claim("run_failed:Property", 300) is None
    first.release("run_failed:Property", token)
    assert again.claim("run_failed:Property", 300)
    now[0] += 301
    assert FileCooldown(tmp_path, clock=lambda: now[0]).claim("run_failed:Member", 300)


def _claim(folder: str, results) -> None:
    results.put(FileCooldown(Path(folder)).claim("stale:Office", 600) is not None)


def test_file_cooldown_grants_one_claim_among_racing_processes(tmp_path):
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    racers = [context.Process(target=_claim, args=(str(tmp_path), results)) for _ in range(6)]
    for racer in racers:
        racer.start()
    for racer in racers:
        racer.join(timeout=30)
    assert sorted(results.get(timeout=5) for _ in racers) == [False] * 5 + [True]
