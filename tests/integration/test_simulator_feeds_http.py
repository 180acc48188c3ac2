"""Several feeds behind one simulator host, over real HTTP.

Like Trestle: one token URL and one OData root; the credential a token was issued to
decides which feed it reads. Two feeds here share their keys (one key seed) and differ in
their data (two seeds), the case a multi-feed deployment must keep apart.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from tests.integration.cli_process import clean_env
from trestle_simulator.config import FeedConfig, SimulatorConfig
from trestle_simulator.server import RunningSimulator, start_in_thread

pytestmark = pytest.mark.integration

A = {"client_id": "brokerage-mls-a", "client_secret": "secret-a"}
B = {"client_id": "brokerage-mls-b", "client_secret": "secret-b"}
RECORDS = 120


def token(sim: RunningSimulator, credential: dict[str, str]) -> requests.Response:
    return requests.post(
        sim.token_url, data={**credential, "grant_type": "client_credentials", "scope": "api"}
    )


class Api:
    def __init__(self, sim: RunningSimulator, credential: dict[str, str]) -> None:
        self.sim = sim
        response = token(sim, credential)
        assert response.status_code == 200, response.text
        self.headers = {"Authorization": f"Bearer {response.json()['access_token']}"}

    def get(self, path: str, **params: Any) -> requests.Response:
        url = path if path.startswith("http") else f"{self.sim.odata_root}/{path}"
        return requests.get(url, params=params or None, headers=self.headers, timeout=30)

    def walk(self, resource: str) -> list[dict[str, Any]]:
        """Every record by replication, following next links."""
        rows: list[dict[str, Any]] = []
        response = self.get(resource, replication="true", **{"$top": 50})
        while True:
            assert response.status_code == 200, response.text
            page = response.json()
            rows.extend(page["value"])
            if "@odata.nextLink" not in page:
                return rows
            response = self.get(page["@odata.nextLink"])


def two_feeds(**overrides: Any) -> SimulatorConfig:
    settings: dict[str, Any] = {
        "records": RECORDS,
        "seed": 21,
        "minute_quota": None,
        "hour_quota": None,
        "feeds": {
            "mls-a": FeedConfig({A["client_id"]: A["client_secret"]}),
            "mls-b": FeedConfig({B["client_id"]: B["client_secret"]}),
        },
        **overrides,
    }
    return SimulatorConfig(**settings)


@pytest.fixture(scope="module")
def sim() -> Iterator[RunningSimulator]:
    with start_in_thread(two_feeds()) as running:
        yield running


def control(sim: RunningSimulator, method: str, path: str, **kwargs: Any) -> requests.Response:
    return requests.request(method, f"{sim.control_url}/{path}", timeout=30, **kwargs)


# --------------------------------------------------------------------------- data


def test_feeds_share_keys_and_differ_in_values(sim: RunningSimulator) -> None:
    a, b = Api(sim, A).walk("Property"), Api(sim, B).walk("Property")
    assert len(a) == len(b) == RECORDS
    keys_a = [row["ListingKey"] for row in a]
    assert keys_a == [row["ListingKey"] for row in b]  # same keys, same key order
    differing = sum(
        row_a["ListPrice"] != row_b["ListPrice"] or row_a["City"] != row_b["City"]
        for row_a, row_b in zip(a, b, strict=True)
    )
    assert differing > RECORDS * 0.9
    # Each feed serves exactly its own records, as the control API reports them.
    assert a == sim.feed("mls-a").records("Property")
    assert b == sim.feed("mls-b").records("Property")


def test_a_token_reads_only_its_feed_by_key_and_by_filter(sim: RunningSimulator) -> None:
    key = sim.feed("mls-a").keys("Property")[7]
    expected = {
        name: next(r for r in sim.feed(name).records("Property") if r["ListingKey"] == key)
        for name in ("mls-a", "mls-b")
    }
    for name, credential in (("mls-a", A), ("mls-b", B)):
        api = Api(sim, credential)
        one = api.get(f"Property('{key}')")
        assert one.status_code == 200
        assert one.json()["ListPrice"] == expected[name]["ListPrice"]
        filtered = api.get("Property", **{"$filter": f"ListingKey eq '{key}'"}).json()["value"]
        assert [row["City"] for row in filtered] == [expected[name]["City"]]


def test_a_changed_record_shows_in_its_feed_only(sim: RunningSimulator) -> None:
    key = sim.feed("mls-b").keys("Property")[3]
    before_a = Api(sim, A).get(f"Property('{key}')").json()
    sim.feed("mls-b").upsert("Property", [{"ListingKey": key, "PublicRemarks": "only in b"}])
    assert Api(sim, B).get(f"Property('{key}')").json()["PublicRemarks"] == "only in b"
    after_a = Api(sim, A).get(f"Property('{key}')").json()
    assert after_a == before_a


def test_a_replication_link_of_one_feed_is_unknown_to_the_other(sim: RunningSimulator) -> None:
    first = Api(sim, A).get("Property", replication="true", **{"$top": 10}).json()
    link = first["@odata.nextLink"]
    refused = Api(sim, B).get(link)
    assert refused.status_code == 400 and "expired" in refused.json()["error"]["message"]
    assert Api(sim, A).get(link).status_code == 200


# --------------------------------------------------------------------------- credentials


def test_a_wrong_secret_fails_only_that_feeds_token_requests(sim: RunningSimulator) -> None:
    sim.feed("mls-a").reset_stats()
    sim.feed("mls-b").reset_stats()
    bad = token(sim, {**A, "client_secret": B["client_secret"]})  # b's secret, a's id
    assert bad.status_code == 400 and bad.text == "Bad Request"
    assert token(sim, B).status_code == 200
    assert token(sim, A).status_code == 200
    stats_a, stats_b = sim.feed("mls-a").stats(), sim.feed("mls-b").stats()
    assert (stats_a["token_failures"], stats_a["tokens_issued"]) == (1, 1)
    assert (stats_b["token_failures"], stats_b["tokens_issued"]) == (0, 1)


def test_revoking_one_feeds_tokens_leaves_the_other(sim: RunningSimulator) -> None:
    api_a, api_b = Api(sim, A), Api(sim, B)
    revoked = control(sim, "POST", "tokens/revoke", params={"feed": "mls-a"})
    assert revoked.status_code == 200 and revoked.json()["revoked"] >= 1
    assert api_a.get("Property").status_code == 401
    assert api_b.get("Property").status_code == 200
    assert Api(sim, A).get("Property").status_code == 200  # a new token works


# --------------------------------------------------------------------------- quota, stats


def _wait_for_fresh_minute() -> None:
    if time.time() % 60 > 55:  # the window would reset under the test
        time.sleep(60 - time.time() % 60 + 0.05)


def test_each_feed_has_its_own_quota_and_stats() -> None:
    feeds = {
        "mls-a": FeedConfig({A["client_id"]: A["client_secret"]}, records=5, minute_quota=3),
        "mls-b": FeedConfig({B["client_id"]: B["client_secret"]}, records=5),
    }
    config = SimulatorConfig(minute_quota=6, hour_quota=100, feeds=feeds)
    with start_in_thread(config) as limited:
        _wait_for_fresh_minute()
        api_a, api_b = Api(limited, A), Api(limited, B)
        assert [api_a.get("Property").status_code for _ in range(4)] == [200, 200, 200, 429]
        first_b = api_b.get("Property")
        assert first_b.status_code == 200  # a's exhausted quota is not b's
        assert first_b.headers["Minute-Quota-Limit"] == "6"
        assert first_b.headers["Minute-Quota-Available"] == "5"
        stats_a, stats_b = limited.feed("mls-a").stats(), limited.feed("mls-b").stats()
        assert stats_a["requests"] == {
            A["client_id"]: {
                "total": 4,
                "by_status": {"200": 3, "429": 1},
                "by_resource": {"Property": 4},
            }
        }
        assert stats_a["throttled_429"] == 1 and stats_b["throttled_429"] == 0
        assert set(stats_b["requests"]) == {B["client_id"]}
        assert stats_b["requests_total"] == 1
        # Resetting one feed's quota frees that feed only.
        reset = control(limited, "POST", "quota/reset", params={"feed": "mls-a"})
        assert reset.status_code == 200
        assert api_a.get("Property").status_code == 200
        # Runtime settings are per feed too.
        control(limited, "PUT", "config", params={"feed": "mls-b"}, json={"minute_quota": 1})
        assert api_b.get("Property").status_code == 429
        assert api_a.get("Property").status_code == 200
        assert limited.feed("mls-a").config.minute_quota == 3


def test_requests_without_a_valid_token_count_in_the_first_feed(sim: RunningSimulator) -> None:
    sim.feed("mls-a").reset_stats()
    sim.feed("mls-b").reset_stats()
    assert requests.get(f"{sim.odata_root}/Property").status_code == 401
    assert sim.feed("mls-a").stats()["requests"]["-"]["total"] == 1
    assert sim.feed("mls-b").stats()["requests_total"] == 0


# --------------------------------------------------------------------------- control API


def test_control_api_lists_feeds_without_secrets(sim: RunningSimulator) -> None:
    listed = control(sim, "GET", "feeds")
    assert listed.status_code == 200
    feeds = listed.json()["feeds"]
    assert [(f["name"], f["client_ids"], f["records"]) for f in feeds] == [
        ("mls-a", [A["client_id"]], RECORDS),
        ("mls-b", [B["client_id"]], RECORDS),
    ]
    assert [(f["seed"], f["key_seed"], f["default"]) for f in feeds] == [
        (21, 21, False),  # neither is the default: none is called `default`
        (22, 21, False),
    ]
    assert "secret" not in listed.text
    info = control(sim, "GET", "info", params={"feed": "mls-b"}).json()
    assert (info["feed"], info["seed"], info["key_seed"]) == ("mls-b", 22, 21)


def test_control_api_acts_on_the_named_feed(sim: RunningSimulator) -> None:
    key = sim.feed("mls-a").keys("Property")[0]
    mutated = control(
        sim, "POST", "mutate", params={"feed": "mls-b"}, json={"count": 2, "seed": 4}
    )
    assert mutated.status_code == 200 and len(mutated.json()["modified"]) == 2
    deleted = control(sim, "DELETE", f"records/Property/{key}", params={"feed": "mls-a"})
    assert deleted.status_code == 200
    assert key not in sim.feed("mls-a").keys("Property")
    assert key in sim.feed("mls-b").keys("Property")
    assert Api(sim, A).get(f"Property('{key}')").status_code == 404
    assert Api(sim, B).get(f"Property('{key}')").status_code == 200
    records_b = control(sim, "GET", "records/Property", params={"feed": "mls-b"}).json()
    assert [r["ListingKey"] for r in records_b] == sim.feed("mls-b").keys("Property")


def test_control_api_without_a_feed_among_several_is_400(sim: RunningSimulator) -> None:
    # Several feeds, none called `default`: the control API will not guess.
    ambiguous = control(sim, "GET", "stats")
    assert ambiguous.status_code == 400
    assert ambiguous.json() == {
        "error": "this simulator serves several feeds (mls-a, mls-b) and none is called "
        "'default': name one with ?feed=NAME"
    }
    assert control(sim, "GET", "stats", params={"feed": "mls-b"}).status_code == 200
    with pytest.raises(LookupError):
        sim.stats()


def test_unknown_feed_is_404_with_the_served_names(sim: RunningSimulator) -> None:
    response = control(sim, "GET", "stats", params={"feed": "mls-z"})
    assert response.status_code == 404
    assert response.json() == {
        "error": "unknown feed 'mls-z'; this simulator serves: mls-a, mls-b"
    }
    with pytest.raises(LookupError, match="unknown feed"):
        sim.feed("mls-z")


def test_a_default_feed_among_several_is_the_control_apis_default() -> None:
    feeds = {"other": FeedConfig({"o": "s"}), "default": FeedConfig({"d": "s"}, records=4)}
    with start_in_thread(SimulatorConfig(records=2, feeds=feeds)) as sim:
        assert control(sim, "GET", "info").json()["feed"] == "default"
        listed = control(sim, "GET", "feeds").json()["feeds"]
        assert [(f["name"], f["default"]) for f in listed] == [
            ("other", False),
            ("default", True),
        ]
        assert sim.client_id == "d" and len(sim.keys("Property")) == 4


# --------------------------------------------------------------------------- compatibility


def test_a_single_feed_simulator_is_the_feed_called_default() -> None:
    with start_in_thread(SimulatorConfig(records=10, seed=3)) as single:
        assert single.feeds == ["default"]
        listed = control(single, "GET", "feeds").json()["feeds"]
        assert [(f["name"], f["client_ids"]) for f in listed] == [
            ("default", ["trestle-simulator"])
        ]
        by_name = control(single, "GET", "records/Property", params={"feed": "default"})
        assert by_name.json() == control(single, "GET", "records/Property").json()
        assert by_name.json() == single.records("Property")
        assert control(single, "GET", "stats", params={"feed": "nope"}).status_code == 404


def test_the_max_query_string_limit_is_the_servers(sim: RunningSimulator) -> None:
    control(sim, "PUT", "config", params={"feed": "mls-b"}, json={"max_query_string_chars": 50})
    try:
        for credential in (A, B):
            response = Api(sim, credential).get("Property", **{"$filter": "x" * 60})
            assert response.status_code == 414
        assert sim.feed("mls-a").config.max_query_string_chars == 50
    finally:
        sim.feed("mls-a").configure(max_query_string_chars=2048)
    assert sim.feed("mls-b").config.max_query_string_chars == 2048


# --------------------------------------------------------------------------- command line


def test_the_cli_serves_declared_feeds_and_prints_no_secret() -> None:
    args = ["--records", "8", "--feed", "mls-a:cli-a:hush-a", "--feed", "mls-b:cli-b:hush-b:5:9"]
    process = subprocess.Popen(
        [sys.executable, "-m", "trestle_tasks", "simulator", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=clean_env(),
    )
    try:
        assert process.stdout is not None
        announced = [process.stdout.readline() for _ in range(4)]
        token_url = announced[0].split(":", 1)[1].strip()
        odata_root = announced[1].split(":", 1)[1].strip()
        assert announced[2:] == [
            "Feed mls-a: client id cli-a; 8 Property records, seed 1\n",
            "Feed mls-b: client id cli-b; 5 Property records, seed 9\n",
        ]
        counts = {}
        for client_id, secret in (("cli-a", "hush-a"), ("cli-b", "hush-b")):
            response = requests.post(
                token_url,
                data={
                    "client_id": client_id,
                    "client_secret": secret,
                    "grant_type": "client_credentials",
                },
            )
            assert response.status_code == 200, response.text
            headers = {"Authorization": f"Bearer {response.json()['access_token']}"}
            counted = requests.get(f"{odata_root}/Property/$count", headers=headers)
            counts[client_id] = int(counted.text)
        assert counts == {"cli-a": 8, "cli-b": 5}
    finally:
        process.terminate()
        out, err = process.communicate(timeout=10)
    printed = "".join(announced) + out + err
    assert "hush" not in printed
    assert "Serving 2 feeds" in err
