"""The transform's fast path never decides differently from the full checks: for any
record, valid or broken in any field with any value (floats, NaN, tuples, IntEnums, odd
timestamp forms, lone surrogates, undeclared fields), `prepare` gives the same row, or the
same rejection, as `_prepare_checked` alone."""

from __future__ import annotations

import enum
from dataclasses import asdict
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.store_data import PROPERTY, records, timestamps
from trestle_tasks.store import transform as t
from trestle_tasks.store.schema import plan_layout
from trestle_tasks.store.shapes import ShapeBook

NOW = datetime(2024, 5, 1, tzinfo=UTC)
TRANSFORMER = t.RecordTransformer(plan_layout(PROPERTY))
# Documents always without their nulls here, however few (a loader's first records decide
# that otherwise) and however many key sequences the examples make (a loader remembers
# 128), so both ways of writing one are compared in every example.
TRANSFORMER._shapes = ShapeBook(TRANSFORMER._fast.field_order, limit=10**6,
                                min_null_share=0)
DECLARED_ORDER = {f.name: i for i, f in enumerate(PROPERTY.fields)}


class Level(enum.IntEnum):
    ONE = 1


SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(-300, 300),
    st.floats(allow_nan=True, allow_infinity=True),
    st.decimals(allow_nan=True, allow_infinity=True),
    st.decimals(allow_nan=False, allow_infinity=False, places=2),
    st.text(max_size=70), st.text(alphabet="\ud800\x00aé,", max_size=5),
    timestamps(), st.sampled_from([
        "2024-01-01T00:00:00Z", "2024-01-01t00:00:00z", " 2024-01-01T00:00:00Z",
        "2024-02-30T00:00:00Z", "0000-01-01T00:00:00Z", "2024-01-01T00:00:00.12345678Z",
        "2024-01-01", "2024-13-01", "٢٠٢٤-01-01", "A,B", "Level", Level.ONE, ("a",),
        ["a", None], [1.5], {"type": "Point", "coordinates": [Decimal("1.5"), 2]},
        {"type": "Point", "coordinates": [float("nan"), 2]}, {1: "x"},
    ]),
)
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=3)),
    max_leaves=6)
FIELDS = st.sampled_from([f.name for f in PROPERTY.fields] + ["Undeclared", "Media",
                                                               "X@odata.etag"])


def outcome(row: t.PreparedRow | t.Rejection) -> dict[str, Any]:
    return asdict(row) if isinstance(row, t.Rejection) else {
        "key": row.key, "ticks": row.ticks, "values": row.values, "size": row.size,
        "undeclared": row.undeclared, "shape": row.shape}


@settings(max_examples=400)
@given(record=records(key="k"), changes=st.lists(st.tuples(FIELDS, VALUES), max_size=3),
       declared_order=st.booleans())
def test_fast_path_agrees_with_the_full_checks(record: dict[str, Any],
                                               changes: list[tuple[str, Any]],
                                               declared_order: bool) -> None:
    if declared_order:  # Trestle's order: a compact document is written from the shape
        record = dict(sorted(record.items(), key=lambda item: DECLARED_ORDER[item[0]]))
    for name, value in changes:
        record[name] = value
    fast = TRANSFORMER.prepare(record, NOW)
    checked = TRANSFORMER._prepare_checked(record, NOW)
    assert type(fast) is type(checked)
    assert outcome(fast) == outcome(checked)


@given(record=records(key="k"))
def test_valid_records_take_the_fast_path(record: dict[str, Any]) -> None:
    # Timestamps with an offset are valid but take the full parser; Trestle sends Z.
    for name in ("ModificationTimestamp", "PhotosChangeTimestamp"):
        record.pop(name, None)
    assert TRANSFORMER._prepare_fast(record, NOW) is not None


def test_a_record_in_declared_order_is_written_from_the_shape() -> None:
    record = {f.name: None for f in PROPERTY.fields}
    record |= {"ListingKey": "k", "City": "Springfield", "ListPrice": Decimal("100.50"),
               "ModificationTimestamp": "2024-01-01T00:00:00Z"}
    fast = TRANSFORMER._prepare_fast(record, NOW)
    assert fast is not None and fast.shape is not None and fast.shape.ordered
    assert outcome(fast) == outcome(TRANSFORMER._prepare_checked(record, NOW))
    assert fast.values["etl_record"] == ('{"ListingKey":"k","ListPrice":100.50,'
                                         '"City":"Springfield",'
                                         '"ModificationTimestamp":"2024-01-01T00:00:00Z"}')


def test_a_date_written_from_the_shape_keeps_its_text() -> None:
    """Dates are validated by msgspec as `date`s in the shape; the instance writes them back
    as the same ten characters the record held."""
    record = {f.name: None for f in PROPERTY.fields}
    record |= {"ListingKey": "k", "ListingContractDate": "0001-02-28",
               "ModificationTimestamp": "2024-01-01T00:00:00Z"}
    fast = TRANSFORMER._prepare_fast(record, NOW)
    assert fast is not None and fast.shape is not None and fast.shape.ordered
    assert '"ListingContractDate":"0001-02-28"' in fast.values["etl_record"]
    assert outcome(fast) == outcome(TRANSFORMER._prepare_checked(record, NOW))
    # Not a real date: the fast path is not sure, and the full checks reject it.
    record["ListingContractDate"] = "2023-02-29"
    assert TRANSFORMER._prepare_fast(record, NOW) is None
    assert isinstance(TRANSFORMER.prepare(record, NOW), t.Rejection)


@settings(max_examples=300)
@given(precision=st.one_of(st.none(), st.integers(0, 30)),
       scale=st.one_of(st.none(), st.integers(0, 12)),
       value=st.one_of(
           st.decimals(allow_nan=True, allow_infinity=True),
           st.builds(lambda digits, exponent, sign: Decimal((sign, digits, exponent)),
                     st.lists(st.integers(0, 9), min_size=1, max_size=25).map(tuple),
                     st.integers(-30, 30), st.integers(0, 1)),
           st.integers(-(10**30), 10**30),
           st.sampled_from([Decimal("1E+999999"), Decimal("0E+5"), Decimal("-0.000"),
                            Decimal("1.500"), Decimal("12.3400")])))
def test_a_sure_decimal_is_one_the_full_check_accepts(
        precision: int | None, scale: int | None, value: Any) -> None:
    """The fast check is never more lenient than the full one, and sure of plain values."""
    sure = t._decimal_fits(precision, scale)(value)
    full = t._check_decimal(precision, scale)(value) is None
    if sure:
        assert full
    whole_limit = None if precision is None else precision - (scale or 0)
    if (full and type(value) is Decimal and value.is_finite() and value != 0
            and value.as_tuple().exponent >= -(scale or 0) and -60 < value.adjusted() < 60
            and (whole_limit is None or whole_limit >= 0)):
        assert sure  # a plain value (not a zero, trailing zeros or a huge exponent): sure


def test_records_sharing_a_key_sequence_are_decided_alike() -> None:
    """What a key sequence decides (undeclared names, navigation properties, the shape) is
    remembered from its first record: later ones with the same keys agree with the full
    checks too, whatever their values."""
    transformer = t.RecordTransformer(plan_layout(PROPERTY))
    base = {f.name: None for f in PROPERTY.fields} | {
        "ListingKey": "k1", "ModificationTimestamp": "2024-01-01T00:00:00Z"}
    plain = dict(base)
    with_extras = base | {"Undeclared": "x", "Media": [{"MediaKey": "m"}]}
    for record in (plain, dict(plain, ListingKey="k2", City="Here"), with_extras,
                   dict(with_extras, ListingKey="k3", Undeclared=None),
                   dict(with_extras, ListingKey="k4", Undeclared=float("nan"))):
        fast = transformer.prepare(record, NOW)
        assert outcome(fast) == outcome(transformer._prepare_checked(record, NOW))
    assert len(transformer._fast._facts) == 2
    row = transformer.prepare(dict(with_extras, ListingKey="k5"), NOW)
    assert isinstance(row, t.PreparedRow) and row.undeclared == ("Undeclared",)
    assert '"Media"' not in row.values["etl_record"]
