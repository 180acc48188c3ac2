"""Prometheus metrics, read on each scrape from where the state already lives.

Nothing is counted in memory: the figures come from the sync log and watermarks in the
database and from the quota limiter's state in Redis. So one endpoint covers every Celery
worker and every `sync --local` run that writes to the database, with no multiprocess
mode, and a restart of the endpoint loses nothing. When Redis does not answer, the quota
series are left out and `trestle_metrics_scrape_errors_total{source="redis"}` goes up;
the same for the database.

Counters are sums over the sync log (a run still open counts through its windows), so
they only fall if sync-log rows are deleted, or for a moment when a redelivered window
restarts its counts; Prometheus treats either as a counter reset.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from trestle_tasks.monitoring.drift import (
    DRIFT_KINDS,
    ReconcileReport,
    latest_reconciles,
)
from trestle_tasks.monitoring.freshness import BUCKETS, bucket_label
from trestle_tasks.store.store import Store
from trestle_tasks.store.sync_log import RUNNING
from trestle_tasks.store.sync_log_reports import sync_log_totals

log = logging.getLogger(__name__)

# Sync-log column -> (metric name without _total, help text). Each metric is named after
# its column: one name per figure, in the database and on the dashboard.
COUNTERS: Mapping[str, tuple[str, str]] = {
    "records_fetched": ("trestle_records_fetched", "Records received from Trestle."),
    "records_upserted": ("trestle_records_upserted",
                         "Records written to the database (inserted or updated)."),
    "records_rejected": ("trestle_records_rejected",
                         "Records that failed validation (kept in etl_rejects)."),
    "records_deleted": ("trestle_records_deleted",
                        "Records marked deleted by reconcile or photo-set refresh."),
    "api_requests": ("trestle_api_requests", "HTTP requests sent to Trestle, retries included."),
    "api_retries": ("trestle_api_retries",
                    "Requests retried after a 429, 5xx or broken connection."),
    "api_rate_limited": ("trestle_api_rate_limited", "HTTP 429 answers received."),
    "api_bytes": ("trestle_api_bytes",
                  "Response bytes received from Trestle as sent (compressed)."),
}
# The names these two counters had before they took their columns' names. Dashboards and
# alert rules may query them, so they are still exported, with the same values, until a
# later release removes them (docs/monitoring.md, Metrics).
DEPRECATED_NAMES: Mapping[str, str] = {
    "records_upserted": "trestle_records_synced",
    "api_bytes": "trestle_api_received_bytes",
}
# Columns the windows of a run still open hold (deletions are counted on the run's row).
_WINDOW_COLUMNS = ("records_fetched", "records_upserted", "records_rejected", "api_requests",
                   "api_retries", "api_rate_limited", "api_bytes")


@dataclass
class SyncFigures:
    """What the sync log says, per resource."""

    counters: dict[str, dict[str, int]] = field(default_factory=dict)  # resource -> column -> n
    runs: dict[tuple[str, str], int] = field(default_factory=dict)  # (resource, status) -> n
    # Reconciles apart: they are not syncs, and a dry run's seconds of census are no sync's
    # duration, nor its success the copy's freshness.
    reconcile_runs: dict[tuple[str, str], int] = field(default_factory=dict)
    lag_s: dict[str, float] = field(default_factory=dict)  # now - watermark
    last_success: dict[str, float] = field(default_factory=dict)  # epoch seconds
    last_duration_s: dict[str, float] = field(default_factory=dict)  # latest finished run
    # The latest reconcile whose census finished (dry runs too: they measure drift as well).
    reconciles: dict[str, ReconcileReport] = field(default_factory=dict)


def read_sync_figures(store: Store, now: datetime | None = None) -> SyncFigures:
    now = now or datetime.now(UTC)
    totals = sync_log_totals(store, list(COUNTERS), _WINDOW_COLUMNS)
    figures = SyncFigures(
        counters=totals.counters, runs=totals.runs, reconcile_runs=totals.reconcile_runs,
        last_success={r: _epoch(t) for r, t in totals.last_success.items()},
        last_duration_s=totals.last_duration_s)
    figures.reconciles = latest_reconciles(store, measured_only=True)
    for resource, mark in store.sync_log.watermarks().items():
        figures.lag_s[resource] = max((now - mark.timestamp.to_datetime()).total_seconds(), 0.0)
    return figures


def _epoch(moment: datetime) -> float:
    return moment.replace(tzinfo=UTC).timestamp() if moment.tzinfo is None \
        else moment.timestamp()


@dataclass(frozen=True)
class FeedSource:
    """Where one feed's figures are read: its store, and its quota limiter's state (None
    when the feed has no credential to key the limiter by)."""

    store: Callable[[], Store]
    quota_state: Callable[[], Mapping[str, str]] | None = None
    # resource -> the freshness histogram's stored buckets (monitoring/freshness.py)
    freshness: Callable[[], Mapping[str, Mapping[str, float]]] | None = None


class PipelineCollector(Collector):
    """A Prometheus collector that reads each feed's sync log and quota limiter per scrape.

    Every series carries a `feed` label (`default` in a single-feed deployment), so one
    endpoint serves the whole deployment and a dashboard can sum across feeds or pick one.
    """

    def __init__(self, feeds: Mapping[str, FeedSource],
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._feeds = dict(feeds)
        self._clock = clock
        self._errors = {(feed, source): 0 for feed in self._feeds
                        for source in ("database", "redis")}
        self._lock = threading.Lock()

    def describe(self) -> list[Metric]:
        # Nothing up front: registering must not touch the database.
        return []

    def collect(self) -> Iterator[Metric]:
        started = time.monotonic()
        figures: dict[str, SyncFigures] = {}
        quotas: dict[str, Mapping[str, Any]] = {}
        freshness: dict[str, Mapping[str, Mapping[str, float]]] = {}
        for feed, source in self._feeds.items():
            try:
                figures[feed] = read_sync_figures(source.store(), self._clock())
            except Exception as error:  # no tables yet, or the database is down
                self._count_error(feed, "database", error)
            # One scrape that could not read Redis is one error, however many of its
            # figures live there (the counter counts scrapes, not reads).
            try:
                if source.quota_state is not None:
                    quotas[feed] = source.quota_state()
                if source.freshness is not None:
                    freshness[feed] = source.freshness()
            except Exception as error:
                self._count_error(feed, "redis", error)
        # One family per name, holding every feed's samples: Prometheus rejects a name
        # exposed twice in one scrape.
        yield from sync_families(figures)
        yield from quota_families(quotas)
        yield from freshness_families(freshness)
        errors = CounterMetricFamily("trestle_metrics_scrape_errors",
                                     "Scrapes that could not read a source.",
                                     labels=["feed", "source"])
        with self._lock:
            for (feed_name, kind), count in sorted(self._errors.items()):
                errors.add_metric([feed_name, kind], count)
        yield errors
        yield GaugeMetricFamily("trestle_metrics_scrape_duration_seconds",
                                "Time this scrape spent reading its sources.",
                                value=time.monotonic() - started)

    def _count_error(self, feed: str, source: str, error: Exception) -> None:
        with self._lock:
            self._errors[(feed, source)] += 1
        # The type only: a driver's message may quote a URL with its password.
        log.warning("metrics: could not read the %s of feed %s (%s)", source, feed,
                    type(error).__name__)


def sync_families(by_feed: Mapping[str, SyncFigures]) -> Iterator[Metric]:
    feeds = sorted(by_feed.items())
    for column, (name, text) in COUNTERS.items():
        names = [(name, text)]
        if column in DEPRECATED_NAMES:
            names.append((DEPRECATED_NAMES[column], f"Deprecated: the same as {name}_total."))
        for family_name, family_text in names:
            family = CounterMetricFamily(family_name, family_text, labels=["feed", "resource"])
            for feed, figures in feeds:
                for resource, totals in sorted(figures.counters.items()):
                    family.add_metric([feed, resource], totals[column])
            yield family
    finished = CounterMetricFamily("trestle_runs", "Finished runs (and skipped triggers) by "
                                   "status.", labels=["feed", "resource", "status"])
    running = GaugeMetricFamily("trestle_runs_running", "Runs open now (or never closed).",
                                labels=["feed", "resource"])
    for feed, figures in feeds:
        for (resource, status), count in sorted(figures.runs.items()):
            if status == RUNNING:
                running.add_metric([feed, resource], count)
            else:
                finished.add_metric([feed, resource, status], count)
    yield finished
    yield running
    reconciles = CounterMetricFamily(
        "trestle_reconcile_runs", "Reconcile runs (dry runs included) by status; not in "
        "trestle_runs_total.", labels=["feed", "resource", "status"])
    for feed, figures in feeds:
        for (resource, status), count in sorted(figures.reconcile_runs.items()):
            if status != RUNNING:  # finished ones, as trestle_runs_total counts
                reconciles.add_metric([feed, resource, status], count)
    yield reconciles
    yield _gauge("trestle_sync_lag_seconds",
                 "Seconds between now and the watermark: how far the copy is behind the feed.",
                 {feed: figures.lag_s for feed, figures in feeds})
    yield _gauge("trestle_last_success_timestamp_seconds",
                 "When the last run that succeeded finished (Unix time).",
                 {feed: figures.last_success for feed, figures in feeds})
    yield _gauge("trestle_last_run_duration_seconds",
                 "Start to finish of the latest finished run.",
                 {feed: figures.last_duration_s for feed, figures in feeds})
    yield from drift_families({feed: figures.reconciles for feed, figures in feeds})


def drift_families(by_feed: Mapping[str, Mapping[str, ReconcileReport]]) -> Iterator[Metric]:
    """What the latest measured reconcile of each feed's resources found; a figure an older
    version's row does not carry is left out rather than reported as zero."""
    drift = GaugeMetricFamily("trestle_replica_drift_records",
                              "Records the latest reconcile found differing from the feed: "
                              "missing (in the feed, not stored), stale (the feed's copy is "
                              "newer), gone (stored, not in the feed).",
                              labels=["feed", "resource", "kind"])
    feeds = sorted(by_feed.items())
    for feed, reconciles in feeds:
        for resource, report in sorted(reconciles.items()):
            for kind in DRIFT_KINDS:
                if (count := getattr(report, kind)) is not None:
                    drift.add_metric([feed, resource, kind], count)
    yield drift
    yield _gauge("trestle_replica_census_records",
                 "(key, timestamp) pairs in the latest reconcile's census of the feed.",
                 {feed: {r: float(c.census) for r, c in reconciles.items()
                         if c.census is not None} for feed, reconciles in feeds})
    yield _gauge("trestle_replica_last_reconcile_timestamp_seconds",
                 "When the reconcile the drift figures come from finished (Unix time).",
                 {feed: {r: _epoch(c.finished_at) for r, c in reconciles.items()
                         if c.finished_at is not None} for feed, reconciles in feeds})


def _gauge(name: str, text: str, by_feed: Mapping[str, Mapping[str, float]]
           ) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, text, labels=["feed", "resource"])
    for feed, values in sorted(by_feed.items()):
        for resource, value in sorted(values.items()):
            family.add_metric([feed, resource], value)
    return family


def quota_families(by_feed: Mapping[str, Mapping[str, Any]]) -> Iterator[Metric]:
    """Each feed's limiter's last view of its quota headers; nothing for a feed before any
    response."""
    feeds = sorted((feed, state) for feed, state in by_feed.items() if state)
    if not feeds:
        return
    limit = GaugeMetricFamily("trestle_quota_limit", "Requests the quota allows per window, "
                              "as the server last said.", labels=["feed", "window"])
    available = GaugeMetricFamily("trestle_quota_available", "Requests left in the current "
                                  "quota window, as the server last said.",
                                  labels=["feed", "window"])
    rate_limited = CounterMetricFamily("trestle_quota_rate_limited", "429s the shared limiter "
                                       "was told of, every worker and resource together "
                                       "(since its state was created).", labels=["feed"])
    observed = GaugeMetricFamily("trestle_quota_observed_timestamp_seconds",
                                 "When the limiter last saw quota headers (Unix time).",
                                 labels=["feed"])
    for feed, state in feeds:
        for window in ("minute", "hour"):
            if (value := _number(state.get(f"{window}_limit"))) is not None:
                limit.add_metric([feed, window], value)
            if (value := _number(state.get(f"{window}_available"))) is not None:
                available.add_metric([feed, window], value)
        rate_limited.add_metric([feed], _number(state.get("rate_limited")) or 0)
        if (seen_ms := _number(state.get("observed_ms"))) is not None:
            observed.add_metric([feed], seen_ms / 1000.0)
    yield limit
    yield available
    yield rate_limited
    yield observed


def _number(value: Any) -> float | None:
    try:
        return float(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def freshness_families(by_feed: Mapping[str, Mapping[str, Mapping[str, float]]]
                       ) -> Iterator[Metric]:
    """`trestle_freshness_seconds`: a change's ModificationTimestamp to its commit, per
    resource (stored by the workers in Redis as cumulative bucket counts)."""
    family = HistogramMetricFamily(
        "trestle_freshness_seconds",
        "Seconds from a record's ModificationTimestamp to its commit in the database.",
        labels=["feed", "resource"])
    for feed, resources in sorted(by_feed.items()):
        for resource, stored in sorted(resources.items()):
            if not stored.get("count"):
                continue
            buckets = [(label, stored.get(label, 0.0))
                       for label in (*(bucket_label(b) for b in BUCKETS), "+Inf")]
            family.add_metric([feed, resource], buckets, sum_value=stored.get("sum", 0.0))
    yield family
