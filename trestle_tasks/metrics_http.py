"""Serving the metrics over HTTP for Prometheus (`trestle-etl metrics`).

Wires monitoring/metrics.py's collector to the cluster runtime's store and its quota
limiter in Redis (runtime.py), so one endpoint covers every worker."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, start_http_server

from trestle_tasks.monitoring.metrics import PipelineCollector
from trestle_tasks.runtime import ClusterRuntime


def build_registry(runtime: ClusterRuntime) -> CollectorRegistry:
    """A registry holding only our collector (no process metrics of this small server)."""
    quota: Callable[[], Mapping[str, str]] | None = None
    if runtime.settings.client_id is not None:  # the limiter's key belongs to a credential
        def quota() -> Mapping[str, str]:
            return runtime.quota_limiter().state()
    registry = CollectorRegistry(auto_describe=False)
    registry.register(PipelineCollector(lambda: runtime.store, quota))
    return registry


def start_metrics_server(runtime: ClusterRuntime, host: str, port: int
                         ) -> tuple[WSGIServer, threading.Thread]:
    """Serve /metrics on a daemon thread; port 0 picks a free one (`server.server_port`)."""
    return start_http_server(port, addr=host, registry=build_registry(runtime))
