"""The simulator's `extra_latency_ms`: chosen kinds of request held, the others not."""

from __future__ import annotations

import time

import pytest
import requests

from trestle_simulator.config import SimulatorConfig
from trestle_simulator.server import start_in_thread

from .test_simulator_http import Api

pytestmark = pytest.mark.integration
HELD_MS = 600


def seconds(call) -> float:
    started = time.monotonic()
    response = call()
    assert response.status_code == 200, response.text
    return time.monotonic() - started


def test_only_the_kinds_named_are_held() -> None:
    with start_in_thread(SimulatorConfig(records=50, minute_quota=None, hour_quota=None,
                                         extra_latency_ms={"census": HELD_MS})) as sim:
        api = Api(sim)
        census = seconds(lambda: api.get("Property", **{
            "$select": "ListingKey,ModificationTimestamp", "$top": "300000"}))
        page = seconds(lambda: api.get("Property", **{"$top": "10"}))
        metadata = seconds(lambda: api.get("$metadata"))
        assert census >= HELD_MS / 1000
        assert page < HELD_MS / 1000 and metadata < HELD_MS / 1000

        # Adjustable at run time, over HTTP too: now `$metadata` and Media are held.
        changed = requests.put(f"{sim.control_url}/config", timeout=10,
                               json={"extra_latency_ms": {"$metadata": HELD_MS,
                                                          "Media": HELD_MS}})
        assert changed.status_code == 200, changed.text
        assert changed.json()["extra_latency_ms"] == {"$metadata": HELD_MS, "Media": HELD_MS}
        assert seconds(lambda: api.get("$metadata")) >= HELD_MS / 1000
        assert seconds(lambda: api.get("Media", **{"$top": "5"})) >= HELD_MS / 1000
        assert seconds(lambda: api.get("Property", **{
            "$select": "ListingKey,ModificationTimestamp", "$top": "300000"})) < HELD_MS / 1000


@pytest.mark.parametrize("bad", [{"census": -1}, {"census": "slow"}, {"": 5},
                                 {"census": True}])
def test_a_bad_extra_latency_is_refused(bad) -> None:
    with pytest.raises(ValueError, match="extra_latency_ms"):
        SimulatorConfig(extra_latency_ms=bad)
