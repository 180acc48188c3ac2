"""RESO names to SQL identifiers: deterministic, collision-free, traceable.

A RESO field name is kept as the column name whenever it is a plain identifier that every
target accepts unquoted-or-quoted alike: ASCII letters, digits and underscores, not starting
with a digit, at most 63 characters (PostgreSQL's limit is 63 bytes, one below MySQL's 64,
and the same table must work on both). Anything else — too long, non-ASCII, punctuation,
or equal to a name already taken when case is ignored (MySQL and SQLite compare column
names case-insensitively) — gets `<ascii-folded prefix>_<10 hex digits of SHA-256>`, which
depends only on the name. Names already assigned never change: the assignment is persisted
in `etl_field_map`, and new names are fitted around it.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable, Mapping

MAX_IDENTIFIER = 63
_HASH_DIGITS = 10
_PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_NOT_WORD = re.compile(r"[^A-Za-z0-9_]+")

# Columns the store adds to every resource table. A field with one of these names (in any
# case) gets a hashed column name instead, so a feed can never overwrite bookkeeping.
RECORD_COLUMN = "etl_record"  # the complete record as JSON text
VERSION_COLUMN = "etl_mod_ticks"  # ModificationTimestamp in 100 ns ticks: the upsert guard
DELETED_COLUMN = "deleted_at"  # soft delete, set by reconcile, cleared by an upsert
LOADED_COLUMN = "etl_loaded_at"  # when this version of the row was written
SHAPE_COLUMN = "etl_shape"  # the record's keys, when its nulls are left out (shapes.py)
RESERVED_COLUMNS: tuple[str, ...] = (RECORD_COLUMN, VERSION_COLUMN, DELETED_COLUMN, LOADED_COLUMN,
                                     SHAPE_COLUMN)

# Bookkeeping tables; resource tables may not take these names.
RESERVED_TABLES: tuple[str, ...] = (
    "etl_resource", "etl_field_map", "etl_sync_log", "etl_sync_window", "etl_watermark",
    "etl_rejects", "etl_run_lock", "etl_owner", "etl_record_shape",
)


def is_plain_identifier(name: str) -> bool:
    """True when `name` can be used as a column name on every target as it is."""
    return len(name) <= MAX_IDENTIFIER and _PLAIN.match(name) is not None


def hashed_identifier(name: str, attempt: int = 0) -> str:
    """`<folded prefix>_<hash>`: at most 63 ASCII characters, a function of `name` only.

    `attempt` salts the hash; it is only ever non-zero after a (practically impossible)
    collision between two hashed names.
    """
    folded = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    prefix = _NOT_WORD.sub("_", folded).strip("_")
    if not prefix or prefix[0].isdigit():
        prefix = f"f_{prefix}".rstrip("_")
    salt = f"\x00{attempt}" if attempt else ""
    digest = hashlib.sha256(
        (name + salt).encode("utf-8", "surrogatepass")
    ).hexdigest()[:_HASH_DIGITS]
    return f"{prefix[: MAX_IDENTIFIER - _HASH_DIGITS - 1]}_{digest}"


def assign_column_names(
    names: Iterable[str],
    taken: Mapping[str, str] | None = None,
    reserved: Iterable[str] = RESERVED_COLUMNS,
) -> dict[str, str]:
    """Column names for `names`, fitted around the assignments already in `taken`.

    Returns the full mapping (`taken` plus the new names). Deterministic: the same `taken`
    and the same names in the same order always give the same result; a name in `taken`
    keeps its column. No two columns are equal when case is ignored, and none equals a
    reserved column.
    """
    mapping = dict(taken or {})
    used = {column.lower() for column in mapping.values()}
    used.update(r.lower() for r in reserved)
    for name in names:
        if name in mapping:
            continue
        candidate = name if is_plain_identifier(name) else hashed_identifier(name)
        attempt = 0
        while candidate.lower() in used:
            attempt += 1
            candidate = hashed_identifier(name, attempt - 1)
        mapping[name] = candidate
        used.add(candidate.lower())
    return mapping


_CAMEL_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


def table_name(resource: str, prefix: str = "") -> str:
    """`OpenHouse` -> `open_house`, `OUID` -> `ouid`: snake case, the tables' names."""
    snake = _CAMEL_BOUNDARY.sub("_", resource).lower()
    name = f"{prefix}{snake}"
    if not is_plain_identifier(name) or name in RESERVED_TABLES:
        name = hashed_identifier(name).lower()
    return name
