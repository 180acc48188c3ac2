"""Watermark order and secret redaction (no database)."""

from __future__ import annotations

import pickle

from trestle_tasks.errors import SchemaMismatchError, StoreUnavailableError
from trestle_tasks.store.journal import Watermark, redact


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
