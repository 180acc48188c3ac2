"""The client against a misbehaving simulator: faults are retried, nothing is lost or doubled."""

from __future__ import annotations

from collections import Counter

import pytest

from trestle_tasks.core.errors import (
    ODataRequestError,
    RetriesExhaustedError,
    UnlicensedResourceError,
)
from trestle_tasks.core.retry import RetryPolicy
from trestle_tasks.trestle.pager import KeysetRange, walk_keyset
from trestle_tasks.trestle.query import ODataQuery

from .conftest import build_client, start_simulator

pytestmark = pytest.mark.integration


def test_walk_survives_5xx_429_resets_and_bad_bodies():
    sim = start_simulator(records=5000, seed=11, rate_5xx=0.05, rate_429=0.05,
                          rate_connection_reset=0.01, rate_truncated_body=0.02,
                          rate_html_error=0.02, fault_seed=5)
    try:
        client = build_client(sim)
        pages = walk_keyset(client, KeysetRange("Property", "ListingKey"),
                            select=("ListingKey", "ModificationTimestamp"), page_size=50)
        keys = [r["ListingKey"] for page in pages for r in page.records]
        assert Counter(keys) == Counter(r["ListingKey"] for r in sim.records("Property"))
        served = sim.stats()
        assert client.stats.retries > 0
        # Every request the client sent was answered or cut off by the simulator.
        assert client.stats.requests == served["requests"]["trestle-simulator"]["total"]
    finally:
        sim.stop()


def test_quota_headers_are_read_from_every_response():
    sim = start_simulator(records=20, minute_quota=50, hour_quota=1000,
                          quota_headers_as_float=True)
    try:
        seen = []
        client = build_client(sim, on_quota=seen.append)
        for _ in range(3):
            client.get_page(ODataQuery("Property", top=2))
        assert len(seen) == 3
        assert [s.minute_limit for s in seen] == [50, 50, 50]
        available = [s.minute_available for s in seen]
        assert available == sorted(available, reverse=True) and available[0] > available[-1]
        assert seen[-1].hour_limit == 1000 and seen[-1].hour_reset_at is not None
        assert client.last_quota == seen[-1]
    finally:
        sim.stop()


def test_a_400_is_never_retried(simulator):
    client = build_client(simulator)
    before = client.stats.requests
    with pytest.raises(ODataRequestError) as caught:
        client.get_page(ODataQuery("Property", select=("NoSuchField",)))
    assert "not in metadata" in str(caught.value)
    assert client.stats.requests - before == 1


def test_top_over_the_ceiling_is_refused_with_the_servers_message(simulator):
    client = build_client(simulator)
    with pytest.raises(ODataRequestError, match="maximum limit"):
        client.get_page(ODataQuery("Property", top=1001))
    keys_only = client.get_page(ODataQuery("Property", select=("ListingKey",), top=300_000))
    assert len(keys_only.records) == len(simulator.records("Property"))


def test_unlicensed_resource_is_named(simulator):
    client = build_client(simulator)
    with pytest.raises(UnlicensedResourceError):
        client.get_page(ODataQuery("Building", top=1))


def test_retry_budget_bounds_a_hopeless_outage():
    sim = start_simulator(records=5, rate_5xx=1.0)
    try:
        client = build_client(sim, retry=RetryPolicy(budget_s=0.3, base_delay_s=0.01,
                                                     max_delay_s=0.05))
        with pytest.raises(RetriesExhaustedError) as caught:
            client.get_page(ODataQuery("Property", top=1))
        assert caught.value.retriable
        assert client.stats.requests >= 3
    finally:
        sim.stop()
