"""Find the rows of one page: filter, order, skip/keyset position, top, count.

Most pages a replication client asks for filter and order on the key and
ModificationTimestamp only, which the index holds. Those are answered from the sorted
views, narrowed by the bounds the filter implies and stopped as soon as the page is
full. Anything else falls back to full records (generated on demand), with the complete
match list cached per data version so $skip paging does not redo the work per page.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from .bounds import UNBOUNDED, Interval, equal_values, interval_of
from .dataset import TIMESTAMP_FIELD, ResourceData, Row
from .odata_filter import Expr, Literal, Timestamp, evaluate, fields_referenced, sort_key

OrderBy = list[tuple[str, bool]]
EARLY_STOP_MAX_SKIP = 2000


@dataclass(frozen=True)
class Search:
    """What a page request asks of one resource (validated by the caller)."""

    expr: Expr | None = None
    filter_text: str = ""
    orderby: tuple[tuple[str, bool], ...] = ()
    skip: int = 0
    top: int = 10
    count: bool = False
    after_key: str | None = None  # replication: continue after this key, in key order


@dataclass
class Found:
    rows: list[Row]
    total: int | None  # all matches, when the search asked for a count


def normalized_order(data: ResourceData, orderby: Iterable[tuple[str, bool]]) -> OrderBy:
    """The requested order with the key appended, so equal values page deterministically."""
    key = data.shape.key_field
    order: OrderBy = []
    for field, descending in orderby:
        if field not in (name for name, _ in order):
            order.append((field, descending))
    if key not in (name for name, _ in order):
        order.append((key, order[-1][1] if order and order[-1][0] == TIMESTAMP_FIELD else False))
    return order


def find(data: ResourceData, search: Search) -> Found:
    order = normalized_order(data, search.orderby)
    if search.after_key is not None:
        order = [(data.shape.key_field, False)]
    light = data.shape.light_fields
    light_filter = search.expr is None or fields_referenced(search.expr) <= light
    wanted = search.skip + search.top

    signature = (search.filter_text, tuple(order))
    if search.after_key is None:
        cached = data.cached_matches(signature)
        if cached is not None:
            return Found(cached[search.skip : wanted], len(cached) if search.count else None)

    candidates, in_order = _candidates(data, search, order)
    if search.expr is None and in_order:
        total = len(candidates) if search.count else None
        return Found(list(candidates[search.skip : wanted]), total)
    matches = _matching(data, search.expr, candidates, light_filter)
    # Stop at the page when we can; deep $skip pages instead build (and cache) the whole
    # match list once, so walking a large result by $skip is not quadratic.
    if (
        in_order
        and not search.count
        and (search.skip <= EARLY_STOP_MAX_SKIP or search.after_key is not None)
    ):
        page: list[Row] = []
        for row in matches:
            page.append(row)
            if len(page) >= wanted:
                break
        return Found(page[search.skip :], None)

    everything = list(matches)
    if not in_order:
        everything = _sorted(data, everything, order)
    if search.after_key is None:
        data.remember_matches(signature, everything)
    return Found(everything[search.skip : wanted], len(everything) if search.count else None)


def _matching(
    data: ResourceData, expr: Expr | None, rows: Iterable[Row], light_filter: bool
) -> Iterable[Row]:
    if expr is None:
        return rows
    view = data.light if light_filter else data.record
    return (row for row in rows if evaluate(expr, view(row)))


def _candidates(data: ResourceData, search: Search, order: OrderBy) -> tuple[Sequence[Row], bool]:
    """Rows that may match, and whether they already come in the requested order."""
    shape = data.shape
    by_key, by_time = data.views()
    expr = search.expr

    if expr is not None and shape.parent_field:
        parents = equal_values(expr, shape.parent_field)
        if parents is not None:  # Media of a few listings: look them up directly
            rows = [row for parent in sorted(parents) for row in data.children(parent)]
            if search.after_key is not None:
                rows = [row for row in rows if row.key > search.after_key]
            return rows, False

    key_range = interval_of(expr, shape.key_field, _string) if expr is not None else UNBOUNDED
    if search.after_key is not None:
        key_range = _after(key_range, search.after_key)
    time_range = (
        interval_of(expr, TIMESTAMP_FIELD, _ticks)
        if expr is not None and shape.has_timestamp
        else UNBOUNDED
    )
    key_rows = _slice(by_key, key_range, lambda row: row.key)
    time_rows = _slice(by_time, time_range, lambda row: row.ticks)

    key_field = shape.key_field
    if order == [(key_field, False)]:
        return key_rows, True
    if order == [(key_field, True)]:
        return key_rows[::-1], True
    if [name for name, _ in order] == [TIMESTAMP_FIELD, key_field] and order[0][1] == order[1][1]:
        return (time_rows[::-1] if order[0][1] else time_rows), True
    return (key_rows if len(key_rows) <= len(time_rows) else time_rows), False


def _slice(rows: Sequence[Row], interval: Interval, key: Any) -> Sequence[Row]:
    if interval.is_unbounded():
        return rows
    start, stop = 0, len(rows)
    if interval.low is not None:
        find_low = bisect.bisect_left if interval.low_inclusive else bisect.bisect_right
        start = find_low(rows, interval.low, key=key)
    if interval.high is not None:
        find_high = bisect.bisect_right if interval.high_inclusive else bisect.bisect_left
        stop = find_high(rows, interval.high, key=key)
    return rows[start:stop] if start < stop else []


def _after(interval: Interval, key: str) -> Interval:
    if interval.low is None or interval.low < key or (interval.low == key):
        return Interval(key, False, interval.high, interval.high_inclusive)
    return interval


def _string(literal: Literal) -> str | None:
    return literal.value if literal.kind == "string" and isinstance(literal.value, str) else None


def _ticks(literal: Literal) -> int | None:
    if literal.kind == "datetimeoffset" and isinstance(literal.value, Timestamp):
        return literal.value.ticks
    return None


def _sorted(data: ResourceData, rows: list[Row], order: OrderBy) -> list[Row]:
    """Multi-key order, nulls first ascending (last descending), stable per key."""
    light = data.shape.light_fields
    if all(field in light for field, _ in order):

        def value(row: Row, field: str) -> Any:
            found = data.light(row)[field]
            return found.ticks if isinstance(found, Timestamp) else found

        keyed = [(row, {field: value(row, field) for field, _ in order}) for row in rows]
        for field, descending in reversed(order):
            keyed.sort(key=lambda item: _light_key(item[1][field]), reverse=descending)
        return [row for row, _ in keyed]
    keyed_full = [(row, data.record(row)) for row in rows]
    for field, descending in reversed(order):
        keyed_full.sort(key=lambda item: sort_key(item[1].get(field)), reverse=descending)
    return [row for row, _ in keyed_full]


def _light_key(value: Any) -> tuple[int, Any]:
    return (0, 0) if value is None else (1, value)
