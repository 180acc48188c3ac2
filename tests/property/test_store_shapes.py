"""Compact documents (store/shapes.py), as pure logic: whatever the record, its compact form
and its shape restore it exactly (values, nulls, key order, digits), and a record that
cannot have a shape is kept whole — never changed, never refused."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trestle_tasks.store.jsontext import encode_json
from trestle_tasks.store.shapes import (
    MAX_SHAPE_KEYS,
    ShapeBook,
    ShapeError,
    names_of,
    restore,
)

NAMES = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
                max_size=12)
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(),
    st.decimals(allow_nan=False, allow_infinity=False, places=3),
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=20))
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(NAMES, inner, max_size=3)), max_leaves=8)
RECORDS = st.dictionaries(NAMES, VALUES, max_size=30)


def stored(book: ShapeBook, record: dict[str, Any]) -> tuple[str, str | None]:
    """What the store keeps: the document text and the shape's names (None: whole)."""
    compact, shape = book.compact(record)
    return encode_json(compact), None if shape is None else shape.names


def exported(document: str, names: str | None) -> str:
    return document if names is None else restore(document, names_of(names))


@given(records=st.lists(RECORDS, min_size=1, max_size=6))
def test_a_compact_record_restores_exactly(records: list[dict[str, Any]]) -> None:
    book = ShapeBook()
    for record in records:
        original = encode_json(record)
        document, names = stored(book, record)
        assert exported(document, names) == original
        # Nulls are what is left out, and only when there are any; nested nulls stay.
        has_null = any(v is None for v in record.values())
        assert (names is not None) == has_null
        assert encode_json({k: v for k, v in record.items() if v is not None}) == document


@given(record=RECORDS)
def test_the_same_keys_always_make_the_same_shape(record: dict[str, Any]) -> None:
    nulled = dict.fromkeys(record) | {"Key": None}
    first = ShapeBook().compact(nulled)[1]
    again = ShapeBook().compact({k: 1 if k != "Key" else None for k in nulled})[1]
    assert first is not None and again is not None
    assert first.id == again.id and first.names == again.names
    reordered = dict(reversed(list(nulled.items())))
    if list(reordered) != list(nulled):
        other = ShapeBook().compact(reordered)[1]
        assert other is not None and other.id != first.id  # order is part of the shape


@pytest.mark.parametrize("record", [
    {"A": None, 1: "x"},                                   # a key that is not a string
    {"A": None, "B\ud800": 1},                             # a lone surrogate in a key
    {"A": None, "B\x00": 1},                               # U+0000 in a key
    {f"F{i}": None for i in range(MAX_SHAPE_KEYS + 1)},    # too many keys
])
def test_a_record_that_cannot_have_a_shape_is_kept_whole(record: dict[Any, Any]) -> None:
    compact, shape = ShapeBook().compact(record)
    assert shape is None and compact is record


def test_shapes_are_bounded_per_book_and_known_ones_still_compact() -> None:
    book = ShapeBook(limit=2)
    first = {"A": None, "B": 1}
    assert book.compact(first)[1] is not None
    assert book.compact({"C": None})[1] is not None
    assert book.compact({"D": None})[1] is None  # a third shape: stored whole
    assert book.compact(dict(first))[0] == {"B": 1}  # a known shape still compacts


@pytest.mark.parametrize(("document", "names", "error"), [
    ('{"A":1,"Z":2}', '["A","B"]', "keys its shape lacks"),
    ("[1]", '["A"]', "not a JSON object"),
])
def test_a_document_that_does_not_match_its_shape_is_an_error(
        document: str, names: str, error: str) -> None:
    with pytest.raises(ShapeError, match=error):
        restore(document, names_of(names))


@pytest.mark.parametrize("names", ['{"A":1}', '["A",2]'])
def test_a_shape_that_is_not_a_list_of_names_is_an_error(names: str) -> None:
    with pytest.raises(ShapeError, match="not a list of names"):
        names_of(names)


def test_decimals_keep_their_digits() -> None:
    record = {"Price": Decimal("100.50"), "Area": Decimal("1E+3"), "Gone": None}
    document, names = stored(ShapeBook(), record)
    assert exported(document, names) == '{"Price":100.50,"Area":1E+3,"Gone":null}'


def test_when_nulls_are_too_few_to_pay_the_book_stops_leaving_them_out() -> None:
    sparse = {"A": None, "B": None, "C": 1}  # 2 of 3 null
    dense = {"A": None, "B": 1, "C": 1, "D": 1, "E": 1, "F": 1}  # 1 of 6
    book = ShapeBook(trial=4, min_null_share=0.2)
    for _ in range(4):
        assert book.compact(dense)[1] is not None  # during the trial: compacted
    assert not book.enabled  # 4 of 24 members null: under a fifth
    assert book.compact(sparse) == (sparse, None)  # stored whole from now on

    book = ShapeBook(trial=2, min_null_share=0.2)
    book.compact(sparse)
    book.compact({"A": 1})  # no nulls: counted in the trial too (2 of 4 null)
    assert book.enabled and book.compact(dense)[0] == {k: 1 for k in "BCDEF"}
