"""The compact index (rows made from ordinals) serves exactly what the row index serves.

For any feed shape (size, seed, key padding, photos a listing), both orders, every lookup
by key or by parent, and every page of a keyset walk agree; after writes through the
control API (which give a compact resource its row index) they still agree.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from trestle_simulator.config import SimulatorConfig
from trestle_simulator.engine import Search, find
from trestle_simulator.feed import Feed
from trestle_simulator.odata_filter import parse_filter

feeds = st.fixed_dictionaries(
    {
        "records": st.integers(0, 60),
        "seed": st.integers(0, 10_000),
        "fill": st.sampled_from(["realistic", "max"]),
        "media_max_per_listing": st.sampled_from([0, 1, 20, 64, 99]),
    }
)


def shown(row) -> tuple:
    return (row.key, row.ticks, row.parent, getattr(row.aux, "ticks", None), row.source)


def both(settings_: dict) -> tuple[Feed, Feed]:
    return (
        Feed(SimulatorConfig(**settings_)),
        Feed(SimulatorConfig(**settings_, compact_index=True)),
    )


def assert_same(regular: Feed, compact: Feed, probe_keys: list[str]) -> None:
    for resource in ("Property", "Media"):
        plain, small = regular.data(resource), compact.data(resource)
        assert len(plain) == len(small)
        for plain_view, small_view in zip(plain.views(), small.views(), strict=True):
            assert [shown(row) for row in plain_view] == [shown(row) for row in small_view]
            assert [shown(row) for row in plain_view[::-1]] == [
                shown(row) for row in small_view[::-1]
            ]
        for key in [row.key for row in plain.views()[0]] + probe_keys:
            found, expected = small.get(key), plain.get(key)
            assert (found and shown(found)) == (expected and shown(expected)), key
        assert plain.max_ticks() == small.max_ticks()
    media_regular, media_compact = regular.data("Media"), compact.data("Media")
    for listing in [*keys(regular, "Property"), "nope", ""]:
        assert sorted(map(shown, media_regular.children(listing))) == sorted(
            map(shown, media_compact.children(listing))
        )
    assert regular.records("Media") == compact.records("Media")


def keys(feed: Feed, resource: str) -> list[str]:
    return [row.key for row in feed.data(resource).views()[0]]


def walk(feed: Feed, resource: str, text: str | None, top: int) -> list[str]:
    data = feed.data(resource)
    expr = parse_filter(text) if text else None
    seen: list[str] = []
    after = ""
    while True:
        rows = find(data, Search(expr, text or "", (), 0, top, False, after_key=after)).rows
        seen += [row.key for row in rows]
        if len(rows) < top:
            return seen
        after = rows[-1].key


@settings(max_examples=40, deadline=None)
@given(feeds, st.data())
def test_compact_index_serves_what_the_row_index_serves(shape: dict, data) -> None:
    regular, compact = both(shape)
    media_keys = keys(regular, "Media")
    mangled = [key[:-1] + "x" for key in media_keys[:3]] + [key + "0" for key in media_keys[:3]]
    probes = ["", "m", "0" * 16 + "m00", "zzzz", *mangled]
    assert_same(regular, compact, probes)

    top = data.draw(st.integers(1, 40), label="top")
    for resource in ("Property", "Media"):
        stamps = [row.stamp.text for row in regular.data(resource).views()[1] if row.stamp]
        text = None
        if stamps:
            stamp = data.draw(st.sampled_from(stamps), label="stamp")
            text = f"ModificationTimestamp ge {stamp}"
        assert walk(regular, resource, text, top) == walk(compact, resource, text, top)


@settings(max_examples=25, deadline=None)
@given(feeds.filter(lambda shape: shape["records"] > 0), st.randoms(use_true_random=False))
def test_writes_keep_both_indexes_equal(shape: dict, rng) -> None:
    regular, compact = both(shape)
    stamp = "2026-01-02T03:04:05.1234567Z"  # given, not "now": both feeds get the same
    listings, photos = keys(regular, "Property"), keys(regular, "Media")
    changed_photos = rng.sample(photos, min(2, len(photos)))
    changed = rng.sample(listings, min(2, len(listings)))
    gone = rng.choice(listings)  # takes its photos along
    for feed in (regular, compact):  # the same writes, in the same order
        feed.upsert("Media", [{"MediaKey": key, "ModificationTimestamp": stamp,
                               "Order": 99} for key in changed_photos])
        feed.upsert("Property", [{"ListingKey": key, "ModificationTimestamp": stamp,
                                  "ListPrice": 1} for key in changed])
        feed.delete("Property", [gone])
    assert compact.data("Property").compact is False  # a write built the row index
    assert_same(regular, compact, ["zzzz", gone])
