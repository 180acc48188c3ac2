"""An idempotent migration is run again when another process ran the same DDL at the same
moment (store/migrate.racing_other_migrations), and only then."""

from __future__ import annotations

import pytest

from trestle_tasks.store import migrate


@pytest.mark.parametrize("message", [
    'relation "etl_field_map" already exists',
    "duplicate key value violates unique constraint",
    "tuple concurrently updated",  # PostgreSQL: CREATE OR REPLACE FUNCTION racing
    "database is locked"])
def test_a_race_with_another_migration_is_run_again(message, monkeypatch):
    monkeypatch.setattr(migrate.time, "sleep", lambda _s: None)
    calls = []

    def migration() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError(message)

    migrate.racing_other_migrations(migration)
    assert len(calls) == 2


def test_any_other_error_is_raised_at_once(monkeypatch):
    monkeypatch.setattr(migrate.time, "sleep", lambda _s: None)
    calls = []

    def migration() -> None:
        calls.append(1)
        raise RuntimeError("permission denied for schema public")

    with pytest.raises(RuntimeError, match="permission denied"):
        migrate.racing_other_migrations(migration)
    assert len(calls) == 1
