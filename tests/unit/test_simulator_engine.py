"""The simulator's page finder must give exactly what a brute-force scan gives.

`engine.find` narrows candidates by the bounds a filter implies, stops early when the
index order is the requested order, and caches match lists; none of that may change a
result. Each case is checked against filtering and sorting every full record.
"""

from __future__ import annotations

from collections import Counter

import pytest

from trestle_simulator.config import SimulatorConfig
from trestle_simulator.engine import Search, find
from trestle_simulator.feed import Feed
from trestle_simulator.odata_filter import evaluate, parse_filter, sort_key


@pytest.fixture(scope="module", params=[False, True], ids=["row-index", "compact-index"])
def feed(request: pytest.FixtureRequest) -> Feed:
    # Every case runs on both indexes: the compact one (rows made from ordinals, for
    # feeds of millions) must give the pages the regular one gives.
    return Feed(SimulatorConfig(records=400, seed=11, compact_index=request.param))


def brute_force(
    feed: Feed, resource: str, text: str | None, order: list[tuple[str, bool]]
) -> list[str]:
    data = feed.data(resource)
    key = data.shape.key_field
    records = feed.records(resource)
    if text:
        expr = parse_filter(text)
        records = [r for r in records if evaluate(expr, r)]
    full_order = [*order, (key, order[-1][1] if order and order[-1][0] != key else False)]
    if order and order[-1][0] == key:
        full_order = order
    for field, descending in reversed(full_order):
        records.sort(key=lambda r, f=field: sort_key(r.get(f)), reverse=descending)
    return [r[key] for r in records]


def tie_and_key(feed: Feed) -> tuple[str, str]:
    records = feed.records("Property")
    stamp = Counter(r["ModificationTimestamp"] for r in records).most_common(1)[0][0]
    key = sorted(r["ListingKey"] for r in records if r["ModificationTimestamp"] == stamp)[40]
    return stamp, key


FILTERS = [
    None,
    "ModificationTimestamp gt {T}",
    "ModificationTimestamp ge {T} and ModificationTimestamp lt 2025-01-01T00:00:00Z",
    "ModificationTimestamp gt {T} or (ModificationTimestamp eq {T} and ListingKey gt '{K}')",
    "ListingKey gt '{K}' and ListingKey le 'c'",
    "not (ModificationTimestamp gt {T}) and ListingKey ne '{K}'",
    "StandardStatus eq 'Active' and ModificationTimestamp gt 2020-06-01T00:00:00Z",
    "PhotosChangeTimestamp gt 2023-01-01T00:00:00.0000001Z or PhotosCount eq 0",
    "ModificationTimestamp lt 2019-01-01T00:00:00Z",
]
ORDERS = [
    [],
    [("ListingKey", True)],
    [("ModificationTimestamp", False), ("ListingKey", False)],
    [("ModificationTimestamp", True)],
    [("ModificationTimestamp", True), ("ListingKey", False)],
    [("ListPrice", False)],
]


@pytest.mark.parametrize("order", ORDERS, ids=str)
@pytest.mark.parametrize("template", FILTERS, ids=str)
def test_pages_match_brute_force(feed: Feed, template: str | None, order: list) -> None:
    stamp, key = tie_and_key(feed)
    text = template.format(T=stamp, K=key) if template else None
    expected = brute_force(feed, "Property", text, order)
    data = feed.data("Property")
    expr = parse_filter(text) if text else None
    for skip, top, count in ((0, 7, False), (0, 1000, True), (13, 50, False), (390, 20, True)):
        found = find(data, Search(expr, text or "", tuple(order), skip, top, count))
        assert [row.key for row in found.rows] == expected[skip : skip + top]
        assert found.total == (len(expected) if count else None)


@pytest.mark.parametrize("template", FILTERS[:5], ids=str)
def test_keyset_continuation_matches_brute_force(feed: Feed, template: str | None) -> None:
    stamp, key = tie_and_key(feed)
    text = template.format(T=stamp, K=key) if template else None
    expected = brute_force(feed, "Property", text, [("ListingKey", False)])
    data = feed.data("Property")
    expr = parse_filter(text) if text else None
    seen: list[str] = []
    after = ""
    while True:
        page = find(data, Search(expr, text or "", (), 0, 33, False, after_key=after)).rows
        seen += [row.key for row in page]
        if len(page) < 33:
            break
        after = page[-1].key
    assert seen == expected


MEDIA_FILTERS = [
    None,
    "ModificationTimestamp gt {T}",
    "MediaKey gt '{K}'",
    "ModificationTimestamp gt {T} or (ModificationTimestamp eq {T} and MediaKey gt '{K}')",
    "Order eq 1 and MediaKey lt '{K}'",
]
MEDIA_ORDERS = [
    [],
    [("MediaKey", True)],
    [("ModificationTimestamp", False), ("MediaKey", False)],
    [("ModificationTimestamp", True)],
]


@pytest.mark.parametrize("order", MEDIA_ORDERS, ids=str)
@pytest.mark.parametrize("template", MEDIA_FILTERS, ids=str)
def test_media_pages_match_brute_force(feed: Feed, template: str | None, order: list) -> None:
    media = feed.records("Media")
    middle = media[len(media) // 2]
    text = (
        template.format(T=middle["ModificationTimestamp"], K=middle["MediaKey"])
        if template
        else None
    )
    expected = brute_force(feed, "Media", text, order)
    expr = parse_filter(text) if text else None
    for skip, top, count in ((0, 9, False), (0, 3000, True), (101, 40, False)):
        found = find(feed.data("Media"), Search(expr, text or "", tuple(order), skip, top, count))
        assert [row.key for row in found.rows] == expected[skip : skip + top]
        assert found.total == (len(expected) if count else None)


def test_media_by_parent_matches_brute_force(feed: Feed) -> None:
    listings = feed.records("Property")[:3]
    keys = [listing["ListingKey"] for listing in listings]
    text = " or ".join(f"ResourceRecordKey eq '{key}'" for key in keys)
    expected = brute_force(feed, "Media", text, [])
    found = find(feed.data("Media"), Search(parse_filter(text), text, (), 0, 1000, True))
    assert [row.key for row in found.rows] == expected
    assert found.total == sum(listing["PhotosCount"] for listing in listings)


def test_light_records_agree_with_full_records(feed: Feed) -> None:
    for resource in ("Property", "Media", "OpenHouse", "Member", "Office"):
        data = feed.data(resource)
        by_key, _ = data.views()
        for row in by_key[:50]:
            light, full = data.light(row), data.record(row)
            for field, value in light.items():
                shown = getattr(value, "text", value)
                assert shown == full[field], (resource, field)


def test_prerendered_records_are_the_generated_ones_and_all_kept():
    from trestle_simulator.config import SimulatorConfig
    from trestle_simulator.feed import Feed

    plain = Feed(SimulatorConfig(records=120, seed=7))
    rendered = Feed(SimulatorConfig(records=120, seed=7, prerender=True))
    rendered.prerender()
    data = rendered.data("Property")
    assert len(data._records) == 120  # every record generated up front, none evicted
    assert rendered.records("Property") == plain.records("Property")


def test_a_prerendered_page_is_the_same_bytes_and_follows_writes():
    """Prerendered records are served from their JSON, kept at start: byte for byte the
    page a feed generating them on demand serves; a record written since is served as
    written, not as kept."""
    from trestle_simulator.config import SimulatorConfig
    from trestle_simulator.feed import Feed
    from trestle_simulator.odata_api import ODataService
    from trestle_simulator.replication import ReplicationCursors

    def service(feed: Feed, config: SimulatorConfig) -> ODataService:
        return ODataService(feed, lambda: config, ReplicationCursors(), lambda: False)

    def page(odata: ODataService, **query: str) -> bytes:
        params = [("$top", "40"), ("$orderby", "ListingKey"), *query.items()]
        return odata.collection("Property", params, "http://sim/odata").response.get_data()

    plain_config = SimulatorConfig(records=120, seed=7)
    rendered_config = SimulatorConfig(records=120, seed=7, prerender=True)
    plain, rendered = Feed(plain_config), Feed(rendered_config)
    rendered.prerender()
    assert len(rendered.data("Property")._encoded) == 120  # served from JSON kept at start
    plain_api, rendered_api = service(plain, plain_config), service(rendered, rendered_config)
    assert page(rendered_api) == page(plain_api)
    assert page(rendered_api, **{"$select": "ListingKey,City"}) == \
        page(plain_api, **{"$select": "ListingKey,City"})
    first = rendered.records("Property")[0]
    for feed in (plain, rendered):
        feed.upsert("Property", [dict(first, City="Written Since")])
    assert b"Written Since" in page(rendered_api)
    assert page(rendered_api) == page(plain_api)
