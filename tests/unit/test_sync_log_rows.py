"""Watermark order and secret redaction (no database)."""

from __future__ import annotations

import pickle

from trestle_tasks.core.errors import SchemaMismatchError, StoreUnavailableError
from trestle_tasks.store.sync_log import Watermark, redact


def test_watermarks_order_by_ticks_then_key() -> None:
    a = Watermark.parse("2024-01-01T00:00:00.0000001Z")
    assert Watermark.parse("2024-01-01T00:00:00Z") < a < Watermark(a.ticks, "A")
    assert Watermark(a.ticks, "A") < Watermark(a.ticks, "B") < Watermark(a.ticks + 1)
    assert a.text == "2024-01-01T00:00:00.0000001Z"
    assert Watermark.parse("2023-12-31T19:00:00.0000001-05:00") == a


def test_redact() -> None:
    text = redact("mysql+pymysql://etl:pa%20ss@db:3306/x Bearer eyJ.abc "
                  "client_secret=xyz&scope=api password: 'hunter2'")
    assert text is not None
    for secret in ("pa%20ss", "eyJ.abc", "xyz", "hunter2"):
        assert secret not in text
    assert redact(None) is None


def test_store_errors_pickle_with_details() -> None:
    for error in (StoreUnavailableError("db down", attempts=3),
                  SchemaMismatchError("run migrate", resource="Media")):
        clone = pickle.loads(pickle.dumps(error))
        assert type(clone) is type(error) and clone.details == error.details
        assert str(clone) == str(error)


def test_peak_in_flight_counts_overlapping_windows():
    from datetime import UTC, datetime, timedelta

    from trestle_tasks.store.sync_log import SyncWindow, peak_in_flight

    start = datetime(2026, 11, 26, tzinfo=UTC)

    def window(begin: int, end: int | None) -> SyncWindow:
        return SyncWindow("r", "Property", f"w{begin}", "succeeded", 1,
                          start + timedelta(seconds=begin),
                          None if end is None else start + timedelta(seconds=end),
                          0, 0, 0, 0, 0, None)

    assert peak_in_flight([]) == 0
    assert peak_in_flight([window(0, 10), window(5, 15), window(12, 20)]) == 2
    assert peak_in_flight(iter([window(0, 10), window(1, 9), window(2, None)])) == 3
    assert peak_in_flight([window(0, 5), window(5, 10)]) == 1  # one ends as the next starts
