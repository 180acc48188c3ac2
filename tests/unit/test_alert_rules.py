"""When alerts fire: the pure rules, with values at and around each threshold."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from trestle_tasks.core.errors import BadCredentialsError
from trestle_tasks.monitoring.alerts.model import CRITICAL, WARNING, Alert
from trestle_tasks.monitoring.alerts.rules import (
    HeldLock,
    ResourceHistory,
    Thresholds,
    auth_alert,
    crash_alert,
    lock_alerts,
    quota_alert,
    run_alerts,
    stale_alerts,
)
from trestle_tasks.store.sync_log import SyncRun

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
LIMITS = Thresholds(quota_fraction=0.9, reject_fraction=0.01, stale_after=timedelta(hours=1),
                    lock_max_age=timedelta(hours=6))


def a_run(status: str = "succeeded", fetched: int = 1000, rejected: int = 0,
          error: str | None = None) -> SyncRun:
    return SyncRun(run_id="20261126T115500-abcd1234", resource="Property", status=status,
                   started_at=NOW - timedelta(minutes=5), finished_at=NOW,
                   records_fetched=fetched, records_upserted=fetched - rejected,
                   records_rejected=rejected, records_deleted=0, records_duplicate=0,
                   api_requests=3, windows_total=2, windows_ok=1, windows_failed=1,
                   watermark_from=None, watermark_to=None, error=error, details=None)


@pytest.mark.parametrize(("status", "severity"), [
    pytest.param("failed", CRITICAL, id="failed"),
    pytest.param("abandoned", CRITICAL, id="abandoned"),
    pytest.param("partial", WARNING, id="partial"),
])
def test_a_run_that_did_not_succeed_alerts_with_its_error(status, severity):
    [alert] = run_alerts(a_run(status, error="w1: HTTP 503"), LIMITS)
    assert (alert.kind, alert.severity, alert.resource) == ("run_failed", severity, "Property")
    assert alert.dedup_key == "run_failed:Property"
    assert "HTTP 503" in alert.text and "20261126T115500-abcd1234" in alert.text


@pytest.mark.parametrize(("fetched", "rejected", "fires"), [
    pytest.param(1000, 0, False, id="none"),
    pytest.param(1000, 10, False, id="at-threshold"),
    pytest.param(1000, 11, True, id="above"),
    pytest.param(0, 0, False, id="nothing-fetched"),
])
def test_rejects_alert_only_above_the_threshold(fetched, rejected, fires):
    alerts = run_alerts(a_run(fetched=fetched, rejected=rejected), LIMITS)
    assert [a.kind for a in alerts] == (["rejects_high"] if fires else [])


@pytest.mark.parametrize(("state", "fires"), [
    pytest.param({"hour_limit": "1000.0", "hour_available": "100.0"}, True, id="at-90%"),
    pytest.param({"hour_limit": "1000", "hour_available": "101"}, False, id="below"),
    pytest.param({"hour_limit": "1000", "hour_available": "0"}, True, id="spent"),
    pytest.param({"minute_limit": "180"}, False, id="no-hour-headers"),
    pytest.param({}, False, id="nothing-observed"),
    pytest.param(None, False, id="no-limiter-state"),
    pytest.param({"hour_limit": "0", "hour_available": "0"}, False, id="zero-limit"),
])
def test_quota_alerts_from_the_limiters_state(state, fires):
    alert = quota_alert(state, LIMITS)
    assert (alert is not None) == fires
    if alert is not None:
        assert alert.kind == "quota_high" and alert.dedup_key == "quota_high:*"


def test_a_spent_quota_is_critical():
    assert quota_alert({"hour_limit": 10, "hour_available": 0}, LIMITS).severity == CRITICAL


def test_staleness_counts_from_the_last_success_or_else_the_first_trigger():
    history = [
        ResourceHistory("Property", NOW - timedelta(hours=5), NOW - timedelta(minutes=61)),
        ResourceHistory("Member", NOW - timedelta(hours=5), NOW - timedelta(minutes=59)),
        ResourceHistory("Office", NOW - timedelta(minutes=90), None),
        ResourceHistory("OpenHouse", NOW - timedelta(minutes=10), None),
        ResourceHistory("Media", None, None),  # never triggered: a fresh installation
    ]
    alerts = stale_alerts(history, NOW, LIMITS)
    assert [(a.kind, a.resource) for a in alerts] == [("stale", "Property"), ("stale", "Office")]
    assert "never synced successfully" in alerts[1].text


def test_locks_alert_past_their_expected_life():
    held = [HeldLock("Property", "run-a", NOW - timedelta(hours=7)),
            HeldLock("Member", "run-b", NOW - timedelta(hours=5))]
    [alert] = lock_alerts(held, NOW, LIMITS)
    assert (alert.kind, alert.resource) == ("lock_held", "Property") and "run-a" in alert.text


def test_credentials_and_crashes():
    alert = auth_alert(BadCredentialsError("the token endpoint rejected the client credentials"))
    assert (alert.kind, alert.severity, alert.dedup_key) == ("auth_failed", CRITICAL,
                                                            "auth_failed:*")
    crash = crash_alert("Media", "ODataRequestError: HTTP 400")
    assert crash.dedup_key == "run_failed:Media" and "HTTP 400" in crash.text


def test_an_explicit_dedup_key_wins_and_the_payload_is_plain_json():
    alert = Alert("stale", "t", "x", resource="Property", dedup_key="custom")
    assert alert.dedup_key == "custom"
    payload = alert.as_payload()
    assert payload["dedup_key"] == "custom" and isinstance(payload["raised_at"], str)


def test_a_window_refused_its_token_alerts_about_the_credentials_too():
    from dataclasses import replace

    run = replace(a_run("failed", error="w0: rejected"), details={"windows": [
        {"window_id": "w0", "status": "failed", "error": "the token endpoint rejected the "
         "client credentials (HTTP 400)", "error_kind": "BadCredentialsError"},
        {"window_id": "w1", "status": "succeeded", "error": None, "error_kind": None}]})
    kinds = [alert.kind for alert in run_alerts(run, LIMITS)]
    assert kinds == ["run_failed", "auth_failed"]
    other = replace(run, details={"windows": [{"error_kind": "TransientServerError"}]})
    assert [alert.kind for alert in run_alerts(other, LIMITS)] == ["run_failed"]


# -- drift: the figures a reconcile wrote to its sync-log row --

DRIFT_LIMITS = Thresholds(drift_records=100)


def a_reconcile(status: str = "succeeded", *, error: str | None = None,
                **figures: object) -> SyncRun:
    """A closed reconcile run whose details are `figures` (the contract's shape)."""
    from dataclasses import replace

    details = {"kind": "reconcile", **figures}
    return replace(a_run(status, fetched=int(figures.get("fetched", 0) or 0), error=error),
                   run_id="20261126T040000-feedc0de", windows_total=None, windows_ok=0,
                   windows_failed=0, details=details)


def drift_of(missing: int, stale: int, gone: int, *, dry_run: bool = False) -> dict:
    return {"dry_run": dry_run, "census": 1_000_000, "stored": 999_880, "missing": missing,
            "stale": stale, "gone": gone, "restored": 0,
            "fetched": 0 if dry_run else missing + stale, "deleted": 0 if dry_run else gone,
            "census_requests": 4, "repair_requests": 0 if dry_run else 3}


@pytest.mark.parametrize(("missing", "stale", "gone", "fires"), [
    pytest.param(0, 0, 0, False, id="none"),
    pytest.param(90, 5, 5, False, id="at-threshold"),
    pytest.param(90, 5, 6, True, id="one-above"),
    pytest.param(0, 101, 0, True, id="stale-alone"),
    pytest.param(0, 0, 101, True, id="gone-alone"),
])
def test_drift_alerts_only_above_the_threshold(missing, stale, gone, fires):
    alerts = run_alerts(a_reconcile(**drift_of(missing, stale, gone)), DRIFT_LIMITS)
    assert [a.kind for a in alerts] == (["drift"] if fires else [])


def test_the_drift_alert_names_the_resource_and_the_figures():
    [alert] = run_alerts(a_reconcile(**drift_of(120, 3, 5)), Thresholds(drift_records=0))
    assert (alert.kind, alert.resource, alert.severity) == ("drift", "Property", WARNING)
    assert alert.dedup_key == "drift:Property"
    assert "128 records differ" in alert.title and "Property" in alert.title
    for figure in ("1,000,000", "120 missing", "3 stale", "5 gone", "123 record(s) fetched",
                   "5 marked deleted", "20261126T040000-feedc0de"):
        assert figure in alert.text, figure


@pytest.mark.parametrize(("drift", "threshold", "fires"), [
    pytest.param(0, 0, False, id="no-drift"),
    pytest.param(1, 0, True, id="any-drift"),
])
def test_a_zero_threshold_alerts_on_any_drift(drift, threshold, fires):
    alerts = run_alerts(a_reconcile(**drift_of(drift, 0, 0)),
                        Thresholds(drift_records=threshold))
    assert [a.kind for a in alerts] == (["drift"] if fires else [])


def test_a_dry_run_alerts_on_the_drift_it_measured_and_says_nothing_was_repaired():
    [alert] = run_alerts(a_reconcile(**drift_of(200, 0, 0, dry_run=True)), DRIFT_LIMITS)
    assert alert.kind == "drift" and "(dry run)" in alert.text
    assert "nothing was repaired" in alert.text and "fetched and stored" not in alert.text


def test_gone_records_the_guard_kept_are_said_to_be_kept():
    figures = {**drift_of(0, 0, 600_000), "deleted": 0}
    [alert] = run_alerts(a_reconcile(**figures), DRIFT_LIMITS)
    assert "deletion guard refused" in alert.text


@pytest.mark.parametrize("details", [
    pytest.param({"census": 1000, "stored": 1400, "deleted": 400, "restored": 30},
                 id="old-shape"),
    pytest.param({}, id="no-figures"),
    pytest.param({"census": 1000, "missing": None, "stale": "n/a", "gone": True},
                 id="not-numbers"),
])
def test_rows_without_drift_figures_never_alert_about_drift(details):
    assert run_alerts(a_reconcile(**details), Thresholds(drift_records=0)) == []


def test_an_old_shape_row_reads_as_unknown_drift_not_zero():
    from trestle_tasks.monitoring.drift import reconcile_report

    report = reconcile_report(a_reconcile(census=1000, stored=1400, deleted=400, restored=30))
    assert (report.census, report.deleted, report.restored) == (1000, 400, 30)
    assert (report.missing, report.stale, report.gone, report.fetched) == (None,) * 4
    assert report.measured and report.drift == 0 and report.dry_run is False
    assert report.as_dict()["drift"] == 0


def test_a_failed_reconcile_alerts_on_its_own_cooldown_not_the_syncs():
    [alert] = run_alerts(a_reconcile("failed", error="census page 2: HTTP 503"), DRIFT_LIMITS)
    assert (alert.kind, alert.resource) == ("run_failed", "Property")
    assert alert.dedup_key == "run_failed:reconcile:Property"
    assert "reconcile failed" in alert.title and "HTTP 503" in alert.text
    assert "window" not in alert.text  # a reconcile has none; the sync wording would mislead


def test_a_failed_reconcile_that_measured_drift_alerts_about_both():
    run = a_reconcile("failed", error="refused", **{**drift_of(0, 0, 700), "deleted": 0})
    assert [a.kind for a in run_alerts(run, DRIFT_LIMITS)] == ["run_failed", "drift"]


def test_sync_runs_are_judged_as_before():
    sync = a_run(fetched=1000, rejected=0)
    assert run_alerts(sync, Thresholds(drift_records=0)) == []
