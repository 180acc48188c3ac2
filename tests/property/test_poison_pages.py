"""Issue 22, item 7, as a property: whatever poison records a page holds — nested
thousands of levels deep, a timestamp outside years 1-9999 in UTC or no date at all, a
hostile field name, not an object — the page, served over HTTP by a hostile stand-in and
fetched by the real client, loads every good record into the database and rejects each
bad one alone, under its own key. Before: a deep record failed its whole page
(RecursionError in the client's decoding), and so every good record beside it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.integration.poison_server import QUICK_RETRY, PoisonServer, poison_server
from tests.store_data import migrate_small, records, unique_prefix
from tests.store_fixtures import (  # noqa: F401
    StoreTarget,
    module_store_target,
    stored_records,
)
from trestle_tasks.store.jsontext import encode_json
from trestle_tasks.store.loader import RecordLoader
from trestle_tasks.store.schema import bookkeeping
from trestle_tasks.trestle.query import ODataQuery

BAD_TIMESTAMPS = ["9999-12-31T23:59:59.9999999-01:00", "0000-00-00T00:00:00Z",
                  "0001-01-01T00:00:00+01:00", "2024-13-45T99:99:99Z"]


@pytest.fixture(scope="module")
def target(module_store_target: StoreTarget) -> StoreTarget:  # noqa: F811
    migrate_small(module_store_target, ("Property",))
    return module_store_target


@pytest.fixture(scope="module")
def server() -> Iterator[PoisonServer]:
    with poison_server() as running:
        yield running


def _deep(levels: int) -> str:
    return "[" * levels + "1" + "]" * levels


@st.composite
def poison(draw: st.DrawFn, key: str) -> str:
    """The JSON text of one record that must be rejected, keyed `key`."""
    kind = draw(st.sampled_from(["deep declared", "deep undeclared", "timestamp",
                                 "other timestamp"]))
    if kind == "deep declared":
        levels = draw(st.integers(900, 20_000))
        return (f'{{"ListingKey": "{key}", "X_Location": {{"type": "Point", '
                f'"coordinates": {_deep(levels)}}}}}')
    if kind == "deep undeclared":
        levels = draw(st.integers(900, 20_000))
        name = draw(st.sampled_from(["X_Deep", 'Odd\\"Name', "Tab\\tName"]))
        return f'{{"ListingKey": "{key}", "{name}": {_deep(levels)}}}'
    field = "ModificationTimestamp" if kind == "timestamp" else "PhotosChangeTimestamp"
    return encode_json({"ListingKey": key, field: draw(st.sampled_from(BAD_TIMESTAMPS))})


@st.composite
def pages(draw: st.DrawFn) -> tuple[list[str], list[dict[str, Any]], list[str]]:
    """The page's record texts in order, the good records, and the poison keys."""
    prefix = unique_prefix()
    texts: list[str] = []
    good: list[dict[str, Any]] = []
    bad: list[str] = []
    for index in range(draw(st.integers(1, 8))):
        key = f"{prefix}-{index}"
        if draw(st.booleans()):
            record = draw(records(key=key))
            good.append(record)
            texts.append(encode_json(record))
        else:
            bad.append(key)
            texts.append(draw(poison(key)))
    return texts, good, bad


@settings(max_examples=25, deadline=None)
@given(page=pages())
def test_poison_records_are_rejected_alone_and_the_good_ones_stored(
        target: StoreTarget, server: PoisonServer,
        page: tuple[list[str], list[dict[str, Any]], list[str]]) -> None:
    texts, good, bad = page
    server.answer = None
    server.body = ('{"value": [' + ", ".join(texts) + "]}").encode()
    fetched = server.client().get_page(ODataQuery("Property")).records
    assert len(fetched) == len(texts)
    loader = RecordLoader.open(target.engine, "Property", schema=target.schema,
                               retry=QUICK_RETRY)
    result = loader.load(fetched)
    assert (result.upserted, result.rejected) == (len(good), len(bad))
    keys = [r["ListingKey"] for r in good] + bad
    rejects = bookkeeping(target.schema)["etl_rejects"]
    with target.engine.connect() as conn:
        rejected = conn.execute(sa.select(rejects.c.record_key)
                                .where(rejects.c.record_key.in_(keys))).scalars().all()
    assert stored_records(target, "Property", keys) == {r["ListingKey"]: r for r in good}
    assert sorted(rejected) == sorted(bad)
