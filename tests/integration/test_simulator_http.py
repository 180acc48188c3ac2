"""The Trestle simulator over real HTTP, checked against what Trestle is known to do.

These tests talk to the server with plain `requests` (not the pipeline's client), and
compare what it serves with the feed's own records (`RunningSimulator.records`).
"""

from __future__ import annotations

import concurrent.futures
import gzip
import json
import time
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from trestle_simulator.config import SimulatorConfig
from trestle_simulator.server import RunningSimulator, serve, start_in_thread

pytestmark = pytest.mark.integration

CLIENT = {"client_id": "trestle-simulator", "client_secret": "simulator-secret"}
EDM = "{http://docs.oasis-open.org/odata/ns/edm}"
RECORDS = 600
FIVE = {"Property", "Member", "Office", "Media", "OpenHouse"}


def start(**overrides: Any) -> RunningSimulator:
    settings: dict[str, Any] = {"minute_quota": None, "hour_quota": None, **overrides}
    return start_in_thread(SimulatorConfig(**settings))


def token_for(sim: RunningSimulator) -> str:
    response = requests.post(
        sim.token_url, data={**CLIENT, "grant_type": "client_credentials", "scope": "api"}
    )
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


class Api:
    """A bare OData caller: a token and GETs, nothing clever."""

    def __init__(self, sim: RunningSimulator) -> None:
        self.sim = sim
        self.headers = {"Authorization": f"Bearer {token_for(sim)}"}

    def get(self, path: str, **params: Any) -> requests.Response:
        url = path if path.startswith("http") else f"{self.sim.odata_root}/{path}"
        return requests.get(url, params=params or None, headers=self.headers, timeout=30)

    def ok(self, path: str, **params: Any) -> dict[str, Any]:
        response = self.get(path, **params)
        assert response.status_code == 200, response.text
        return response.json()

    def walk(self, path: str, **params: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """All rows by following nextLink; also every page body."""
        pages = [self.ok(path, **params)]
        while "@odata.nextLink" in pages[-1]:
            pages.append(self.ok(pages[-1]["@odata.nextLink"]))
        return [row for page in pages for row in page["value"]], pages


def error_message(response: requests.Response) -> str:
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}
    return body["error"]["message"]


@pytest.fixture(scope="module")
def sim() -> Iterator[RunningSimulator]:
    running = start(records=RECORDS, seed=3)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def api(sim: RunningSimulator) -> Api:
    return Api(sim)


# --------------------------------------------------------------------------- tokens


def test_token_success_is_bearer_with_8_hour_lifetime(sim: RunningSimulator) -> None:
    response = requests.post(
        sim.token_url, data={**CLIENT, "grant_type": "client_credentials", "scope": "api"}
    )
    body = response.json()
    assert set(body) == {"access_token", "expires_in", "token_type"}
    assert body["expires_in"] == 28800 and body["token_type"] == "Bearer"
    assert body["access_token"] != token_for(sim)  # random, not derived from the client


@pytest.mark.parametrize(
    "form",
    [
        {**CLIENT, "client_secret": "wrong", "grant_type": "client_credentials", "scope": "api"},
        {"client_id": "nobody", "client_secret": "x", "grant_type": "client_credentials"},
        {**CLIENT, "scope": "api"},  # no grant_type
        {**CLIENT, "grant_type": "password", "scope": "api"},
    ],
    ids=["bad-secret", "unknown-client", "no-grant-type", "wrong-grant-type"],
)
def test_bad_token_request_is_400_text_html(sim: RunningSimulator, form: dict[str, str]) -> None:
    response = requests.post(sim.token_url, data=form)
    assert response.status_code == 400
    assert response.headers["Content-Type"].startswith("text/html")
    assert response.text == "Bad Request"


@pytest.mark.parametrize("header", [None, "Bearer not-a-token", "Basic abc"])
def test_data_request_without_valid_token_is_401_json(
    sim: RunningSimulator, header: str | None
) -> None:
    headers = {"Authorization": header} if header else {}
    response = requests.get(f"{sim.odata_root}/Property", headers=headers)
    assert response.status_code == 401
    assert error_message(response)


def test_token_expires_after_its_ttl() -> None:
    with start(records=5, token_ttl_s=1) as short:
        api = Api(short)
        assert api.get("Property").status_code == 200
        time.sleep(1.1)
        assert api.get("Property").status_code == 401


def test_revoked_tokens_get_401(sim: RunningSimulator) -> None:
    api = Api(sim)
    assert api.get("Property").status_code == 200
    assert requests.post(f"{sim.control_url}/tokens/revoke").status_code == 200
    assert api.get("Property").status_code == 401
    assert Api(sim).get("Property").status_code == 200  # a new token works


def test_expired_tokens_get_401_through_the_control_api(sim: RunningSimulator) -> None:
    api = Api(sim)
    assert api.get("Property").status_code == 200
    expired = requests.post(f"{sim.control_url}/tokens/expire")
    assert expired.status_code == 200 and expired.json() == {"expired": True}
    assert api.get("Property").status_code == 401
    assert Api(sim).get("Property").status_code == 200  # a new token works


# --------------------------------------------------------------------------- documents


def test_metadata_is_edmx_declaring_the_five_entity_types(api: Api) -> None:
    response = api.get("$metadata")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/xml")
    root = ET.fromstring(response.content)
    types = {element.get("Name") for element in root.iter(f"{EDM}EntityType")}
    sets = {element.get("Name") for element in root.iter(f"{EDM}EntitySet")}
    assert types >= FIVE and sets >= FIVE
    schemas = {element.get("Namespace") for element in root.iter(f"{EDM}Schema")}
    assert "CoreLogic.DataStandard.RESO.DD" in schemas
    stamps = [p for p in root.iter(f"{EDM}Property") if p.get("Name") == "ModificationTimestamp"]
    assert stamps and all(p.get("Precision") == "27" for p in stamps)


def test_service_document_lists_entity_sets(api: Api) -> None:
    body = api.ok("")
    assert {entry["name"] for entry in body["value"]} >= FIVE


def test_headers_and_gzip(api: Api) -> None:
    response = api.get("Property", **{"$top": 1})
    assert response.headers["Content-Type"] == "application/json; odata.metadata=minimal"
    assert response.headers["OData-Version"] == "4.0"
    assert response.headers["Content-Encoding"] == "gzip"  # requests asks for gzip
    plain = requests.get(
        f"{api.sim.odata_root}/Property?$top=1",
        headers={**api.headers, "Accept-Encoding": "identity"},
    )
    assert "Content-Encoding" not in plain.headers
    assert json.loads(plain.content) == response.json()
    assert gzip.decompress(gzip.compress(plain.content)) == plain.content


# --------------------------------------------------------------------------- paging


def test_default_page_is_10_rows_in_key_order(sim: RunningSimulator, api: Api) -> None:
    keys = sim.keys("Property")
    first = api.ok("Property")
    assert [row["ListingKey"] for row in first["value"]] == keys[:10]
    assert first["@odata.context"] == f"{sim.odata_root}/$metadata#Property"
    link = first["@odata.nextLink"]
    assert link.startswith(f"{sim.odata_root}/Property?")
    second = api.ok(link)
    assert [row["ListingKey"] for row in second["value"]] == keys[10:20]


def test_full_last_page_has_a_link_to_an_empty_page(sim: RunningSimulator, api: Api) -> None:
    rows, pages = api.walk("Property", **{"$top": 100, "$select": "ListingKey"})
    assert [row["ListingKey"] for row in rows] == sim.keys("Property")
    assert [len(page["value"]) for page in pages] == [100] * (RECORDS // 100) + [0]
    assert "@odata.nextLink" in pages[-2] and "@odata.nextLink" not in pages[-1]
    partial = api.ok("Property", **{"$top": 7, "$skip": RECORDS - 3})
    assert len(partial["value"]) == 3 and "@odata.nextLink" not in partial


def test_top_ceilings(sim: RunningSimulator, api: Api) -> None:
    over = api.get("Property", **{"$top": 1001})
    assert over.status_code == 400
    assert "maximum limit/$top value for this kind of query is 1000" in error_message(over)
    census = api.ok("Property", **{"$top": 300000, "$select": "ListingKey"})
    assert [row["ListingKey"] for row in census["value"]] == sim.keys("Property")
    over_keys = api.get("Property", **{"$top": 300001, "$select": "ListingKey"})
    assert over_keys.status_code == 400
    assert "is 300000" in error_message(over_keys)
    wide = api.get("Property", **{"$top": 5000, "$select": "ListingKey,City"})
    assert "is 1000" in error_message(wide)


@pytest.mark.parametrize(("resource", "select", "ceiling"), [
    ("Property", "ListingKey,ModificationTimestamp", 300000),
    ("Member", "MemberKey,ModificationTimestamp", 300000),
    ("Media", "MediaKey,ModificationTimestamp,ResourceRecordKey", 300000),
    ("OpenHouse", "OpenHouseKey,ModificationTimestamp", 300000),
    ("Property", "ListingKey,ModificationTimestamp,City", 1000),
    ("Property", "ModificationTimestamp,PhotosChangeTimestamp", 1000),
    ("Member", "MemberKey,ResourceRecordKey", None),  # not in Member's metadata: 400 anyway
], ids=lambda value: str(value))
def test_census_selects_take_the_key_index_ceiling(
    sim: RunningSimulator, api: Api, resource: str, select: str, ceiling: int | None
) -> None:
    """InKeyIndex fields (the key and ModificationTimestamp among them) take $top 300,000;
    any other field in the select brings the ceiling back to 1,000."""
    fields = select.split(",")
    if ceiling is None:
        refused = api.get(resource, **{"$top": 10, "$select": select})
        assert refused.status_code == 400 and "not in metadata" in error_message(refused)
        return
    over = api.get(resource, **{"$top": ceiling + 1, "$select": select})
    assert over.status_code == 400
    assert f"this kind of query is {ceiling}" in error_message(over)
    served = api.ok(resource, **{"$top": ceiling, "$select": select,
                                 "$orderby": fields[0]})
    expected = sim.records(resource)
    key = fields[0] if resource != "Property" or fields[0] == "ListingKey" else "ListingKey"
    if key == fields[0]:
        expected.sort(key=lambda record: record[key])
        assert served["value"] == [{name: record.get(name) for name in fields}
                                   for record in expected]


def test_overlong_query_strings_are_refused_before_auth_and_quota(sim: RunningSimulator,
                                                                   api: Api) -> None:
    keys = sim.keys("Property")
    clause = " or ".join(f"ListingKey eq '{key}'" for key in keys[:200])
    before = sim.stats()["requests_total"]
    refused = api.get("Property", **{"$filter": clause})
    assert refused.status_code == 414
    assert refused.headers["Content-Type"].startswith("text/html")
    assert sim.stats()["requests_total"] == before  # never reached the API: no quota spent
    fits = " or ".join(f"ListingKey eq '{key}'" for key in keys[:20])
    served = api.ok("Property", **{"$filter": fits, "$select": "ListingKey", "$top": 100})
    assert sorted(row["ListingKey"] for row in served["value"]) == sorted(keys[:20])


def test_count(api: Api) -> None:
    body = api.ok("Property", **{"$count": "true", "$top": 1})
    assert body["@odata.count"] == RECORDS and len(body["value"]) == 1
    plain = api.get("Property/$count")
    assert plain.status_code == 200 and plain.text == str(RECORDS)


def test_row_cap_on_standard_queries_only() -> None:
    with start(records=60, standard_query_row_cap=50) as capped:
        api = Api(capped)
        refused = api.get("Property", **{"$skip": 45, "$top": 10})
        assert refused.status_code == 500
        assert error_message(refused) == "Error getting data!"
        rows, _ = api.walk("Property", replication="true", **{"$top": 20})
        assert len(rows) == 60


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"$select": "ListingKey,NoSuchField"}, "not in metadata"),
        ({"$filter": "NoSuchField eq 1"}, "not in metadata"),
        ({"$orderby": "NoSuchField"}, "not in metadata"),
        ({"$filter": "ListPrice gt"}, ""),
        ({"$filter": "OpenHouse/any(o: o/OpenHouseDate gt 2024-01-01)"}, "not supported"),
        ({"$filter": "OwnerName eq 'x'"}, "suppressed (provider Level)"),
        ({"$orderby": "PrivateRemarks desc"}, "suppressed (provider Level)"),
        ({"$skip": 5, "replication": "true"}, "$skip"),
        ({"$top": "ten"}, "$top"),
    ],
    ids=[
        "select",
        "filter",
        "orderby",
        "syntax",
        "lambda",
        "suppressed-filter",
        "suppressed-orderby",
        "skip-replication",
        "top-not-number",
    ],
)
def test_refused_queries_are_400(api: Api, params: dict[str, Any], fragment: str) -> None:
    response = api.get("Property", **params)
    assert response.status_code == 400
    assert fragment in error_message(response)


def test_suppressed_fields_are_declared_and_null(api: Api) -> None:
    rows = api.ok("Property", **{"$select": "ListingKey,OwnerName,PrivateRemarks", "$top": 50})
    assert all(row["OwnerName"] is None and row["PrivateRemarks"] is None for row in rows["value"])


def test_unlicensed_and_unknown_sets(api: Api) -> None:
    statuses = {
        name: api.get(name).status_code
        for name in ("Building", "HistoryTransactional", "Enumeration", "NoSuchSet")
    }
    assert statuses == {
        "Building": 403,
        "HistoryTransactional": 400,
        "Enumeration": 404,
        "NoSuchSet": 404,
    }


# --------------------------------------------------------------------------- data


def test_timestamps_have_seven_digits_and_ties(sim: RunningSimulator) -> None:
    records = sim.records("Property")
    stamps = Counter(record["ModificationTimestamp"] for record in records)
    assert all(len(stamp) == 28 and stamp.endswith("Z") for stamp in stamps)
    (_, mass), *others = stamps.most_common()
    assert mass == min(1500, RECORDS // 3)  # one mass update, bigger than a page
    clustered = sum(count for _, count in others if count > 1)
    assert clustered >= RECORDS // 20  # and small clusters
    assert any(stamp[-2] != "0" for stamp in stamps)  # the 7th digit is used


def test_timestamp_filters_select_exactly(sim: RunningSimulator, api: Api) -> None:
    records = sim.records("Property")
    tie, size = Counter(r["ModificationTimestamp"] for r in records).most_common(1)[0]
    assert tie[-2] != "0"
    truncated = tie[:-2] + "Z"  # six digits: strictly before the tie
    cases = {
        f"ModificationTimestamp eq {tie}": {
            r["ListingKey"] for r in records if r["ModificationTimestamp"] == tie
        },
        f"ModificationTimestamp gt {tie}": {
            r["ListingKey"] for r in records if r["ModificationTimestamp"] > tie
        },
        f"ModificationTimestamp gt {truncated}": {
            r["ListingKey"] for r in records if r["ModificationTimestamp"] >= tie
        },
        f"ModificationTimestamp le {tie} and ModificationTimestamp gt {truncated}": {
            r["ListingKey"] for r in records if r["ModificationTimestamp"] == tie
        },
    }
    assert len(cases[f"ModificationTimestamp eq {tie}"]) == size
    for expression, expected in cases.items():
        rows, _ = api.walk(
            "Property",
            **{
                "$filter": expression,
                "$top": 1000,
                "$select": "ListingKey,ModificationTimestamp",
                "$orderby": "ModificationTimestamp,ListingKey",
            },
        )
        keys = [row["ListingKey"] for row in rows]
        assert len(keys) == len(set(keys)) and set(keys) == expected, expression
    # The same instant written with an offset selects the same rows.
    shifted = datetime.strptime(tie[:19], "%Y-%m-%dT%H:%M:%S") + timedelta(hours=1)
    offset_form = f"{shifted:%Y-%m-%dT%H:%M:%S}.{tie[20:27]}+01:00"
    body = api.ok(
        "Property",
        **{"$filter": f"ModificationTimestamp eq {offset_form}", "$count": "true", "$top": 0},
    )
    assert body["@odata.count"] == size


def test_keyset_paging_through_a_tie_bigger_than_a_page(sim: RunningSimulator, api: Api) -> None:
    records = sim.records("Property")
    expected = sorted((r["ModificationTimestamp"], r["ListingKey"]) for r in records)
    seen: list[tuple[str, str]] = []
    where = "ModificationTimestamp ge 1970-01-01T00:00:00Z"
    while True:
        page = api.ok(
            "Property",
            **{
                "$filter": where,
                "$top": 97,
                "$orderby": "ModificationTimestamp,ListingKey",
                "$select": "ListingKey,ModificationTimestamp",
            },
        )["value"]
        seen += [(row["ModificationTimestamp"], row["ListingKey"]) for row in page]
        if len(page) < 97:
            break
        stamp, key = seen[-1]
        where = (
            f"ModificationTimestamp gt {stamp} or "
            f"(ModificationTimestamp eq {stamp} and ListingKey gt '{key}')"
        )
    assert seen == expected


def test_realistic_values(sim: RunningSimulator) -> None:
    records = sim.records("Property")
    statuses = Counter(record["StandardStatus"] for record in records)
    assert {"Active", "Closed", "Pending"} <= set(statuses)
    members = set(sim.keys("Member"))
    offices = set(sim.keys("Office"))
    assert len(members) == max(5, RECORDS // 10) and len(offices) == max(2, RECORDS // 100)
    assert all(record["ListAgentKey"] in members for record in records)
    assert all(record["ListOfficeKey"] in offices for record in records)
    assert any(not record["PublicRemarks"].isascii() for record in records)
    assert any("&" in record["PublicRemarks"] for record in records)
    assert all(isinstance(record["ListPrice"], float) for record in records)
    assert any("," in (record["Appliances"] or "") for record in records)
    assert len({record["ListingId"] for record in records}) == RECORDS
    media = Counter(row["ResourceRecordKey"] for row in sim.records("Media"))
    assert all(record["PhotosCount"] == media.get(record["ListingKey"], 0) for record in records)
    assert any(record["PhotosCount"] == 0 for record in records)


def test_expand_media_matches_photos_count(api: Api) -> None:
    body = api.ok(
        "Property",
        **{
            "$top": 40,
            "$select": "ListingKey,PhotosCount",
            "$expand": "Media($select=MediaKey,Order,ResourceRecordKey;$orderby=Order)",
        },
    )
    for listing in body["value"]:
        media = listing["Media"]
        assert len(media) == listing["PhotosCount"]
        assert [m["Order"] for m in media] == sorted(m["Order"] for m in media)
        assert all(m["ResourceRecordKey"] == listing["ListingKey"] for m in media)
    nested = api.ok("Property", **{"$top": 40, "$expand": "Media($top=2;$select=MediaKey)"})
    assert all(len(listing["Media"]) <= 2 for listing in nested["value"])


def test_entity_by_key(sim: RunningSimulator, api: Api) -> None:
    key = sim.keys("Property")[5]
    body = api.ok(f"Property('{key}')", **{"$select": "ListingKey,PhotosCount", "$expand": "Media"})
    assert body["@odata.context"].endswith("$metadata#Property/$entity")
    assert body["ListingKey"] == key and len(body["Media"]) == body["PhotosCount"]
    assert api.get("Property('missing')").status_code == 404


# --------------------------------------------------------------------------- replication


def test_replication_walk_returns_every_record_once(sim: RunningSimulator, api: Api) -> None:
    rows, pages = api.walk(
        "Property",
        replication="true",
        **{"$top": 100, "$select": "ListingKey,ModificationTimestamp"},
    )
    keys = [row["ListingKey"] for row in rows]
    assert sorted(keys) == sim.keys("Property") and len(keys) == len(set(keys))
    assert all("/Property/replication?id=" in page["@odata.nextLink"] for page in pages[:-1])
    assert "@odata.nextLink" not in pages[-1] and pages[-1]["value"]


def test_replication_survives_modifications_mid_walk() -> None:
    with start(records=300, seed=9) as live:
        api = Api(live)
        first = api.ok("Property", replication="true", **{"$top": 50, "$select": "ListingKey"})
        live.mutate("Property", count=60, seed=4)
        rows, _ = api.walk(first["@odata.nextLink"])
        keys = [row["ListingKey"] for row in first["value"] + rows]
        assert sorted(keys) == live.keys("Property") and len(keys) == len(set(keys))


def test_replication_link_expires(sim: RunningSimulator, api: Api) -> None:
    sim.configure(replication_link_ttl_s=0.3)
    try:
        first = api.ok("Property", replication="true", **{"$top": 10})
        time.sleep(0.5)
        expired = api.get(first["@odata.nextLink"])
        assert expired.status_code == 400
        message = error_message(expired)
        assert "replication" in message and "expired" in message
    finally:
        sim.configure(replication_link_ttl_s=300)


# --------------------------------------------------------------------------- quotas


def _wait_for_fresh_minute() -> None:
    if time.time() % 60 > 55:  # the window would reset under the test
        time.sleep(60 - time.time() % 60 + 0.05)


def test_quota_headers_and_429() -> None:
    with start_in_thread(SimulatorConfig(records=5, minute_quota=4, hour_quota=100)) as limited:
        _wait_for_fresh_minute()
        api = Api(limited)
        Api(limited)  # token requests do not count
        first = api.get("Property")
        headers = first.headers
        assert headers["QuotaType"] == "Api"
        assert (headers["Minute-Quota-Limit"], headers["Minute-Quota-Available"]) == ("4", "3")
        assert (headers["Hour-Quota-Limit"], headers["Hour-Quota-Available"]) == ("100", "99")
        reset_ms = int(headers["Hour-Quota-ResetTime"])
        assert reset_ms % 3_600_000 == 0 and 0 < reset_ms / 1000 - time.time() <= 3600
        statuses = [api.get("Property").status_code for _ in range(4)]
        assert statuses == [200, 200, 200, 429]
        refused = api.get("Property")
        assert refused.status_code == 429 and error_message(refused)
        assert refused.headers["Minute-Quota-Available"] == "0"
        assert "Retry-After" not in refused.headers
        limited.configure(retry_after_on_429=7, quota_headers_as_float=True)
        again = api.get("Property")
        assert again.headers["Retry-After"] == "7"
        assert again.headers["Minute-Quota-Limit"] == "4.0"
        assert limited.stats()["throttled_429"] == 3
        reset = requests.post(f"{limited.control_url}/quota/reset")
        assert reset.status_code == 200 and reset.json() == {"reset": True}
        assert api.get("Property").status_code == 200  # the quota windows are empty again


# --------------------------------------------------------------------------- faults


@pytest.fixture(scope="module")
def faulty() -> Iterator[RunningSimulator]:
    running = start(records=20)
    yield running
    running.stop()


def _with_fault(sim: RunningSimulator, rate: str) -> Api:
    api = Api(sim)
    sim.configure(
        **{
            name: 0.0
            for name in (
                "rate_5xx",
                "rate_429",
                "rate_connection_reset",
                "rate_truncated_body",
                "rate_html_error",
                "rate_empty_expand",
            )
        }
    )
    sim.configure(**{rate: 1.0})
    return api


def test_fault_5xx(faulty: RunningSimulator) -> None:
    api = _with_fault(faulty, "rate_5xx")
    statuses = {api.get("Property").status_code for _ in range(12)}
    assert statuses <= {500, 502, 503, 504} and len(statuses) > 1


def test_fault_429(faulty: RunningSimulator) -> None:
    response = _with_fault(faulty, "rate_429").get("Property")
    assert response.status_code == 429 and error_message(response)
    assert "Minute-Quota-Available" in response.headers


def test_fault_connection_reset(faulty: RunningSimulator) -> None:
    api = _with_fault(faulty, "rate_connection_reset")
    started = time.monotonic()
    with pytest.raises(requests.exceptions.ConnectionError):
        api.get("Property")
    assert time.monotonic() - started < 5


def test_fault_truncated_body(faulty: RunningSimulator) -> None:
    response = _with_fault(faulty, "rate_truncated_body").get("Property")
    assert response.status_code == 200
    with pytest.raises(ValueError):
        json.loads(response.content)
    assert response.content.startswith(b'{"@odata.context"')


def test_fault_html_error(faulty: RunningSimulator) -> None:
    response = _with_fault(faulty, "rate_html_error").get("Property")
    assert response.status_code in (502, 503)
    assert response.headers["Content-Type"].startswith("text/html")
    assert response.text.lstrip().startswith("<html>")


def test_fault_empty_expand(faulty: RunningSimulator) -> None:
    api = _with_fault(faulty, "rate_empty_expand")
    body = api.ok("Property", **{"$top": 20, "$expand": "Media", "$select": "PhotosCount"})
    assert any(row["PhotosCount"] > 0 for row in body["value"])
    assert all(row["Media"] == [] for row in body["value"])
    faults = faulty.stats()["faults"]
    assert faults["empty_expand"] >= 1
    faulty.configure(rate_empty_expand=0.0)


def test_faults_spare_metadata_and_tokens(faulty: RunningSimulator) -> None:
    api = _with_fault(faulty, "rate_5xx")
    assert api.get("$metadata").status_code == 200
    faulty.configure(rate_5xx=0.0)


# --------------------------------------------------------------------------- latency


def test_latency_is_per_request_and_concurrent() -> None:
    with start(records=5, latency_ms_per_request=300) as slow:
        api = Api(slow)
        started = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            statuses = list(pool.map(lambda _: api.get("Property").status_code, range(4)))
        elapsed = time.monotonic() - started
        assert statuses == [200] * 4
        assert 0.3 <= elapsed < 1.0


# --------------------------------------------------------------------------- determinism


def test_same_seed_same_bytes_other_seed_other_data(sim: RunningSimulator, api: Api) -> None:
    with start(records=RECORDS, seed=3) as twin, start(records=RECORDS, seed=4) as other:
        twin_api, other_api = Api(twin), Api(other)
        for path, params in (
            ("Property", {"$top": 300, "$skip": 100}),
            ("Media", {"$top": 200}),
            ("Member", {"$top": 60}),
        ):
            mine = api.get(path, **params).content
            assert (
                twin_api.get(path, **params).content.replace(
                    twin.base_url.encode(), sim.base_url.encode()
                )
                == mine
            )
            assert other_api.get(path, **params).json()["value"] != json.loads(mine)["value"]


# --------------------------------------------------------------------------- metadata files


def _declared(xml: bytes) -> dict[str, dict[str, ET.Element]]:
    root = ET.fromstring(xml)
    return {
        entity.get("Name", ""): {p.get("Name", ""): p for p in entity.findall(f"{EDM}Property")}
        for entity in root.iter(f"{EDM}EntityType")
    }


def test_wide_trestle_metadata_serves_every_declared_field(trestle_metadata_path: Path) -> None:
    with start(records=40, metadata_path=trestle_metadata_path) as real:
        api = Api(real)
        served = api.get("$metadata").content
        assert served == trestle_metadata_path.read_bytes()
        declared = _declared(served)
        assert len(declared["Property"]) == 588
        for resource in sorted(FIVE):
            rows = api.ok(resource, **{"$top": 5})["value"]
            assert rows, resource
            assert all(set(row) == set(declared[resource]) for row in rows), resource
        row = api.ok("Property", **{"$top": 1, "$expand": "Media"})["value"][0]
        assert len(row["Media"]) == row["PhotosCount"]


def _assert_strings_at_max_length(
    declared: dict[str, ET.Element], rows: list[dict], suppressed: frozenset[str] = frozenset()
) -> int:
    checked = 0
    for name, prop in declared.items():
        limit = prop.get("MaxLength")
        if name in suppressed:
            assert all(row[name] is None for row in rows)  # null on every row, even here
        elif prop.get("Type") == "Edm.String" and limit and limit.isdigit():
            for row in rows:
                assert len(row[name]) == int(limit), name
                checked += 1
    return checked


def test_fill_max_fills_strings_to_max_length() -> None:
    with start(records=8, fill="max") as wide:
        api = Api(wide)
        declared = _declared(api.get("$metadata").content)
        rows = api.ok("Property", **{"$top": 8})["value"]
        suppressed = frozenset(requests.get(f"{wide.control_url}/info").json()["suppressed_fields"])
        assert suppressed
        assert _assert_strings_at_max_length(declared["Property"], rows, suppressed) > 50
        assert all(row["ListPrice"] == 999999999999.99 for row in rows)
        assert all(row["Appliances"].count(",") >= 10 for row in rows)
        media = api.ok("Media", **{"$top": 20})["value"]
        _assert_strings_at_max_length(declared["Media"], media)


def test_fill_max_with_the_wide_trestle_metadata(trestle_metadata_path: Path) -> None:
    with start(records=3, fill="max", metadata_path=trestle_metadata_path) as wide:
        api = Api(wide)
        declared = _declared(trestle_metadata_path.read_bytes())
        rows = api.ok("Property", **{"$top": 3})["value"]
        assert _assert_strings_at_max_length(declared["Property"], rows) > 300


# --------------------------------------------------------------------------- control API


def test_control_upsert_mutate_delete() -> None:
    with start(records=100, seed=5) as live:
        api = Api(live)
        control = live.control_url
        before = max(r["ModificationTimestamp"] for r in live.records("Property"))

        upserted = requests.post(
            f"{control}/records/Property", json=[{"ListingKey": "NEW-1", "City": "Zoë\u2019s Town"}]
        )
        assert upserted.json() == {"upserted": ["NEW-1"]}
        new = api.ok("Property", **{"$filter": f"ModificationTimestamp gt {before}"})["value"]
        assert [row["ListingKey"] for row in new] == ["NEW-1"]
        assert new[0]["City"] == "Zoë\u2019s Town" and len(new[0]["ModificationTimestamp"]) == 28

        mutated = requests.post(
            f"{control}/mutate", json={"resource": "Property", "count": 7, "seed": 2}
        ).json()
        assert len(mutated["modified"]) == 7
        latest = new[0]["ModificationTimestamp"]
        changed = api.ok(
            "Property", **{"$filter": f"ModificationTimestamp gt {latest}", "$top": 100}
        )["value"]
        assert sorted(row["ListingKey"] for row in changed) == sorted(mutated["modified"])

        gone = mutated["modified"][0]
        assert requests.delete(f"{control}/records/Property/{gone}").status_code == 200
        assert requests.delete(f"{control}/records/Property/{gone}").status_code == 404
        census = api.ok("Property", **{"$select": "ListingKey", "$top": 1000})["value"]
        assert gone not in {row["ListingKey"] for row in census} and len(census) == 100
        media = api.ok("Media", **{"$filter": f"ResourceRecordKey eq '{gone}'"})["value"]
        assert media == []

        removed = requests.post(f"{control}/mutate", json={"delete": 3, "seed": 1}).json()
        assert len(removed["deleted"]) == 3 and len(live.keys("Property")) == 97

        stats = requests.get(f"{control}/stats").json()
        assert stats["tokens_issued"] == 1
        assert stats["requests"]["trestle-simulator"]["by_status"]["200"] == stats["requests_total"]
        assert requests.post(f"{control}/stats/reset").status_code == 200
        assert requests.get(f"{control}/stats").json()["requests_total"] == 0

        bad = requests.put(f"{control}/config", json={"records": 5})
        assert bad.status_code == 400
        good = requests.put(f"{control}/config", json={"latency_ms_per_request": 1})
        assert good.json()["latency_ms_per_request"] == 1


def test_port_in_use_is_a_clear_oserror(sim: RunningSimulator) -> None:
    config = SimulatorConfig(records=1, port=sim.port)
    with pytest.raises(OSError, match="already in use"):
        serve(config, on_ready=lambda token_url, odata_root: None)
