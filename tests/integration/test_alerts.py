"""Alerts end to end: forced failures through real runs, real SMTP and HTTP receivers, the
cooldown shared by processes through Redis (the tests' shared database, under the test's
own credential: tests/redis_space.py), STARTTLS with a login, and secrets."""

from __future__ import annotations

import multiprocessing
import shutil
import ssl
import subprocess
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.alert_receivers import HttpReceiver, SmtpReceiver
from tests.redis_space import own_credential, redis_url
from trestle_tasks.cli.local import sync_local
from trestle_tasks.coordination.locks import lock_name
from trestle_tasks.core.errors import AlertDeliveryError, BadCredentialsError
from trestle_tasks.core.masking import Secret
from trestle_tasks.core.settings import load_settings
from trestle_tasks.monitoring.alerts.channels import SmtpChannel, WebhookChannel
from trestle_tasks.monitoring.alerts.model import Alert
from trestle_tasks.store.sync_log import FAILED, SUCCEEDED
from trestle_tasks.worker import alert_hooks as hooks
from trestle_tasks.worker import factory
from trestle_tasks.worker.runtime import ClusterRuntime, LocalRuntime

from .conftest import start_simulator
from .sync_fixtures import create_database, settings_for

pytestmark = pytest.mark.integration
ALERT_REDIS_URL = redis_url()
HOOK_TOKEN = "hook-token-5f3a9c"
HOOK_PATH = f"/hooks/{HOOK_TOKEN}"


@pytest.fixture
def smtp() -> Iterator[SmtpReceiver]:
    receiver = SmtpReceiver().start()
    yield receiver
    receiver.stop()


@pytest.fixture
def hook() -> Iterator[HttpReceiver]:
    receiver = HttpReceiver().start()
    yield receiver
    receiver.stop()


def alert_env(smtp: SmtpReceiver, hook: HttpReceiver) -> dict[str, str]:
    return {
        "ALERT_EMAIL_TO": "ops@example.com",
        "ALERT_EMAIL_FROM": "etl@example.com",
        "ALERT_SMTP_HOST": "127.0.0.1",
        "ALERT_SMTP_PORT": str(smtp.port),
        "ALERT_SMTP_STARTTLS": "false",
        "ALERT_WEBHOOK_URL": hook.url(HOOK_PATH),
        "ALERT_COOLDOWN_MINUTES": "60",
    }


def fail_every_window(sim):
    """Planning succeeds; from then on every data request answers 5xx (and the retry budget
    is 0), so every window fails and the run closes `failed`."""
    def on_plan(plan):
        sim.configure(rate_5xx=1.0)
    return on_plan


def test_a_forced_failed_run_alerts_once_and_a_repeat_within_the_cooldown_not_at_all(
        tmp_path, smtp, hook, caplog):
    sim = start_simulator(records=200, seed=3)
    try:
        url, _ = create_database("sqlite", tmp_path)
        settings = settings_for(sim, url, LOCK_DIR=str(tmp_path), TRESTLE_RETRY_BUDGET="0",
                                **alert_env(smtp, hook))
        first = sync_local(LocalRuntime(settings), ["Office"],
                           on_plan=fail_every_window(sim))[0].run
        assert first.status == FAILED
        assert len(smtp.messages) == 1 and len(hook.requests) == 1
        mail, (path, body) = smtp.messages[0], hook.requests[0]
        assert "Office sync failed" in mail["Subject"] and mail["To"] == "ops@example.com"
        assert mail["X-Trestle-Alert"] == "run_failed:Office"
        assert first.run_id in mail.get_payload()
        assert path == HOOK_PATH
        assert (body["kind"], body["resource"], body["severity"]) == (
            "run_failed", "Office", "critical")
        assert first.run_id in body["text"]

        sim.configure(rate_5xx=0.0)  # the next run plans, then fails the same way
        again = sync_local(LocalRuntime(settings), ["Office"],
                           on_plan=fail_every_window(sim))[0].run
        assert again.status == FAILED and again.run_id != first.run_id
        assert len(smtp.messages) == 1 and len(hook.requests) == 1  # suppressed
        assert HOOK_TOKEN not in caplog.text
    finally:
        sim.stop()


def test_rejected_credentials_alert_as_such_and_the_run_still_raises(tmp_path, smtp, hook):
    sim = start_simulator(records=50, seed=4)
    try:
        url, _ = create_database("sqlite", tmp_path)
        settings = settings_for(sim, url, LOCK_DIR=str(tmp_path), **alert_env(smtp, hook),
                                TRESTLE_CLIENT_SECRET="not-the-secret")
        with pytest.raises(BadCredentialsError):
            sync_local(LocalRuntime(settings), ["Member"])
        assert [b["kind"] for _, b in hook.requests] == ["auth_failed"]
        assert len(smtp.messages) == 1
        assert "rejected the client credentials" in smtp.messages[0]["Subject"]
        assert "not-the-secret" not in smtp.messages[0].as_string()
    finally:
        sim.stop()


def test_a_dead_receiver_never_breaks_the_run_and_leaks_no_secret(tmp_path, caplog):
    sim = start_simulator(records=50, seed=5)
    try:
        url, _ = create_database("sqlite", tmp_path)
        settings = settings_for(
            sim, url, LOCK_DIR=str(tmp_path), TRESTLE_RETRY_BUDGET="0",
            ALERT_WEBHOOK_URL=f"http://127.0.0.1:9{HOOK_PATH}",
            ALERT_EMAIL_TO="ops@example.com", ALERT_SMTP_HOST="127.0.0.1",
            ALERT_SMTP_PORT="9", ALERT_SMTP_USER="etl", ALERT_SMTP_PASSWORD="smtp-pass-77x",
        )
        run = sync_local(LocalRuntime(settings), ["Office"], on_plan=fail_every_window(sim))[0].run
        assert run.status == FAILED  # the alert failed; the run's own result is unchanged
        assert "webhook to 127.0.0.1:9" in caplog.text and "email via 127.0.0.1:9" in caplog.text
        assert HOOK_TOKEN not in caplog.text and "smtp-pass-77x" not in caplog.text
    finally:
        sim.stop()


def _send_from_another_process(environ: dict[str, str], barrier, results) -> None:
    try:
        settings = load_settings(environ, env_file=None)
        barrier.wait(timeout=60)
        delivery = ClusterRuntime(settings).alert_dispatcher().send(
            Alert("run_failed", "Property sync failed", "from a worker", resource="Property"))
        results.put(delivery.status)
    except BaseException as error:  # shown in the assertion instead of lost in the child
        results.put(f"{type(error).__name__}: {error}")


def test_worker_processes_share_the_cooldown_through_redis(hook, redis_client):
    environ = {"TRESTLE_CLIENT_ID": f"client-{uuid.uuid4().hex[:8]}",
               "TRESTLE_CLIENT_SECRET": "x" * 8, "REDIS_URL": ALERT_REDIS_URL,
               "ALERT_WEBHOOK_URL": hook.url(HOOK_PATH), "ALERT_COOLDOWN_MINUTES": "5"}
    settings = load_settings(environ, env_file=None)
    own_credential(settings.token_url, environ["TRESTLE_CLIENT_ID"])
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(4), context.Queue()
    workers = [context.Process(target=_send_from_another_process,
                               args=(environ, barrier, results)) for _ in range(4)]
    for worker in workers:
        worker.start()
    statuses = sorted(results.get(timeout=90) for _ in workers)
    for worker in workers:
        worker.join(timeout=10)
    assert statuses == ["sent", "suppressed", "suppressed", "suppressed"]
    assert len(hook.requests) == 1
    pattern = f"trestle:alert:{factory.credential_id(settings)}:*"
    keys = [k.decode() for k in redis_client.scan_iter(pattern)]
    assert len(keys) == 1 and keys[0].endswith(":run_failed:Property")
    assert 0 < redis_client.ttl(keys[0]) <= 300


def test_the_periodic_check_finds_stale_resources_and_locks_held_too_long(tmp_path, hook):
    url = f"sqlite:///{tmp_path / 'check.sqlite3'}"
    settings = load_settings({
        "TRESTLE_CLIENT_ID": "checker", "TRESTLE_CLIENT_SECRET": "secret-x",
        "DATABASE_URL": url, "LOCK_DIR": str(tmp_path),
        "TRESTLE_RESOURCES": "Property,Member,Office,Media",
        "ALERT_WEBHOOK_URL": hook.url(HOOK_PATH), "ALERT_STALE_AFTER_MINUTES": "60",
        "ALERT_LOCK_MAX_MINUTES": "120",
    }, env_file=None)
    store = factory.store(settings)
    store.evolve_bookkeeping()
    sync_log, now = store.sync_log, datetime.now(UTC)

    def run(run_id, resource, started_minutes_ago, status=None):
        started = now - timedelta(minutes=started_minutes_ago)
        sync_log.open_run(run_id, resource, started_at=started,
                         watermark_to="2026-01-01T00:00:00.0000000Z")
        if status is not None:
            sync_log.close_run(run_id, resource, status=status,
                              finished_at=started + timedelta(minutes=1))

    run("p-old", "Property", 200, SUCCEEDED)  # succeeded, but not since: stale
    run("p-new", "Property", 30, FAILED)
    run("m-ok", "Member", 1, SUCCEEDED)  # fresh
    run("o-bad", "Office", 90, FAILED)  # never succeeded, first trigger 90 min ago: stale
    run("media-live", "Media", 150)  # still running after 150 min, holding its lock
    sync_log.open_run("m-reconcile", "Member", started_at=now - timedelta(minutes=500))
    lock = factory.run_lock(settings)
    grant = lock.acquire(lock_name("Media"), "media-live", 60)
    try:
        deliveries = hooks.check(LocalRuntime(settings), now=now + timedelta(minutes=5))
    finally:
        lock.release(grant)
    found = sorted((b["kind"], b["resource"]) for _, b in hook.requests)
    assert found == [("lock_held", "Media"), ("stale", "Media"), ("stale", "Office"),
                     ("stale", "Property")]
    assert [d.status for d in deliveries] == ["sent"] * 4


def _certificate(folder: Path) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a test certificate")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    return cert, key


def test_starttls_and_login_against_a_server_that_requires_both(tmp_path, caplog):
    cert, key = _certificate(tmp_path)
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    receiver = SmtpReceiver(tls_context=server_tls, login=("etl", "right-pass-42")).start()
    try:
        client_tls = ssl.create_default_context(cafile=str(cert))

        def channel(password: str, starttls: bool = True) -> SmtpChannel:
            return SmtpChannel(host="127.0.0.1", port=receiver.port, sender="etl@example.com",
                               recipients=["ops@example.com"], user="etl",
                               password=Secret(password), starttls=starttls,
                               ssl_context=client_tls, timeout_s=5)

        alert = Alert("quota_high", "Trestle hour quota 95% used", "950 of 1000")
        channel("right-pass-42").send(alert)
        assert receiver.logins == ["etl"] and len(receiver.messages) == 1
        with pytest.raises(AlertDeliveryError) as refused:
            channel("wrong-pass-13").send(alert)
        assert "refused the login" in str(refused.value)
        assert "wrong-pass-13" not in str(refused.value)
        with pytest.raises(AlertDeliveryError):  # no STARTTLS: the server refuses to go on
            channel("right-pass-42", starttls=False).send(alert)
        assert len(receiver.messages) == 1
    finally:
        receiver.stop()


def test_webhook_errors_name_the_host_never_the_url():
    channel = WebhookChannel(Secret(f"http://127.0.0.1:9{HOOK_PATH}"), timeout_s=2)
    with pytest.raises(AlertDeliveryError) as failed:
        channel.send(Alert("stale", "t", "x"))
    assert "127.0.0.1:9" in str(failed.value) and HOOK_TOKEN not in str(failed.value)
    # requests' own exception names the whole URL: it is neither the cause nor shown.
    assert failed.value.__cause__ is None and failed.value.__suppress_context__


def test_the_beat_task_uses_the_database_lock_and_the_redis_cooldown(tmp_path, hook,
                                                                     redis_client, monkeypatch):
    from trestle_tasks.worker import tasks
    from trestle_tasks.worker.runtime import forget_cluster_runtime

    monkeypatch.chdir(tmp_path)  # no stray .env
    environ = {"TRESTLE_CLIENT_ID": f"beat-{uuid.uuid4().hex[:8]}",
               "TRESTLE_CLIENT_SECRET": "secret-y", "REDIS_URL": ALERT_REDIS_URL,
               "DATABASE_URL": f"sqlite:///{tmp_path / 'beat.sqlite3'}",
               "TRESTLE_RESOURCES": "Office,Member", "ALERT_WEBHOOK_URL": hook.url(HOOK_PATH),
               "ALERT_LOCK_MAX_MINUTES": "60"}
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    settings = load_settings(environ, env_file=None)
    own_credential(settings.token_url, environ["TRESTLE_CLIENT_ID"])
    store = factory.store(settings)
    store.evolve_bookkeeping()
    now = datetime.now(UTC)
    store.sync_log.open_run("office-1", "Office", started_at=now - timedelta(minutes=90),
                           watermark_to="2026-01-01T00:00:00.0000000Z")
    store.sync_log.close_run("office-1", "Office", status=FAILED)
    store.sync_log.open_run("member-1", "Member", started_at=now - timedelta(minutes=61),
                           watermark_to="2026-01-01T00:00:00.0000000Z")
    store.sync_log.close_run("member-1", "Member", status=SUCCEEDED,
                            finished_at=now - timedelta(minutes=50))
    store.sync_log.open_run("member-2", "Member", started_at=now - timedelta(minutes=70),
                           watermark_to="2026-01-01T00:00:00.0000000Z")
    # The workers' lock is the database's: the one a `sync --local` would take too.
    assert factory.run_lock(settings).acquire(lock_name("Member"), "member-2", 60)

    forget_cluster_runtime()  # a worker reads its settings once: this test's, from here
    first = tasks.check_alerts.run()
    assert sorted((r["alert"], r["status"]) for r in first) == [
        ("lock_held:Member", "sent"), ("stale:Office", "sent")]
    assert sorted(b["dedup_key"] for _, b in hook.requests) == ["lock_held:Member",
                                                                "stale:Office"]
    second = tasks.check_alerts.run()
    assert {r["status"] for r in second} == {"suppressed"} and len(hook.requests) == 2


def test_an_attempt_that_will_be_retried_whole_is_not_yet_a_failed_run(tmp_path, hook):
    from tests.unit.test_alert_rules import a_run

    settings = load_settings({
        "TRESTLE_CLIENT_ID": f"retrying-{uuid.uuid4().hex[:8]}", "TRESTLE_CLIENT_SECRET": "s-1",
        "LOCK_DIR": str(tmp_path), "ALERT_WEBHOOK_URL": hook.url(HOOK_PATH)}, env_file=None)
    failed = a_run("failed", fetched=100, rejected=5)  # 5 % rejected: alerts either way
    assert [d.dedup_key for d in hooks.after_run(LocalRuntime(settings), failed,
                                                 retrying=True)] == ["rejects_high:Property"]
    assert [b["kind"] for _, b in hook.requests] == ["rejects_high"]
    last = hooks.after_run(LocalRuntime(settings), failed)
    assert [(d.dedup_key, d.status) for d in last] == [("run_failed:Property", "sent"),
                                                       ("rejects_high:Property", "suppressed")]
