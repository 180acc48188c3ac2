"""What a filter implies about one field's range, to skip rows that cannot match.

The answer is always a superset of the matching rows (anything not understood is
"unbounded"), so using it can only save work, never change a result: the filter is
still evaluated on every candidate.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .odata_filter import And, Compare, Expr, Field, Literal, Or

_FLIPPED = {"gt": "lt", "ge": "le", "lt": "gt", "le": "ge", "eq": "eq", "ne": "ne"}


@dataclass(frozen=True)
class Interval:
    """A range of values; None on a side means unbounded there."""

    low: Any = None
    low_inclusive: bool = True
    high: Any = None
    high_inclusive: bool = True

    def is_unbounded(self) -> bool:
        return self.low is None and self.high is None


UNBOUNDED = Interval()


def interval_of(expr: Expr, field: str, convert: Callable[[Literal], Any]) -> Interval:
    """The values of `field` a matching row can have. `convert` turns a literal into the
    field's comparable form, or None when the literal is not of the field's kind."""
    if isinstance(expr, And):
        return _intersect(
            interval_of(expr.left, field, convert), interval_of(expr.right, field, convert)
        )
    if isinstance(expr, Or):
        return _hull(
            interval_of(expr.left, field, convert), interval_of(expr.right, field, convert)
        )
    if isinstance(expr, Compare):
        op, left, right = expr.op, expr.left, expr.right
        if isinstance(right, Field) and isinstance(left, Literal):
            op, left, right = _FLIPPED[op], right, left
        if not (isinstance(left, Field) and left.name == field and isinstance(right, Literal)):
            return UNBOUNDED
        value = convert(right)
        if value is None:
            return UNBOUNDED
        if op == "eq":
            return Interval(value, True, value, True)
        if op in ("gt", "ge"):
            return Interval(low=value, low_inclusive=op == "ge")
        if op in ("lt", "le"):
            return Interval(high=value, high_inclusive=op == "le")
    return UNBOUNDED  # ne, not, has, functions: no usable bound


def equal_values(expr: Expr, field: str) -> frozenset[str] | None:
    """The string values `field` must equal (`F eq 'a' or F eq 'b'`), None if unconstrained."""
    if isinstance(expr, And):
        left, right = equal_values(expr.left, field), equal_values(expr.right, field)
        if left is None:
            return right
        return left if right is None else left & right
    if isinstance(expr, Or):
        left, right = equal_values(expr.left, field), equal_values(expr.right, field)
        return None if left is None or right is None else left | right
    if isinstance(expr, Compare) and expr.op == "eq":
        pair = (expr.left, expr.right)
        for side, other in (pair, pair[::-1]):
            if (
                isinstance(side, Field)
                and side.name == field
                and isinstance(other, Literal)
                and other.kind == "string"
            ):
                return frozenset({str(other.value)})
    return None


def _intersect(a: Interval, b: Interval) -> Interval:
    low, low_inclusive = a.low, a.low_inclusive
    if b.low is not None and (low is None or b.low > low or (b.low == low and not b.low_inclusive)):
        low, low_inclusive = b.low, b.low_inclusive
    high, high_inclusive = a.high, a.high_inclusive
    if b.high is not None and (
        high is None or b.high < high or (b.high == high and not b.high_inclusive)
    ):
        high, high_inclusive = b.high, b.high_inclusive
    return Interval(low, low_inclusive, high, high_inclusive)


def _hull(a: Interval, b: Interval) -> Interval:
    if a.low is None or b.low is None:
        low, low_inclusive = None, True
    elif a.low < b.low or (a.low == b.low and a.low_inclusive):
        low, low_inclusive = a.low, a.low_inclusive
    else:
        low, low_inclusive = b.low, b.low_inclusive
    if a.high is None or b.high is None:
        high, high_inclusive = None, True
    elif a.high > b.high or (a.high == b.high and a.high_inclusive):
        high, high_inclusive = a.high, a.high_inclusive
    else:
        high, high_inclusive = b.high, b.high_inclusive
    return Interval(low, low_inclusive, high, high_inclusive)
