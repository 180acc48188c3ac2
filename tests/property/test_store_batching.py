"""Batch operation usage: N valid records take ceil(N / batch size) upsert
statements (each in its batch's transaction), counted at the driver with SQLAlchemy's
before_cursor_execute event."""

from __future__ import annotations

import math
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st

from tests.store_data import migrate_small, unique_prefix
from tests.store_fixtures import (  # noqa: F401
    StoreTarget,
    count_rows,
    module_store_target,
    statement_text,
)
from trestle_tasks.store.loader import RecordLoader

TRANSACTION_CONTROL = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE")


@pytest.fixture(scope="module")
def target(module_store_target: StoreTarget) -> StoreTarget:  # noqa: F811
    migrate_small(module_store_target)
    return module_store_target


@given(count=st.integers(0, 150), batch_size=st.integers(1, 60))
def test_n_records_take_ceil_n_over_batch_size_statements(
    target: StoreTarget, count: int, batch_size: int
) -> None:
    prefix = unique_prefix()
    batch = [{"ListingKey": f"{prefix}-{i:04d}", "ModificationTimestamp":
              "2024-05-01T10:00:00.1234567Z", "City": "Springfield", "ListPrice": i}
             for i in range(count)]
    loader = RecordLoader.open(target.engine, "Property", schema=target.schema,
                               batch_size=batch_size)
    statements: list[str] = []

    def record(conn: Any, cursor: Any, statement: str | bytes, *args: Any) -> None:
        statement = statement_text(statement)
        if not statement.lstrip().upper().startswith(TRANSACTION_CONTROL):
            statements.append(statement)

    sa.event.listen(target.engine, "before_cursor_execute", record)
    try:
        result = loader.load(batch)
    finally:
        sa.event.remove(target.engine, "before_cursor_execute", record)

    expected = math.ceil(count / batch_size)
    assert len(statements) == expected == result.statements == result.batches
    assert all(s.lstrip().upper().startswith("INSERT") for s in statements)
    assert count_rows(target, "property", f"WHERE {quote(target, 'ListingKey')} LIKE "
                      f"'{prefix}-%'") == count


def quote(target: StoreTarget, name: str) -> str:
    return target.engine.dialect.identifier_preparer.quote(name)
