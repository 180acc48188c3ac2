"""The demo's database files: marked as the demo's, and only those are ever replaced.

`demo --database FILE` starts from an empty file, so it deletes what is there. A path
typed by mistake (a real copy of the feed, someone else's SQLite file, a document) must
not be lost: the demo stamps its files with SQLite's `application_id` header field and
replaces only a file that carries it, or one with nothing in it.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from trestle_tasks.core.errors import ConfigurationError

# "TRLD" in the SQLite header's application_id (offset 68): a trestle-etl demo database.
DEMO_APPLICATION_ID = 0x54524C44
_SQLITE_MAGIC = b"SQLite format 3\x00"


def check_replaceable(path: Path) -> None:
    """Raise ConfigurationError unless `path` is absent, empty, or a demo database."""
    if not path.exists():
        return
    if path.is_dir():
        raise ConfigurationError(f"demo --database {path} is a folder: name a file")
    with path.open("rb") as handle:
        header = handle.read(100)
    if not header:
        return  # an empty file holds nothing to lose
    if not header.startswith(_SQLITE_MAGIC) or len(header) < 72:
        raise ConfigurationError(
            f"demo --database {path} exists and is not a SQLite database; the demo "
            "replaces its file, so it refuses this one: name a new file")
    if int.from_bytes(header[68:72], "big") == DEMO_APPLICATION_ID:
        return
    tables = _tables(path)
    if not tables:
        return  # a SQLite file with no table: nothing to lose either
    held = ", ".join(tables[:5]) + (", …" if len(tables) > 5 else "")
    raise ConfigurationError(
        f"demo --database {path} is a SQLite database the demo did not make (it holds "
        f"{held}); the demo replaces its file, so it refuses this one: name a new file "
        "(or delete this one yourself)")


def _tables(path: Path) -> list[str]:
    """The file's table names, read without writing to it (read-only URI)."""
    connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        return [name for (name,) in connection.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' "
            "AND name NOT LIKE 'sqlite_%' ORDER BY name")]
    except sqlite3.DatabaseError:
        return []
    finally:
        connection.close()


def create_marked(path: Path) -> None:
    """A new, empty SQLite file at `path` that says it is the demo's."""
    for stale in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        stale.unlink(missing_ok=True)
    connection = sqlite3.connect(path)
    try:
        connection.execute(f"PRAGMA application_id = {DEMO_APPLICATION_ID}")
        connection.commit()
    finally:
        connection.close()
