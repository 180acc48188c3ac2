"""Exact JSON: decimals keep every digit through encode and decode."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trestle_tasks.store.jsontext import decode_json, encode_json

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text()
    | st.decimals(allow_nan=False, allow_infinity=False),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)


@given(value=JSON, ascii_only=st.booleans())
def test_decimals_survive_digit_for_digit(value: object, ascii_only: bool) -> None:
    text = encode_json(value, ensure_ascii=ascii_only)
    assert decode_json(text) == value
    assert encode_json(decode_json(text), ensure_ascii=ascii_only) == text
    if ascii_only:
        assert text.isascii()


def test_trailing_zeros_and_exponents_are_kept() -> None:
    value = {"a": Decimal("123.40"), "b": Decimal("1E+2"), "c": Decimal("-0.00"),
             "d": Decimal("12345678901234567890.123456789")}
    assert encode_json(value) == '{"a":123.40,"b":1E+2,"c":-0.00,' \
                                 '"d":12345678901234567890.123456789}'


def test_a_string_holding_the_placeholder_character_is_still_exact() -> None:
    value = {"text": "\ue000 0\ue000", "n": Decimal("1.50"), "raw": '"\ue0000\ue000"'}
    assert decode_json(encode_json(value)) == value
    assert decode_json(encode_json(value, ensure_ascii=True)) == value


@pytest.mark.parametrize("bad", [Decimal("NaN"), Decimal("Infinity"), float("nan"), {1, 2}])
def test_values_without_a_json_form_are_refused(bad: object) -> None:
    with pytest.raises((ValueError, TypeError)):
        encode_json({"x": bad})
