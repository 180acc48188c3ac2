"""SQL column types that behave the same on MySQL/MariaDB, PostgreSQL and SQLite.

Each type here picks its concrete form when a table is compiled for a dialect, so one
table definition serves all three targets:

- `UTCDateTime`: DATETIME(6) on MySQL (which has no offsets: the value is UTC by
  convention), TIMESTAMP(6) WITH TIME ZONE on PostgreSQL, ISO text on SQLite. Python sees
  aware UTC datetimes both ways.
- `KeyString`: a VARCHAR whose comparisons are exact. MySQL's default collations ignore
  case and trailing spaces, so `abc`, `ABC` and `abc ` would be one primary key there;
  the key column uses a binary NO PAD collation instead (MariaDB `utf8mb4_nopad_bin`,
  MySQL 8 `utf8mb4_0900_bin`), matching Python's string equality used to collapse
  duplicates.
- `LongText`: LONGTEXT on MySQL (TEXT there stops at 64 KB), TEXT elsewhere. It holds the
  JSON document: not MySQL's JSON type, which stores numbers as doubles and would round
  decimals.
- `ExactDecimal`: DECIMAL(p,s); on SQLite the value is bound as text so SQLite's NUMERIC
  affinity decides, instead of SQLAlchemy converting through a float first.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine

if TYPE_CHECKING:
    from sqlalchemy.dialects.sqlite import Insert as SQLiteInsert


def flavour(dialect: Dialect) -> str:
    """"mariadb", "mysql", "postgresql" or "sqlite"."""
    if dialect.name in ("mysql", "mariadb"):
        return "mariadb" if getattr(dialect, "is_mariadb", False) else "mysql"
    return dialect.name


def is_mysql(dialect: Dialect) -> bool:
    return dialect.name in ("mysql", "mariadb")


def on_conflict_insert(table: sa.Table, dialect: Dialect) -> postgresql.Insert | SQLiteInsert:
    """An INSERT into `table` that takes ON CONFLICT clauses: PostgreSQL's, else SQLite's
    (MySQL and MariaDB have ON DUPLICATE KEY UPDATE instead)."""
    if dialect.name == "postgresql":
        return postgresql.insert(table)
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(table)


class UTCDateTime(TypeDecorator[datetime]):
    impl = sa.DateTime
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if is_mysql(dialect):
            return dialect.type_descriptor(mysql.DATETIME(fsp=6))
        if dialect.name == "postgresql":
            return dialect.type_descriptor(postgresql.TIMESTAMP(timezone=True, precision=6))
        return dialect.type_descriptor(sa.DateTime())

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return value if dialect.name == "postgresql" else value.replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):  # SQLite without the DateTime processor (raw SQL)
            value = datetime.fromisoformat(value)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class KeyString(TypeDecorator[str]):
    impl = sa.String
    cache_ok = True

    def __init__(self, length: int) -> None:
        super().__init__(length)
        self.length = length

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        length = self.length
        if is_mysql(dialect):
            collation = "utf8mb4_nopad_bin" if flavour(dialect) == "mariadb" else "utf8mb4_0900_bin"
            return dialect.type_descriptor(
                mysql.VARCHAR(length, charset="utf8mb4", collation=collation)
            )
        if dialect.name == "postgresql":
            # "C": byte order, the same as code-point order and as MySQL's binary collation.
            return dialect.type_descriptor(sa.String(length, collation="C"))
        return dialect.type_descriptor(sa.String(length))


class LongText(TypeDecorator[str]):
    impl = sa.Text
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if is_mysql(dialect):
            return dialect.type_descriptor(mysql.LONGTEXT(charset="utf8mb4"))
        return dialect.type_descriptor(sa.Text())


class MediumString(TypeDecorator[str]):
    """Text up to a declared length too long to index: TEXT/MEDIUMTEXT on MySQL by size."""

    impl = sa.Text
    cache_ok = True

    def __init__(self, length: int) -> None:
        super().__init__()
        self.length = length

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if is_mysql(dialect):
            # TEXT holds 65,535 bytes: 16,383 four-byte characters.
            kind = mysql.TEXT if self.length <= 16_383 else mysql.MEDIUMTEXT
            return dialect.type_descriptor(kind(charset="utf8mb4"))
        return dialect.type_descriptor(sa.Text())


class ExactDecimal(TypeDecorator[Decimal]):
    impl = sa.Numeric
    cache_ok = True

    def __init__(self, precision: int | None, scale: int | None) -> None:
        super().__init__()
        self.precision = precision
        self.scale = scale

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(_SQLiteNumeric())
        if dialect.name == "postgresql" and self.precision is None:
            return dialect.type_descriptor(sa.Numeric(asdecimal=True))
        precision = self.precision if self.precision is not None else 65
        scale = self.scale if self.scale is not None else 30
        if is_mysql(dialect):
            precision, scale = min(precision, 65), min(scale, 30, precision)
        return dialect.type_descriptor(sa.Numeric(precision, scale, asdecimal=True))

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is not None and dialect.name == "sqlite":
            return str(value)
        return value


class _SQLiteNumeric(sa.types.UserDefinedType[Any]):
    """NUMERIC affinity without SQLAlchemy's float conversion."""

    cache_ok = True

    def get_col_spec(self, **kw: Any) -> str:
        return "NUMERIC"
