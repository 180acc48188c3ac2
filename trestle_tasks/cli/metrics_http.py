"""Serving the metrics over HTTP for Prometheus (`trestle-etl metrics`).

Wires monitoring/metrics.py's collector to each feed's cluster runtime: its store and its
quota limiter in Redis (runtime.py), so one endpoint covers every worker of every feed."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, start_http_server

from trestle_tasks.monitoring.freshness import FreshnessRecorder
from trestle_tasks.monitoring.metrics import FeedSource, PipelineCollector
from trestle_tasks.worker.runtime import ClusterRuntime


def feed_source(runtime: ClusterRuntime) -> FeedSource:
    """Where the collector reads one feed: its store, and its limiter's state."""
    quota: Callable[[], Mapping[str, str]] | None = None
    freshness: Callable[[], Mapping[str, Mapping[str, float]]] | None = None
    if runtime.settings.client_id is not None:  # the limiter's key belongs to a credential
        def quota() -> Mapping[str, str]:
            return runtime.quota_limiter().state()

        def freshness() -> Mapping[str, Mapping[str, float]]:
            recorder = FreshnessRecorder(runtime.redis, runtime.credential_id)
            return {resource: recorder.histogram(resource)
                    for resource in runtime.settings.resources}
    return FeedSource(store=lambda: runtime.store, quota_state=quota, freshness=freshness)


def build_registry(runtimes: Mapping[str, ClusterRuntime]) -> CollectorRegistry:
    """A registry holding only our collector (no process metrics of this small server)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(PipelineCollector({feed: feed_source(runtime)
                                         for feed, runtime in runtimes.items()}))
    return registry


def start_metrics_server(runtimes: Mapping[str, ClusterRuntime], host: str, port: int
                         ) -> tuple[WSGIServer, threading.Thread]:
    """Serve /metrics for `runtimes` (feed name -> runtime) on a daemon thread; port 0
    picks a free one (`server.server_port`)."""
    return start_http_server(port, addr=host, registry=build_registry(runtimes))
