"""The simulator at benchmark scale: 100,000 listings must start and page quickly.

Generous bounds (a loaded CI machine must pass); they catch accidental O(n) work per
row or per page, such as generating every record to answer a timestamp filter.
"""

from __future__ import annotations

import time

import pytest
import requests

from trestle_simulator.config import SimulatorConfig
from trestle_simulator.server import start_in_thread

pytestmark = pytest.mark.integration

LISTINGS = 100_000


def test_hundred_thousand_listings_start_and_page_fast() -> None:
    started = time.monotonic()
    sim = start_in_thread(SimulatorConfig(records=LISTINGS, minute_quota=None, hour_quota=None))
    try:
        assert time.monotonic() - started < 15
        session = requests.Session()
        token = session.post(
            sim.token_url,
            data={
                "client_id": "trestle-simulator",
                "client_secret": "simulator-secret",
                "grant_type": "client_credentials",
                "scope": "api",
            },
        ).json()["access_token"]
        session.headers["Authorization"] = f"Bearer {token}"

        census_started = time.monotonic()
        census = session.get(
            f"{sim.odata_root}/Property", params={"$select": "ListingKey", "$top": 300000}
        ).json()
        assert len(census["value"]) == LISTINGS
        assert time.monotonic() - census_started < 20

        where = "ModificationTimestamp ge 1970-01-01T00:00:00Z"
        seen: set[str] = set()
        walk_started = time.monotonic()
        for _ in range(5):
            page = session.get(
                f"{sim.odata_root}/Property",
                params={
                    "$filter": where,
                    "$top": 1000,
                    "$count": "false",
                    "$orderby": "ModificationTimestamp,ListingKey",
                },
            ).json()["value"]
            assert len(page) == 1000
            seen.update(row["ListingKey"] for row in page)
            last = page[-1]
            stamp, key = last["ModificationTimestamp"], last["ListingKey"]
            where = (
                f"ModificationTimestamp gt {stamp} or "
                f"(ModificationTimestamp eq {stamp} and ListingKey gt '{key}')"
            )
        assert len(seen) == 5000
        assert time.monotonic() - walk_started < 30
    finally:
        sim.stop()
