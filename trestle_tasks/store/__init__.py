"""The database side: schema from `$metadata`, record validation, guarded batched upserts,
the sync log and watermarks, and export. No HTTP, no Celery; `Store` is the entry point."""
