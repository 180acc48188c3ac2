"""What a run is made of: its plan and its windows, as plain values.

They turn into JSON and back losslessly (the plan's header travels in each window's
Celery message and is kept in the run's sync-log row) and carry nothing secret: resource
names, run ids, tick counts and a lock's fencing token.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

from trestle_tasks.core.timestamps import ODataTimestamp


@dataclass(frozen=True)
class Window:
    """Records with lower < ModificationTimestamp <= upper (lower None: from the start).

    `lanes` are inner boundaries (strictly increasing, inside the window) where its range is
    cut into stretches walked at once (sync/window_cuts.py); empty: one walk.
    """

    index: int
    lower_ticks: int | None
    upper_ticks: int
    expected: int | None = None
    lanes: tuple[int, ...] = ()

    @property
    def window_id(self) -> str:
        return f"w{self.index:05d}"

    def describe(self) -> str:
        lower = ODataTimestamp(self.lower_ticks).to_odata() if self.lower_ticks else "start"
        text = f"({lower}, {ODataTimestamp(self.upper_ticks).to_odata()}]"
        return f"{text} in {len(self.lanes) + 1} lanes" if self.lanes else text

    def lane_bounds(self) -> list[tuple[int | None, int]]:
        """(lower, upper] of each lane, in order: together exactly the window's range."""
        lowers: list[int | None] = [self.lower_ticks, *self.lanes]
        return list(zip(lowers, [*self.lanes, self.upper_ticks], strict=True))

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["lanes"] = list(self.lanes)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Window:
        values = dict(data)
        values["lanes"] = tuple(data.get("lanes") or ())
        return cls(**values)


@dataclass(frozen=True)
class RunPlan:
    run_id: str
    resource: str
    key_field: str
    lower_ticks: int | None  # the watermark the run starts from (None: a full load)
    upper_ticks: int  # fixed when the run is planned; later changes belong to the next run
    windows: tuple[Window, ...]
    lock_name: str
    lock_owner: str
    fence: int
    planning_requests: int = 0
    full: bool = False
    notes: tuple[str, ...] = field(default=())
    attempt: int = 1  # a run retried as a whole after a transient failure counts up
    feed: str = "default"  # the feed (TRESTLE_FEEDS) whose tables and credential it uses
    # Secondary indexes dropped for this first load: the finalize builds them.
    deferred_indexes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["windows"] = [w.to_dict() for w in self.windows]
        data["notes"] = list(self.notes)
        data["deferred_indexes"] = list(self.deferred_indexes)
        return data

    def header(self) -> dict[str, Any]:
        """Everything but the windows: a constant size, whatever the run's length. A window
        message carries this and its own window; the windows live in etl_sync_window."""
        data = self.to_dict()
        del data["windows"]
        return data

    @classmethod
    def from_header(cls, header: dict[str, Any], windows: tuple[Window, ...] = ()) -> RunPlan:
        return cls.from_dict({**header, "windows": [w.to_dict() for w in windows]})

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunPlan:
        values = dict(data)
        values["windows"] = tuple(Window.from_dict(w) for w in data["windows"])
        values["notes"] = tuple(data.get("notes", ()))
        values["deferred_indexes"] = tuple(data.get("deferred_indexes", ()))
        return cls(**values)


@dataclass(frozen=True)
class WindowOutcome:
    window_id: str
    index: int
    status: str  # "succeeded" or "failed"
    fetched: int = 0
    upserted: int = 0  # records_upserted: given to the guarded upsert
    rejected: int = 0
    requests: int = 0
    seconds: float = 0.0
    error: str | None = None
    retriable: bool = False
    media_listings: int = 0  # listings whose photo set was fetched again
    media_removed: int = 0
    media_incomplete: int = 0
    retries: int = 0
    rate_limited: int = 0  # 429s received
    media_refetched: int = 0  # short inline photo sets asked for again
    pages: int = 0
    db_seconds: float = 0.0  # time spent loading into the database
    error_kind: str | None = None  # the error's class, e.g. BadCredentialsError, for alerts

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WindowOutcome:
        values = dict(data)
        if "loaded" in values:  # outcomes written before the field took its column's name
            values["upserted"] = values.pop("loaded")
        return cls(**values)


def new_run_id() -> str:
    """Sortable by start time, unique without coordination."""
    return f"{ODataTimestamp.now().to_datetime():%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
