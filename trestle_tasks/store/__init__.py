"""The database side: schema from `$metadata`, record validation, guarded batched upserts,
the sync log and watermarks, and export. No HTTP, no Celery; `Store` is the entry point."""

# Importing any part of the store registers how database errors are read (retriable or
# not) with trestle_tasks.core.errors, which imports nothing above it.
from trestle_tasks.store import dberrors as _dberrors  # noqa: F401
