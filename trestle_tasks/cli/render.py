"""Command results in words, for people reading a terminal (the data stays in the objects)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from trestle_tasks.core.wording import count
from trestle_tasks.store.migrate import MigrationReport

_LISTED = 8  # names shown before "and N more"


def _names(names: Iterable[str]) -> str:
    names = list(names)
    shown = ", ".join(names[:_LISTED])
    return shown if len(names) <= _LISTED else f"{shown} and {len(names) - _LISTED} more"


def _per_table(changes: Mapping[str, list[str]], what: str, noun: str) -> list[str]:
    return [f"  {table}: {what} {count(len(names), noun)}: {_names(names)}"
            for table, names in sorted(changes.items()) if names]


def describe_migration(report: MigrationReport) -> list[str]:
    """What `migrate` created and changed, one line per table and kind of change."""
    if not report.changed:
        lines = ["Nothing to change: the tables already match $metadata."]
    else:
        lines = ["Changes:"]
        if report.created_tables:
            lines.append(f"  created {count(len(report.created_tables), 'table')}: "
                         f"{_names(report.created_tables)}")
        lines += _per_table(report.added_columns, "added", "typed column")
        lines += _per_table(report.added_indexes, "added", "index")
        lines += _per_table(report.dropped_columns, "dropped (values stay in the record "
                            "document)", "typed column")
        lines += _per_table(report.new_fields, "$metadata declares", "new field")
        lines += _per_table(report.undeclared_fields, "$metadata no longer declares",
                            "field")
        lines += [f"  {table}: filled the new columns of {count(rows, 'stored row')}"
                  for table, rows in sorted(report.backfilled_rows.items()) if rows]
    lines += _per_table(report.document_only, "kept in the record document only (no room "
                        "for a column)", "field")
    if report.views:
        lines.append(f"Views (rebuilt every time): {_names(report.views)}")
    # Every one, not the first few: a user looking for a field's column must find it here
    # (or in etl_field_map.view_column).
    for view, renamed in sorted(report.renamed_view_columns.items()):
        lines.append(f"  {view}: {count(len(renamed), 'field')} under another column name "
                     "(too long, punctuation, or a case twin): "
                     + ", ".join(f"{name!r} as {column}" for name, column in renamed.items()))
    if report.missing_resources:
        lines.append(f"Not in $metadata (no table): {_names(report.missing_resources)}")
    return lines
