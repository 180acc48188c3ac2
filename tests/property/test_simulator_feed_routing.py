"""Property: whatever a token asks for, it reads its own feed's records and no other's.

Three feeds behind one simulator app (through WSGI, no sockets): two share their keys
(one key seed) and differ in data, the third has fewer records and keys of its own.
Requests of every kind (pages, records by key, key filters, replication pages) come in
any order, mixed with control-API changes to one feed; every record a token receives
must equal that feed's current record with the same key.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from werkzeug.test import Client

from trestle_simulator.app import CONTROL_PATH, ODATA_PATH, TOKEN_PATH, SimulatorApp
from trestle_simulator.config import FeedConfig, SimulatorConfig

FEEDS = ("a", "b", "c")


@cache
def served() -> tuple[SimulatorApp, Client, dict[str, str]]:
    """One app for the module (building it per example would dominate the run)."""
    config = SimulatorConfig(
        records=30,
        seed=2,
        minute_quota=None,
        hour_quota=None,
        feeds={
            "a": FeedConfig({"id-a": "s-a"}),
            "b": FeedConfig({"id-b": "s-b"}, seed=77),
            "c": FeedConfig({"id-c": "s-c"}, records=12, key_seed=9),
        },
    )
    app = SimulatorApp(config)
    client = Client(app)
    tokens = {}
    for name in FEEDS:
        response = client.post(
            TOKEN_PATH,
            data={
                "client_id": f"id-{name}",
                "client_secret": f"s-{name}",
                "grant_type": "client_credentials",
            },
        )
        assert response.status_code == 200
        tokens[name] = response.get_json()["access_token"]
    keys = {name: set(app.feeds[name].feed.data("Property").rows()) for name in FEEDS}
    assert keys["a"] == keys["b"] and not keys["a"] & keys["c"]  # the overlap is real
    return app, client, tokens


def own_records(app: SimulatorApp, feed: str) -> dict[str, dict[str, Any]]:
    return {r["ListingKey"]: r for r in app.feeds[feed].feed.records("Property")}


def any_key(app: SimulatorApp, index: int) -> str:
    """A key of any feed (most are shared by a and b), so lookups cross feed lines."""
    keys = sorted({key for name in FEEDS for key in app.feeds[name].feed.data("Property").rows()})
    return keys[index % len(keys)]


request_kinds = st.one_of(
    st.tuples(st.just("page"), st.integers(0, 40), st.integers(1, 15)),
    st.tuples(st.just("by_key"), st.integers(0, 200), st.just(0)),
    st.tuples(st.just("filter"), st.integers(0, 200), st.just(0)),
    st.tuples(st.just("replication"), st.integers(1, 20), st.just(0)),
    st.tuples(st.just("mutate"), st.integers(0, 1000), st.integers(1, 3)),
)


@given(st.lists(st.tuples(st.sampled_from(FEEDS), request_kinds), min_size=1, max_size=12))
def test_a_token_only_ever_reads_its_own_feed(
    steps: list[tuple[str, tuple[str, int, int]]],
) -> None:
    app, client, tokens = served()
    for feed, (kind, first, second) in steps:
        headers = {"Authorization": f"Bearer {tokens[feed]}"}
        if kind == "mutate":
            body = json.dumps({"count": second, "seed": first})
            changed = client.post(f"{CONTROL_PATH}/mutate?feed={feed}", data=body)
            assert changed.status_code == 200
            continue
        if kind == "page":
            response = client.get(
                f"{ODATA_PATH}/Property",
                query_string={"$skip": first, "$top": second},
                headers=headers,
            )
        elif kind == "by_key":
            response = client.get(
                f"{ODATA_PATH}/Property('{any_key(app, first)}')", headers=headers
            )
        elif kind == "filter":
            response = client.get(
                f"{ODATA_PATH}/Property",
                query_string={"$filter": f"ListingKey eq '{any_key(app, first)}'"},
                headers=headers,
            )
        else:
            response = client.get(
                f"{ODATA_PATH}/Property",
                query_string={"replication": "true", "$top": first},
                headers=headers,
            )
        own = own_records(app, feed)
        if kind == "by_key" and response.status_code == 404:
            assert any_key(app, first) not in own  # only a key this feed lacks is missing
            continue
        assert response.status_code == 200, response.get_data(as_text=True)
        body = response.get_json()
        rows = body.get("value", [body])
        for row in rows:
            row.pop("@odata.context", None)
            assert row == own[row["ListingKey"]]
    # The stats agree: each feed counted only requests of its own credential.
    for name in FEEDS:
        assert set(app.feeds[name].stats.snapshot()["requests"]) <= {f"id-{name}"}
