"""Sorted views of generated rows made from ordinals: millions of rows at a few bytes each.

The regular index (`ResourceData`) keeps a `Row` object per record, about 300 bytes with its
dict entry and sorted views: 25 million Media rows would take 7 GB. A generated resource
needs none of that, because its keys and timestamps are functions of ordinals the plan
already holds. Here the rows of a resource are *groups* laid end to end (a listing's photo
set: every Media row of a listing shares its timestamp; one Property record is a group of
one), each order is an array of group ordinals, and a `Row` is made when a page touches it.
The first write through the control API gives the resource its regular index
(`ResourceData.rows`), which costs what the regular index costs.
"""

from __future__ import annotations

import bisect
from array import array
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, overload

from .dataset import Record, ResourceData, ResourceShape, Row

RowAt = Callable[[int, int], Row]  # (group ordinal, sequence in the group) -> Row


class GroupOrder:
    """Groups in one order, each `sizes[group]` rows long: position -> (group, sequence)."""

    def __init__(self, groups: Iterable[int], sizes: Sequence[int] | None = None) -> None:
        self.groups = array("l", groups)
        self.starts: array[int] | None = None  # None: every group is one row
        if sizes is None:
            self.total = len(self.groups)
            return
        self.starts = array("q")
        running = 0
        for group in self.groups:
            self.starts.append(running)
            running += sizes[group]
        self.total = running

    def locate(self, position: int) -> tuple[int, int]:
        if self.starts is None:
            return self.groups[position], 0
        index = bisect.bisect_right(self.starts, position) - 1
        return self.groups[index], position - self.starts[index]


class OrderedRows(Sequence[Row]):
    """The rows at some positions of a `GroupOrder`, made on access. Slicing (the engine
    slices by bisection, and reverses for descending pages) gives another view, not a copy."""

    __slots__ = ("_order", "_positions", "_row_at")

    def __init__(self, order: GroupOrder, row_at: RowAt, positions: range | None = None) -> None:
        self._order = order
        self._row_at = row_at
        self._positions = range(order.total) if positions is None else positions

    def __len__(self) -> int:
        return len(self._positions)

    @overload
    def __getitem__(self, index: int) -> Row: ...

    @overload
    def __getitem__(self, index: slice) -> OrderedRows: ...

    def __getitem__(self, index: int | slice) -> Row | OrderedRows:
        if isinstance(index, slice):
            return OrderedRows(self._order, self._row_at, self._positions[index])
        return self._row_at(*self._order.locate(self._positions[index]))

    def __iter__(self) -> Iterator[Row]:
        locate, row_at = self._order.locate, self._row_at
        return (row_at(*locate(position)) for position in self._positions)


class CompactResourceData(ResourceData):
    """A generated resource indexed by ordinals until its first write.

    `find` and `children_of` answer lookups by key and by parent key without an index;
    `load` builds the regular index (every row) when a write needs it.
    """

    def __init__(
        self,
        shape: ResourceShape,
        generate: Callable[[Any], Record],
        load: Callable[[], Iterable[Row]],
        *,
        by_key: GroupOrder,
        by_time: GroupOrder,
        row_at: RowAt,
        find: Callable[[str], Row | None],
        children_of: Callable[[str], list[Row]] | None = None,
    ) -> None:
        super().__init__(shape, generate, load)
        self._compact_views = (OrderedRows(by_key, row_at), OrderedRows(by_time, row_at))
        self._find = find
        self._children_of = children_of

    @property
    def compact(self) -> bool:
        """Still answered from ordinals (no write has built the regular index)."""
        return self._rows is None

    def __len__(self) -> int:
        if self.compact:
            return len(self._compact_views[0])
        return super().__len__()

    def get(self, key: str) -> Row | None:
        if self.compact:
            return self._find(key)
        return super().get(key)

    def views(self) -> tuple[Sequence[Row], Sequence[Row]]:
        if self.compact:
            return self._compact_views
        return super().views()

    def children(self, parent: str) -> list[Row]:
        if self.compact and self._children_of is not None:
            return self._children_of(parent)
        return super().children(parent)
