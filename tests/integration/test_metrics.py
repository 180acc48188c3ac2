"""The Prometheus endpoint, scraped over HTTP after real syncs against the simulator: its
figures equal what the sync log, the shared limiter and the simulator say."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime

import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from tests.redis_space import redis_url
from trestle_tasks.cli.local import sync_local
from trestle_tasks.cli.metrics_http import start_metrics_server
from trestle_tasks.core.masking import Secret
from trestle_tasks.sync.schema import migrate_from_service
from trestle_tasks.trestle.auth import token_cache_key
from trestle_tasks.trestle.query import ODataQuery
from trestle_tasks.worker import factory
from trestle_tasks.worker.runtime import ClusterRuntime, LocalRuntime

from .conftest import start_simulator
from .sync_fixtures import create_database, drop_database, settings_for

pytestmark = pytest.mark.integration
REDIS_URL = redis_url()
MINUTE_QUOTA, HOUR_QUOTA = 5000, 90000


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """{(sample name, sorted labels): value} of one scrape."""
    with urllib.request.urlopen(url, timeout=30) as response:
        assert response.status == 200
        text = response.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(samples, name: str, feed: str | None = "default", **labels: str) -> float | None:
    """The sample of `name` with exactly `labels` and, but for the scrape's own figure
    of time, `feed` (every series names its feed)."""
    if feed is not None:
        labels["feed"] = feed
    return samples.get((name, tuple(sorted(labels.items()))))


def dispose_store(url: str) -> None:
    for key, store in list(factory._per_process.items()):
        if key[1] == f"store:{url}":
            store.engine.dispose()
            factory._per_process.pop(key, None)


@pytest.fixture(params=["sqlite", "mariadb"])
def database_url(request, tmp_path):
    url, name = create_database(request.param, tmp_path)
    yield url
    dispose_store(url)
    drop_database(request.param, name)


def test_the_endpoint_reports_what_the_sync_log_and_the_limiter_hold(database_url, tmp_path):
    sim = start_simulator(records=300, seed=31, minute_quota=MINUTE_QUOTA,
                          hour_quota=HOUR_QUOTA, retry_after_on_429=1)
    server = None
    try:
        settings = settings_for(sim, database_url, LOCK_DIR=str(tmp_path),
                                SYNC_WINDOW_SIZE="100", TRESTLE_PAGE_SIZE="50",
                                REDIS_URL=REDIS_URL)
        store = factory.store(settings)
        # Tables (and the token, cached in this process) before any fault: the 429s and
        # requests the simulator counts from here on all belong to runs.
        migrate_from_service(store, LocalRuntime(settings).trestle_client(),
                             ["Property", "Office"])
        sim.upsert("Property", [{"ListingKey": "TOOLONGCITY", "City": "x" * 5000}])
        sim.configure(rate_429=0.1, fault_seed=4)
        sim.reset_stats()
        started = datetime.now(UTC)
        results = sync_local(LocalRuntime(settings), ["Property", "Office"])
        assert [r.run.status for r in results] == ["succeeded", "succeeded"]
        served = sim.stats()
        sim.configure(rate_429=0.0)
        # One request through the shared limiter, so Redis holds the quota headers.
        ClusterRuntime(settings).trestle_client().get_count(ODataQuery("Office"))
        quota_state = ClusterRuntime(settings).quota_limiter().state()

        server, _thread = start_metrics_server({"default": ClusterRuntime(settings)}, "127.0.0.1",
                                               0)
        samples = scrape(f"http://127.0.0.1:{server.server_port}/metrics")
        scraped_at = datetime.now(UTC)

        runs = {r.resource: r.run for r in results}
        property_run = runs["Property"]
        assert property_run.records_rejected == 1  # the City over its MaxLength
        for resource, run in runs.items():
            assert value(samples, "trestle_records_fetched_total", resource=resource) == \
                run.records_fetched == len(sim.records(resource))
            assert value(samples, "trestle_records_upserted_total", resource=resource) == \
                run.records_upserted
            # The counter's name before it took its column's: still exported, same value.
            assert value(samples, "trestle_records_synced_total", resource=resource) == \
                run.records_upserted
            assert value(samples, "trestle_api_bytes_total", resource=resource) == \
                value(samples, "trestle_api_received_bytes_total", resource=resource) > 0
            assert value(samples, "trestle_records_rejected_total", resource=resource) == \
                run.records_rejected
            assert value(samples, "trestle_api_requests_total", resource=resource) == \
                run.api_requests
            assert value(samples, "trestle_api_rate_limited_total", resource=resource) == \
                run.api_rate_limited
            assert value(samples, "trestle_api_retries_total", resource=resource) == \
                run.api_retries
            assert value(samples, "trestle_runs_total", resource=resource,
                         status="succeeded") == 1
            lag = value(samples, "trestle_sync_lag_seconds", resource=resource)
            mark = store.sync_log.read_watermark(resource).timestamp.to_datetime()
            assert lag == pytest.approx((scraped_at - mark).total_seconds(), abs=2)
            assert 0 <= lag <= (scraped_at - started).total_seconds() + 2
        # The simulator's own count of what it served: every request and every 429 of
        # the runs is in the sync log, and the runs met some 429s.
        rate_limited = sum(r.api_rate_limited for r in runs.values())
        assert rate_limited == served["throttled_429"] > 0
        assert sum(r.api_requests for r in runs.values()) == served["requests_total"]
        # The quota as the shared limiter last saw it, and as the simulator set it.
        assert value(samples, "trestle_quota_limit", window="minute") == MINUTE_QUOTA
        assert value(samples, "trestle_quota_limit", window="hour") == HOUR_QUOTA
        assert value(samples, "trestle_quota_available", window="minute") == \
            float(quota_state["minute_available"])
        assert value(samples, "trestle_quota_available", window="hour") == \
            float(quota_state["hour_available"])
        assert value(samples, "trestle_metrics_scrape_errors_total", source="redis") == 0
        assert value(samples, "trestle_metrics_scrape_errors_total", source="database") == 0
    finally:
        if server is not None:
            server.shutdown()
            server.server_close()
        # The shared limiter's state and the shared token this test left in Redis.
        redis.Redis.from_url(REDIS_URL).delete(ClusterRuntime(  # type: ignore[attr-defined]
            settings_for(sim, database_url, REDIS_URL=REDIS_URL)).quota_limiter().key,
            token_cache_key(sim.token_url, sim.client_id, Secret(sim.client_secret)))
        sim.stop()


def test_the_command_serves_without_redis_and_counts_the_failed_reads(tmp_path):
    """Redis down: the quota series are left out, a scrape error is counted, the sync-log
    series stay, and the Redis password is nowhere in the answer or the log."""
    password = "metrics-redis-pw-9431"
    sim = start_simulator(records=120, seed=32)
    url, _ = create_database("sqlite", tmp_path)
    try:
        settings = settings_for(sim, url, LOCK_DIR=str(tmp_path))
        sync_local(LocalRuntime(settings), ["Office"])
        env = {**os.environ, "TRESTLE_CLIENT_ID": sim.client_id,
               "TRESTLE_CLIENT_SECRET": sim.client_secret, "TRESTLE_TOKEN_URL": sim.token_url,
               "TRESTLE_BASE_URL": sim.odata_root, "DATABASE_URL": url,
               "REDIS_URL": f"redis://:{password}@127.0.0.1:1/8", "LOG_FORMAT": "json"}
        process = subprocess.Popen(
            [sys.executable, "-m", "trestle_tasks", "metrics", "--port", "0"], env=env,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
        try:
            line = process.stdout.readline()
            assert "/metrics" in line, line
            endpoint = line.split("at ", 1)[1].split(";", 1)[0]
            first, second = scrape(endpoint), scrape(endpoint)
        finally:
            process.terminate()
            _out, err = process.communicate(timeout=30)
        assert value(second, "trestle_metrics_scrape_errors_total", source="redis") == 2
        assert value(first, "trestle_metrics_scrape_errors_total", source="redis") == 1
        assert not [key for key in second if key[0].startswith("trestle_quota")]
        assert value(second, "trestle_records_upserted_total", resource="Office") == \
            len(sim.records("Office"))
        assert "could not read the redis of feed default (ConnectionError)" in err
        assert password not in err
    finally:
        dispose_store(url)
        sim.stop()


def test_a_database_without_tables_is_a_scrape_error_not_a_failure(tmp_path):
    url = f"sqlite:///{tmp_path / 'empty.sqlite3'}"
    sim = start_simulator(records=10, seed=1)
    try:
        settings = settings_for(sim, url, REDIS_URL=REDIS_URL)
        server, _thread = start_metrics_server({"default": ClusterRuntime(settings)}, "127.0.0.1",
                                               0)
        try:
            deadline = time.monotonic() + 5
            samples = scrape(f"http://127.0.0.1:{server.server_port}/metrics")
            assert time.monotonic() < deadline
        finally:
            server.shutdown()
            server.server_close()
        assert value(samples, "trestle_metrics_scrape_errors_total", source="database") == 1
        assert not [key for key in samples if key[0].startswith("trestle_records")]
    finally:
        dispose_store(url)
        sim.stop()
