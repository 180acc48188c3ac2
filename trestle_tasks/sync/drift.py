"""Comparing the feed's census with the store: what differs, and what repairs it (pure).

The census is every (key, ModificationTimestamp) the feed holds; the store gives (key,
stored timestamp, deleted) for every row it has. Four kinds of difference follow:

- missing: in the feed, not stored at all — a record that arrived below the watermark
  (made visible, an office joining the feed, a late commit);
- restored: in the feed, stored but marked deleted — it came back;
- stale: in both, the feed's timestamp newer than the stored one — a change that arrived
  below the watermark;
- gone: stored live, not in the feed — it left the feed.

Missing, restored and stale records are fetched again; gone ones are marked deleted. A
stored copy *newer* than the feed's is left alone (an older version never overwrites a
newer one) and only counted. So is a record whose current version in the feed already
failed validation (it is in etl_rejects with that very timestamp): fetching it again would
only reject it again, every day; it counts as `rejected` until the feed changes it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass
class Drift:
    census: int = 0
    stored: int = 0  # live rows before the repair
    missing: list[Any] = field(default_factory=list)
    restored: list[Any] = field(default_factory=list)
    stale: list[Any] = field(default_factory=list)
    gone: list[Any] = field(default_factory=list)
    rejected: list[Any] = field(default_factory=list)  # this version already failed validation
    newer_in_store: int = 0

    @property
    def to_fetch(self) -> list[Any]:
        """Keys whose current version must be fetched, in a stable order."""
        return sorted({*self.missing, *self.restored, *self.stale})

    @property
    def total(self) -> int:
        """Records that differ (what the drift alert compares with its threshold)."""
        return len(self.missing) + len(self.restored) + len(self.stale) + len(self.gone)


def newer(feed_ticks: int | None, stored_ticks: int | None) -> bool:
    """The feed's version is newer than the stored one. A stored row without a timestamp
    is replaced by any version that has one (the upsert guard agrees)."""
    if feed_ticks is None:
        return False
    return stored_ticks is None or feed_ticks > stored_ticks


def compare(census: Mapping[Any, int | None],
            stored: Iterable[tuple[Any, int | None, bool]],
            rejected: Mapping[Any, int | None] | None = None) -> Drift:
    """The differences between the feed's census and the stored rows.

    `stored` is streamed once; only the census is held in memory (one entry per record).
    `rejected` gives the timestamp of each record's version that failed validation.
    """
    drift = Drift(census=len(census))
    seen: set[Any] = set()
    for key, stored_ticks, deleted in stored:
        if not deleted:
            drift.stored += 1
        if key not in census:
            if not deleted:
                drift.gone.append(key)
            continue
        seen.add(key)
        feed_ticks = census[key]
        if deleted:
            drift.restored.append(key)
        elif newer(feed_ticks, stored_ticks):
            drift.stale.append(key)
        elif stored_ticks is not None and (feed_ticks is None or stored_ticks > feed_ticks):
            drift.newer_in_store += 1
    drift.missing = sorted(key for key in census if key not in seen)
    if rejected:
        set_aside_rejected(drift, census, rejected)
    return drift


class CensusLookup(Protocol):
    def get(self, key: Any) -> int | None: ...


def set_aside_rejected(drift: Drift, census: CensusLookup,
                       rejected: Mapping[Any, int | None]) -> None:
    """Move out of missing, restored and stale the records whose census version is the
    one that already failed validation (`census`: the census, or its spill)."""
    def known(key: Any) -> bool:
        if key not in rejected:
            return False
        ticks = census.get(key)
        return ticks is not None and rejected[key] == ticks

    for kind in (drift.missing, drift.restored, drift.stale):
        drift.rejected.extend(key for key in kind if known(key))
        kind[:] = [key for key in kind if not known(key)]
    drift.rejected.sort()
