"""Record to row: checks, conversions and what a rejection says."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from tests.store_data import PROPERTY
from trestle_tasks.core.timestamps import ODataTimestamp
from trestle_tasks.store import transform as t
from trestle_tasks.store.schema import plan_layout

NOW = datetime(2024, 5, 1, tzinfo=UTC)


@pytest.fixture
def transformer() -> t.RecordTransformer:
    return t.RecordTransformer(plan_layout(PROPERTY))


@pytest.mark.parametrize("value, digits", [
    (Decimal("0"), (0, 0)), (Decimal("123.4500"), (3, 2)), (Decimal("0.001"), (0, 3)),
    (Decimal("1E+3"), (4, 0)), (Decimal("-99.99"), (2, 2)), (Decimal("100"), (3, 0)),
    (Decimal("0E-7"), (0, 0)),
])
def test_decimal_digits(value: Decimal, digits: tuple[int, int]) -> None:
    assert t.decimal_digits(value) == digits


def test_a_valid_record_becomes_a_row(transformer: t.RecordTransformer) -> None:
    record = {"ListingKey": "A1", "ModificationTimestamp": "2024-01-01T12:00:00.1234567+02:00",
              "ListPrice": Decimal("250000.00"), "City": "Zürich", "BedroomsTotal": 3,
              "Unknown": "kept", "Media": [{"MediaKey": "m"}], "@odata.etag": "W/1"}
    row = transformer.prepare(record, NOW)
    assert isinstance(row, t.PreparedRow)
    assert row.key == "A1"
    assert row.ticks == ODataTimestamp.parse("2024-01-01T10:00:00.1234567Z").ticks
    assert row.values["ModificationTimestamp"] == datetime(2024, 1, 1, 10, 0, 0, 123456,
                                                           tzinfo=UTC)
    assert row.values["ListPrice"] == Decimal("250000.00")
    assert row.undeclared == ("Unknown",)  # annotations and navigations are not fields
    assert '"Media"' not in row.values["etl_record"]  # children go to their own table
    assert '"Unknown":"kept"' in row.values["etl_record"]
    assert row.size == len(row.values["etl_record"].encode("utf-8"))


def test_every_problem_is_named_and_the_first_is_blamed(transformer: t.RecordTransformer
                                                        ) -> None:
    outcome = transformer.prepare({"ListingKey": "A", "City": 1, "BedroomsTotal": "x"}, NOW)
    assert isinstance(outcome, t.Rejection)
    assert (outcome.field, outcome.reason, outcome.record_key) == ("City", t.WRONG_TYPE, "A")
    assert "BedroomsTotal" in outcome.detail


@pytest.mark.parametrize("record, reason", [
    ("a string", t.NOT_AN_OBJECT),
    ({"City": "x"}, t.MISSING_KEY),
    ({"ListingKey": None}, t.MISSING_KEY),
    ({"ListingKey": "K" * 65}, t.TOO_LONG),
    ({"ListingKey": "a\x00b"}, t.INVALID_CHARACTER),
    ({"ListingKey": "k", "Odd": {1, 2}}, t.UNSERIALIZABLE),
    ({"ListingKey": "k", "Odd": Decimal("NaN")}, t.UNSERIALIZABLE),
    ({"ListingKey": "k", "Undeclared": "nul \x00"}, t.INVALID_CHARACTER),
    ({"ListingKey": "k", "ModificationTimestamp": "0001-01-01T00:00:00+01:00"},
     t.OUT_OF_RANGE),
    ({"ListingKey": "k", "TaxAnnualAmount": 2**63}, t.OUT_OF_RANGE),
    ({"ListingKey": "k", "NewConstructionYN": 1}, t.WRONG_TYPE),
    ({"ListingKey": "k", "BedroomsTotal": True}, t.WRONG_TYPE),
    ({"ListingKey": "k", "Appliances": ["Oven", 3]}, t.WRONG_TYPE),
    ({"ListingKey": "k", "StandardStatus": "x" * 256}, t.TOO_LONG),
])
def test_rejections(transformer: t.RecordTransformer, record: object, reason: str) -> None:
    outcome = transformer.prepare(record, NOW)
    assert isinstance(outcome, t.Rejection) and outcome.reason == reason
    assert outcome.raw_record is record


def test_lenient_where_feeds_are_lenient(transformer: t.RecordTransformer) -> None:
    """Unknown enumeration members and floats for decimals load; nulls are fine."""
    record = {"ListingKey": "k", "StandardStatus": "ComingSoonLocal", "ListPrice": 1.5,
              "Appliances": ["Oven", "Brand New Appliance"], "City": None,
              "LotSizeAcres": 1e300}
    assert isinstance(transformer.prepare(record, NOW), t.PreparedRow)
