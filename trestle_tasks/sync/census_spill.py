"""A reconcile's census kept on disk, not in memory, and compared with the store there.

The census names every record of the feed: held in a dict it costs ~430 bytes a record,
2 GB for 5 M listings and over 40 GB for 100 M photos, more than the machine. So it is
written, a page at a time, to a SQLite file of its own in a temporary folder (with
`stored_versions`, streamed from the store the same way), and the comparison is made by
joins there: the process holds one census page and SQLite's page cache (CENSUS_CACHE_KB),
whatever the size of the feed. The result is the very Drift `drift.compare` makes of the
same input (a Hypothesis property checks that); keys compare as Python compares them
(SQLite's BINARY collation orders UTF-8 as code points, and a column without a declared
type converts no value).

The file is deleted when the spill is closed, and lives in TMPDIR (or `folder`): about
40 bytes a record on disk, twice (census and stored rows).
"""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from trestle_tasks.sync.drift import Drift, set_aside_rejected

CENSUS_CACHE_KB = 64 * 1024  # SQLite's page cache: the comparison's memory, at any size
_BATCH = 50_000  # stored rows written at a time


class CensusSpill:
    def __init__(self, folder: str | Path | None = None) -> None:
        self._folder = Path(tempfile.mkdtemp(prefix="trestle-census-", dir=folder))
        self._db = sqlite3.connect(self._folder / "census.sqlite3")
        for pragma in ("journal_mode=OFF", "synchronous=OFF", "temp_store=FILE",
                       f"cache_size=-{CENSUS_CACHE_KB}"):
            self._db.execute(f"PRAGMA {pragma}")
        # No declared type: SQLite converts no key (a str stays a str, an int an int).
        self._db.execute("CREATE TABLE census (key PRIMARY KEY, ticks INTEGER) WITHOUT ROWID")
        self._db.execute("CREATE TABLE stored (key PRIMARY KEY, ticks INTEGER, "
                         "deleted INTEGER NOT NULL) WITHOUT ROWID")

    def __enter__(self) -> CensusSpill:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._db.close()
        shutil.rmtree(self._folder, ignore_errors=True)

    def add(self, versions: Iterable[tuple[Any, int | None]]) -> None:
        """A census page. A key seen again keeps its last timestamp (as a dict would)."""
        with self._db:
            self._db.executemany("INSERT OR REPLACE INTO census VALUES (?, ?)", versions)

    def count(self) -> int:
        """Records in the census (one full scan: ask once)."""
        return self._scalar("SELECT count(*) FROM census")

    def get(self, key: Any) -> int | None:
        row = self._db.execute("SELECT ticks FROM census WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def versions_of(self, keys: list[Any]) -> list[tuple[Any, int | None]]:
        """(key, census timestamp) of each of `keys`, in their order (all in the census)."""
        found: dict[Any, int | None] = {}
        for start in range(0, len(keys), 500):
            chunk = keys[start:start + 500]
            marks = ",".join("?" * len(chunk))  # placeholders only: the keys are bound
            found.update(self._db.execute(
                f"SELECT key, ticks FROM census WHERE key IN ({marks})",  # noqa: S608
                chunk).fetchall())
        return [(key, found[key]) for key in keys]

    def sorted_ticks(self) -> Iterator[int]:
        """Every census timestamp (None left out), in order."""
        self._db.execute("CREATE INDEX IF NOT EXISTS census_ticks ON census (ticks)")
        for (ticks,) in self._db.execute(
                "SELECT ticks FROM census WHERE ticks IS NOT NULL ORDER BY ticks"):
            yield ticks

    def count_between(self, lower: int, upper: int) -> int:
        """Census records with lower < ticks <= upper (after sorted_ticks: by its index)."""
        return self._scalar_of("SELECT count(*) FROM census WHERE ticks > ? AND ticks <= ?",
                               (lower, upper))

    def compare(self, stored: Iterable[tuple[Any, int | None, bool]],
                rejected: Mapping[Any, int | None] | None = None) -> Drift:
        """drift.compare(census, stored, rejected), made on disk."""
        self._load_stored(stored)
        drift = Drift(census=self.count(),
                      stored=self._scalar("SELECT count(*) FROM stored WHERE NOT deleted"))
        drift.gone = self._keys(
            "SELECT s.key FROM stored s WHERE NOT s.deleted AND NOT EXISTS "
            "(SELECT 1 FROM census c WHERE c.key = s.key) ORDER BY s.key")
        drift.restored = self._keys(
            "SELECT s.key FROM stored s JOIN census c ON c.key = s.key WHERE s.deleted "
            "ORDER BY s.key")
        # newer(): the feed's timestamp is known and the stored one is not, or is older.
        drift.stale = self._keys(
            "SELECT s.key FROM stored s JOIN census c ON c.key = s.key WHERE NOT s.deleted "
            "AND c.ticks IS NOT NULL AND (s.ticks IS NULL OR c.ticks > s.ticks) "
            "ORDER BY s.key")
        drift.newer_in_store = self._scalar(
            "SELECT count(*) FROM stored s JOIN census c ON c.key = s.key WHERE NOT s.deleted "
            "AND s.ticks IS NOT NULL AND (c.ticks IS NULL OR s.ticks > c.ticks)")
        drift.missing = self._keys(
            "SELECT c.key FROM census c WHERE NOT EXISTS "
            "(SELECT 1 FROM stored s WHERE s.key = c.key) ORDER BY c.key")
        if rejected:
            set_aside_rejected(drift, self, rejected)
        return drift

    def _load_stored(self, stored: Iterable[tuple[Any, int | None, bool]]) -> None:
        batch: list[tuple[Any, int | None, int]] = []
        with self._db:
            self._db.execute("DELETE FROM stored")
            for key, ticks, deleted in stored:
                batch.append((key, ticks, 1 if deleted else 0))
                if len(batch) >= _BATCH:
                    self._db.executemany("INSERT OR REPLACE INTO stored VALUES (?, ?, ?)",
                                         batch)
                    batch.clear()
            self._db.executemany("INSERT OR REPLACE INTO stored VALUES (?, ?, ?)", batch)

    def _keys(self, sql: str) -> list[Any]:
        return [key for (key,) in self._db.execute(sql)]

    def _scalar(self, sql: str) -> int:
        return self._scalar_of(sql, ())

    def _scalar_of(self, sql: str, parameters: tuple[Any, ...]) -> int:
        return int(self._db.execute(sql, parameters).fetchone()[0])
