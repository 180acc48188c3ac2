"""Batched, guarded upserts of one resource's records.

For each batch (`batch_size` records):

1. every record is validated and turned into a row (transform.py); bad records become
   rejections and the rest go on;
2. duplicates of one key collapse to the newest by ModificationTimestamp (the later one on
   a tie, matching the guard below);
3. rows are sorted by key, so concurrent batches take row locks in the same order;
4. one transaction: one multi-row upsert per statement chunk (normally the whole batch
   is one statement), the rejects, newly seen undeclared fields, and — when a run is
   given — the run's counters, so counts commit with the rows they count. Rolled back
   whole on any error; connection loss and deadlocks retry the transaction with backoff.

The guard, decided inside the statement so concurrent windows cannot race: a stored row is
replaced only when the incoming ModificationTimestamp (exact ticks) is newer or equal, or
the stored one is unknown. Equal wins so that a redelivered window rewrites the same data
idempotently. On MySQL the version column is assigned last: assignments in ON DUPLICATE
KEY UPDATE run left to right and later ones see the values assigned before them.

Statements are split below one batch only when a limit requires it: MySQL's
max_allowed_packet (wide records are ~190 KB of JSON each), or PostgreSQL's 65,535 and
SQLite's 32,766 bind parameters.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import re
import threading
import weakref
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from trestle_tasks.core.errors import StoreError
from trestle_tasks.core.retry import RetryPolicy
from trestle_tasks.store.catalog import read_catalog, track_undeclared, upsert_rows
from trestle_tasks.store.dberrors import (
    DEFAULT_DB_RETRY,
    classify,
    describe,
    in_transaction,
)
from trestle_tasks.store.jsontext import encode_json
from trestle_tasks.store.literal_sql import LiteralUpsert, server_wants_no_backslash
from trestle_tasks.store.naming import VERSION_COLUMN
from trestle_tasks.store.schema import ResourceLayout, bookkeeping
from trestle_tasks.store.transform import (
    DATABASE_REFUSED,
    TOO_LONG,
    PreparedRow,
    RecordTransformer,
    Rejection,
)
from trestle_tasks.store.types import is_mysql, on_conflict_insert

log = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 1000
# Bytes per row besides the document: other columns, separators, the ON DUPLICATE clause.
_ROW_OVERHEAD = 2048
# Bind-parameter ceilings: PostgreSQL's wire protocol (int16 count), SQLite >= 3.32.
_PARAMETER_LIMIT = {"postgresql": 65_535, "sqlite": 32_766}
_UNBOUNDED_STATEMENT_BYTES = 64 * 1024 * 1024
_DETAIL_CHARS = 2000
_COMPILED_KEEP = 16  # compiled statements kept per loader (full batches, and remainders)


@dataclass
class LoadResult:
    """What one `load` call did. `upserted` (the sync log's records_upserted) counts
    distinct records given to the guarded upsert: a record older than the stored version
    is among them, and correctly lost."""

    received: int = 0
    upserted: int = 0
    rejected: int = 0
    duplicates: int = 0
    batches: int = 0
    statements: int = 0
    undeclared_fields: tuple[str, ...] = ()
    rejections: list[Rejection] = field(default_factory=list)

    def __iadd__(self, other: LoadResult) -> LoadResult:
        self.received += other.received
        self.upserted += other.upserted
        self.rejected += other.rejected
        self.duplicates += other.duplicates
        self.batches += other.batches
        self.statements += other.statements
        self.undeclared_fields = tuple(dict.fromkeys(
            self.undeclared_fields + other.undeclared_fields))
        self.rejections.extend(other.rejections)
        return self


# --- statements ------------------------------------------------------------------------


def guard_condition(table: sa.Table, incoming: Any) -> sa.ColumnElement[bool]:
    """Replace the stored row when the incoming version is newer or equal, or the stored
    one has no ModificationTimestamp; a record without one never replaces one with it."""
    stored = table.c[VERSION_COLUMN]
    return sa.or_(stored.is_(None), sa.and_(incoming.is_not(None), incoming >= stored))


def guarded_assignments(layout: ResourceLayout, new: Any, columns: Sequence[str]
                        ) -> list[tuple[str, Any]]:
    """ON DUPLICATE KEY UPDATE assignments (MySQL) for `columns`; `new` is the insert's
    `inserted` namespace (VALUES(col) on MariaDB, the row alias on MySQL 8)."""
    table = layout.table
    key = layout.key_column
    updated = [c for c in columns if c != key and c != VERSION_COLUMN]
    if layout.version_field is None:
        return [(c, new[c]) for c in [*updated, VERSION_COLUMN]]
    guard = guard_condition(table, new[VERSION_COLUMN])
    assignments = [(c, sa.func.IF(guard, new[c], table.c[c])) for c in updated]
    # Last: assignments run left to right and see values already assigned, so the
    # guard must read the stored version until everything else is decided. (With
    # `>=` an early update would happen to be harmless; a stricter guard would not.)
    assignments.append((VERSION_COLUMN, sa.func.IF(guard, new[VERSION_COLUMN],
                                                   table.c[VERSION_COLUMN])))
    return assignments


def upsert_statement(layout: ResourceLayout, rows: Sequence[dict[str, Any]],
                     dialect: sa.engine.Dialect) -> sa.Insert:
    """One multi-row guarded upsert of `rows` (column -> value dicts) for this dialect."""
    table = layout.table
    columns = list(rows[0])
    if is_mysql(dialect):
        from sqlalchemy.dialects.mysql import insert as mysql_insert

        stmt = mysql_insert(table).values(list(rows))
        return stmt.on_duplicate_key_update(guarded_assignments(layout, stmt.inserted, columns))

    insert = on_conflict_insert(table, dialect).values(list(rows))
    excluded = insert.excluded
    key = layout.key_column
    set_ = {c: excluded[c] for c in columns if c != key}
    where = None
    if layout.version_field is not None:
        where = guard_condition(table, excluded[VERSION_COLUMN])
    return insert.on_conflict_do_update(index_elements=[table.c[key]], set_=set_, where=where)


class CompiledUpsert:
    """A multi-row upsert for `rows` rows of `columns`, compiled once and reused.

    SQLAlchemy does not cache multi-VALUES statements, and compiling one with thousands of
    parameters costs more than sending it; the loader keeps the SQL text and runs each
    column's bind processor itself, then executes through the same Connection.
    """

    def __init__(self, layout: ResourceLayout, rows: int, columns: Sequence[str],
                 dialect: sa.engine.Dialect) -> None:
        table = layout.table
        template = [{c: sa.bindparam(f"v{i}_{j}", type_=table.c[c].type)
                     for j, c in enumerate(columns)} for i in range(rows)]
        compiled = upsert_statement(layout, template, dialect).compile(dialect=dialect)
        self.sql = compiled.string
        self.columns = list(columns)
        self.positional = bool(compiled.positional)
        where = {f"v{i}_{j}": (i, c) for i in range(rows) for j, c in enumerate(columns)}
        names = list(compiled.positiontup or []) if self.positional else list(where)
        self._order = [(where[name], name) for name in names]
        processors = {c: table.c[c].type.bind_processor(dialect) for c in columns}
        self._processors = {c: p for c, p in processors.items() if p is not None}

    def parameters(self, rows: Sequence[dict[str, Any]]) -> Any:
        processors = self._processors
        if processors:
            rows = [{c: (processors[c](v) if c in processors else v) for c, v in row.items()}
                    for row in rows]
        if self.positional:
            return tuple(rows[i][c] for (i, c), _name in self._order)
        return {name: rows[i][c] for (i, c), name in self._order}

    def execute(self, conn: sa.Connection, rows: Sequence[dict[str, Any]]) -> None:
        conn.exec_driver_sql(self.sql, self.parameters(rows))


_NAMED_PARAMETER = re.compile(r"%\((v(\d+)_(\d+))\)s")


def _positional(sql: str, columns: Sequence[str]) -> tuple[str, list[tuple[int, str]]]:
    """`%(vI_J)s` parameters as `%s`, and the (row, column) of each in order."""
    order = [(int(row), columns[int(column)])
             for _name, row, column in _NAMED_PARAMETER.findall(sql)]
    return _NAMED_PARAMETER.sub("%s", sql), order


class RepeatedUpsert:
    """The same statement as CompiledUpsert for any number of rows, without compiling it.

    A window's last page has a row count of its own, and compiling a multi-row upsert
    costs about 0.13 s per 1,000 rows (more than sending it): every window paid one. With
    positional parameters (PyMySQL, SQLite) the statement for n rows is the one-row
    statement with its VALUES group repeated, so the text is cut once from the one- and
    two-row compilations and repeated; `template` returns None for any statement that is
    not exactly that shape, and the loader compiles as before.
    """

    def __init__(self, head: str, repeat: str, tail: str, columns: Sequence[str],
                 processors: dict[str, Any], literal: LiteralUpsert | None = None) -> None:
        self._head, self._repeat, self._tail = head, repeat, tail
        self.columns = list(columns)
        self._processors = processors
        self._literal = literal  # PyMySQL: the values written in as bytes (literal_sql)

    @classmethod
    def template(cls, layout: ResourceLayout, columns: Sequence[str],
                 dialect: sa.engine.Dialect) -> RepeatedUpsert | None:
        one = CompiledUpsert(layout, 1, columns, dialect)
        two = CompiledUpsert(layout, 2, columns, dialect)
        if one.positional and two.positional:
            first, second = one.sql, two.sql
            one_order = [where for where, _name in one._order]
            two_order = [where for where, _name in two._order]
        elif is_mysql(dialect) and dialect.paramstyle == "pyformat":
            # PyMySQL formats `query % args` either way: `%(v0_3)s` becomes `%s`, bound
            # from a tuple in the order the names appear.
            first, one_order = _positional(one.sql, columns)
            second, two_order = _positional(two.sql, columns)
        else:
            return None
        # Parameters come in the table's column order, row after row.
        order = [column for _row, column in one_order]
        if two_order != [(i, c) for i in range(2) for c in order]:
            return None
        split = 0
        while split < len(first) and first[split] == second[split]:
            split += 1
        # The one-row text split where the two differ; the extra row is what the two-row
        # text inserts there ("," and the group). Checked, not assumed.
        repeat = second[split:split + len(second) - len(first)]
        if first[:split] + repeat + first[split:] != second or repeat.count(
                "?" if dialect.paramstyle == "qmark" else "%s") != len(columns):
            return None
        head, tail = first[:split], first[split:]
        literal = None
        if dialect.driver == "pymysql" and is_mysql(dialect):
            literal = LiteralUpsert.from_text(head, repeat, tail, "utf-8",
                                              table=layout.table.name)
        return cls(head, repeat, tail, order, one._processors, literal)

    def execute(self, conn: sa.Connection, rows: Sequence[dict[str, Any]]) -> None:
        literal, driver = self._literal, conn.connection.driver_connection
        if literal is None or driver is None or not _takes_literal_bytes(conn, driver):
            sql = self._head + self._repeat * (len(rows) - 1) + self._tail
            conn.exec_driver_sql(sql, self.parameters(rows))
            return
        statement = literal.render(len(rows), self.parameters(rows), driver.escape,
                                   server_wants_no_backslash(driver))
        try:
            # Bytes: PyMySQL sends them as they are (SQLAlchemy's annotation says str).
            conn.exec_driver_sql(statement,  # type: ignore[arg-type]
                                 execution_options={"no_parameters": True})
        except sa.exc.StatementError as exc:
            # The statement holds every value written in (megabytes): never in a message.
            exc.statement = (f"<an upsert of {len(rows)} rows into {literal.table}, "
                             f"{len(statement):,} bytes>")
            raise

    def parameters(self, rows: Sequence[dict[str, Any]]) -> tuple[Any, ...]:
        processors = self._processors
        columns = self.columns
        if not processors:
            return tuple(row[c] for row in rows for c in columns)
        return tuple(processors[c](row[c]) if c in processors else row[c]
                     for row in rows for c in columns)


def _takes_literal_bytes(conn: sa.Connection, driver: Any) -> bool:
    """A PyMySQL connection whose statements are UTF-8 (the store's utf8mb4), and SQL
    logging off: a logged statement would hold every value, so with it on the loader binds
    as PyMySQL does and SQLAlchemy logs the parameters cut short."""
    encoding = str(getattr(driver, "encoding", "")).replace("-", "").lower()
    return encoding in ("utf8", "utf8mb4") and not conn.engine.logger.isEnabledFor(
        logging.INFO)


@dataclass
class PreparedBatch:
    received: int
    rows: list[PreparedRow]  # distinct keys, sorted by key
    rejections: list[Rejection]
    duplicates: int
    new_fields: list[str]
    chunks: list[list[PreparedRow]]
    now: datetime


@dataclass(frozen=True)
class StatementLimits:
    max_rows: int  # per statement, from bind-parameter ceilings
    max_bytes: int  # per statement, from the server's packet size


_limits_cache: weakref.WeakKeyDictionary[Engine, int] = weakref.WeakKeyDictionary()
_limits_lock = threading.Lock()


def statement_bytes(engine: Engine) -> int:
    """Largest statement worth sending: 3/4 of MySQL's max_allowed_packet (asked once per
    engine), leaving room for escaping estimates; a generous constant elsewhere."""
    if not is_mysql(engine.dialect):
        return _UNBOUNDED_STATEMENT_BYTES
    with _limits_lock:
        cached = _limits_cache.get(engine)
    if cached is None:
        with engine.connect() as conn:
            packet = int(conn.exec_driver_sql("SELECT @@max_allowed_packet").scalar() or 0)
        cached = max(packet * 3 // 4, 64 * 1024)
        with _limits_lock:
            _limits_cache[engine] = cached
    return cached


def chunk_rows(rows: Sequence[PreparedRow], max_rows: int, max_bytes: int
               ) -> Iterator[list[PreparedRow]]:
    """Consecutive chunks within both limits. The 2x allows for escaping every quote and
    backslash of the document; a single row always forms a chunk of its own."""
    chunk: list[PreparedRow] = []
    size = 0
    for row in rows:
        cost = 2 * row.size + _ROW_OVERHEAD
        if chunk and (len(chunk) >= max_rows or size + cost > max_bytes):
            yield chunk
            chunk, size = [], 0
        chunk.append(row)
        size += cost
    if chunk:
        yield chunk


def collapse_duplicates(rows: Iterable[PreparedRow]) -> tuple[list[PreparedRow], int]:
    """One row per key: the newest by ticks (unknown is oldest); on a tie, the later one."""
    newest: dict[Any, PreparedRow] = {}
    duplicates = 0
    for row in rows:
        seen = newest.get(row.key)
        if seen is not None:
            duplicates += 1
            if seen.ticks is not None and (row.ticks is None or row.ticks < seen.ticks):
                continue
        newest[row.key] = row
    return list(newest.values()), duplicates


def _batches(records: Iterable[Any], size: int) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for record in records:
        batch.append(record)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def raw_record_text(record: Any, limit: int | None = None) -> str:
    """The record as received, as JSON that any database can store: ASCII-only (lone
    surrogates and U+0000 escaped), exact decimals; NaN and objects without a JSON form
    are written the way Python shows them rather than lost.

    With `limit`, a longer text is replaced by a bounded stand-in (`bounded_raw_text`):
    the reject row of an oversized record must fit the server's packet, or the whole
    batch — its good records with it — fails on every retry."""
    try:
        text = encode_json(record, ensure_ascii=True)
    except (TypeError, ValueError, RecursionError):
        try:
            text = json.dumps(record, default=repr, ensure_ascii=True)
        except (TypeError, ValueError, RecursionError):
            # Nested too deeply for any encoder (or for repr): its top level is all there
            # is to keep, which bounded_raw_text does from the record itself.
            text = json.dumps(f"<a {type(record).__name__} nested too deeply to write>")
            return bounded_raw_text(record, text, limit or RAW_RECORD_CHARS)
    if limit is not None and len(text) > limit:
        return bounded_raw_text(record, text, limit)
    return text


# Reject rows keep at most this much of a record (ASCII characters, so bytes too).
RAW_RECORD_CHARS = 64 * 1024
TRUNCATED_MARK = "@etl.truncated"
_SHORT_VALUE_CHARS = 128


def bounded_raw_text(record: Any, text: str, limit: int) -> str:
    """A JSON object of at most `limit` characters standing for `text`, the whole record:
    its SHA-256 and length, its first characters, and — so the key and timestamps stay
    readable (reconcile reads a rejected version's ModificationTimestamp from here) — the
    record's short top-level scalar values, as many as fit in a quarter of the room."""
    digest = hashlib.sha256(text.encode("ascii")).hexdigest()
    kept: dict[str, Any] = {}
    room = limit // 4
    if isinstance(record, dict):
        for name, value in record.items():
            if not isinstance(name, str) or not isinstance(value, str | int | bool):
                continue
            piece = json.dumps({name: value}, ensure_ascii=True)
            if len(piece) > _SHORT_VALUE_CHARS or len(piece) > room:
                continue
            kept[name] = value
            room -= len(piece)
    head = {"sha256": digest, "chars": len(text), "prefix": ""}
    shell = json.dumps({TRUNCATED_MARK: head, **kept}, ensure_ascii=True)
    # Each prefix character is at most itself escaped again (`\` or `\"`: 2 characters).
    prefix = text[:max((limit - len(shell)) // 2, 0)]
    head["prefix"] = prefix
    return json.dumps({TRUNCATED_MARK: head, **kept}, ensure_ascii=True)


def reject_row(rejection: Rejection, run_id: str | None, window_id: str | None,
               now: datetime, raw_limit: int = RAW_RECORD_CHARS) -> dict[str, Any]:
    return {
        "run_id": run_id, "window_id": window_id, "resource": rejection.resource,
        "record_key": rejection.record_key,
        "field": rejection.field[:512] if rejection.field else None,
        "reason": rejection.reason, "detail": rejection.detail[:_DETAIL_CHARS],
        "raw_record": raw_record_text(rejection.raw_record, raw_limit), "rejected_at": now,
    }


# --- the loader ------------------------------------------------------------------------


class RecordLoader:
    """Loads records of one resource into its table. Build with `RecordLoader.open`."""

    def __init__(
        self,
        engine: Engine,
        layout: ResourceLayout,
        *,
        known_undeclared: Iterable[str] = (),
        batch_size: int = DEFAULT_BATCH_SIZE,
        retry: RetryPolicy = DEFAULT_DB_RETRY,
        max_statement_bytes: int | None = None,
        pipeline: bool = True,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.pipeline = pipeline
        # (dialect, rows, columns) -> its compiled upsert; (dialect, "repeated", columns) ->
        # the repeatable template, or None where the statement cannot be repeated.
        self._statements: dict[tuple[Any, ...], CompiledUpsert | RepeatedUpsert | None] = {}
        self._saved_shapes: set[str] = set()  # shape ids committed by this loader
        self.engine = engine
        self.layout = layout
        self.batch_size = batch_size
        self.retry = retry
        self._transformer = RecordTransformer(layout, known_undeclared)
        columns = len(layout.table.columns)
        parameter_limit = _PARAMETER_LIMIT.get(engine.dialect.name)
        max_rows = batch_size if parameter_limit is None else min(
            batch_size, max(parameter_limit // columns, 1))
        server_bytes = statement_bytes(engine)
        self.limits = StatementLimits(max_rows=max_rows,
                                      max_bytes=max_statement_bytes or server_bytes)
        # A row alone in its statement must still fit what the server accepts.
        self._max_row_bytes = server_bytes // 2 - _ROW_OVERHEAD
        # And so must a reject row, whatever the record it keeps (see bounded_raw_text).
        self._raw_limit = max(min(RAW_RECORD_CHARS, server_bytes // 8), 1024)

    @classmethod
    def open(cls, engine: Engine, resource: str, *, schema: str | None = None,
             **options: Any) -> RecordLoader:
        """A loader for `resource` as migrate last laid it out (read from etl_field_map)."""
        with engine.connect() as conn:
            catalog = read_catalog(conn, resource, schema)
        return cls(engine, catalog.layout, known_undeclared=catalog.undeclared, **options)

    @property
    def resource(self) -> str:
        return self.layout.resource

    def load(self, records: Iterable[Any], *, run_id: str | None = None,
             window_id: str | None = None) -> LoadResult:
        """Upsert `records` batch by batch; rejects never stop a batch.

        With `run_id`, each batch also adds its counts to the run's etl_sync_log row — or,
        with `window_id` too, to that window's etl_sync_window row — in the batch's own
        transaction. Do not add the returned counts to the sync log again.
        """
        total = LoadResult()
        batches = _batches(records, self.batch_size)
        first = next(batches, None)
        second = next(batches, None) if first is not None else None
        if first is None or second is None or not self.pipeline:
            # One batch (a page from a sync window, typically): nothing to overlap.
            for batch in (b for b in (first, second) if b is not None):
                total += self._write(self._prepare(batch), run_id, window_id)
            for batch in batches:
                total += self._write(self._prepare(batch), run_id, window_id)
            return total
        batches = itertools.chain((first, second), batches)
        # Validate and encode batch k+1 on a helper thread while batch k is written: the
        # database's time is spent waiting on the socket, which releases the GIL, so the
        # two overlap. Batches are still written one after another, in order.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="store-prepare") as pool:
            pending: Future[PreparedBatch] | None = None
            for batch in batches:
                upcoming = pool.submit(self._prepare, batch)
                if pending is not None:
                    total += self._write(pending.result(), run_id, window_id)
                pending = upcoming
            if pending is not None:
                total += self._write(pending.result(), run_id, window_id)
        return total

    # -- one batch --

    def _prepare(self, records: list[Any]) -> PreparedBatch:
        """Validate, transform, collapse duplicates, sort and chunk: no database work."""
        now = datetime.now(UTC)
        prepared: list[PreparedRow] = []
        rejections: list[Rejection] = []
        prepare = self._transformer.prepare
        for record in records:
            outcome = prepare(record, now)
            if type(outcome) is PreparedRow:
                if outcome.size > self._max_row_bytes:
                    rejections.append(self._transformer.reject(
                        record, None, TOO_LONG,
                        f"the record is {outcome.size} bytes of JSON, more than the server "
                        f"accepts in one statement ({self._max_row_bytes})"))
                    continue
                prepared.append(outcome)
            else:
                rejections.append(outcome)
        rows, duplicates = collapse_duplicates(prepared)
        rows.sort(key=lambda row: row.key)
        return PreparedBatch(
            received=len(records), rows=rows, rejections=rejections, duplicates=duplicates,
            new_fields=sorted({n for row in rows for n in row.undeclared}),
            chunks=list(chunk_rows(rows, self.limits.max_rows, self.limits.max_bytes)),
            now=now,
        )

    def _write(self, batch: PreparedBatch, run_id: str | None,
               window_id: str | None) -> LoadResult:
        """One transaction for the batch; record by record only if the server refuses a row."""
        rows, rejections = batch.rows, batch.rejections
        refused: list[Rejection] = []

        shapes = self._new_shapes(rows)

        def write(conn: sa.Connection) -> None:
            self._save_shapes(conn, shapes)
            for chunk in batch.chunks:
                values = [r.values for r in chunk]
                self._compiled(len(values), values[0], conn.dialect).execute(conn, values)
            self._bookkeeping(conn, rejections, batch.new_fields, batch.received, len(rows),
                              batch.duplicates, run_id, window_id, batch.now)

        def write_one_by_one(conn: sa.Connection) -> None:
            refused.clear()
            self._save_shapes(conn, shapes)
            for row in rows:
                try:
                    with conn.begin_nested():
                        conn.execute(upsert_statement(self.layout, [row.values],
                                                      conn.dialect))
                except sa.exc.SQLAlchemyError as exc:
                    if classify(exc) != "data":
                        raise
                    refused.append(self._transformer.reject(
                        row.record, None, DATABASE_REFUSED, describe(exc)))
            self._bookkeeping(conn, rejections + refused, batch.new_fields, batch.received,
                              len(rows) - len(refused), batch.duplicates, run_id, window_id,
                              batch.now)

        statements = len(batch.chunks)
        try:
            in_transaction(self.engine, write, policy=self.retry, on_retry=self._log_retry)
        except StoreError as exc:
            if exc.details.get("verdict") != "data":
                raise
            log.warning("store: %s refused a batch (%s); loading it record by record",
                        self.resource, exc)
            in_transaction(self.engine, write_one_by_one, policy=self.retry,
                           on_retry=self._log_retry)
            statements = len(rows)
        if batch.new_fields:
            self._transformer.note_known(batch.new_fields)
        self._saved_shapes.update(shapes)  # committed: later batches need not write them
        all_rejections = rejections + refused
        return LoadResult(
            received=batch.received, upserted=len(rows) - len(refused),
            rejected=len(all_rejections), duplicates=batch.duplicates, batches=1,
            statements=statements, undeclared_fields=tuple(batch.new_fields),
            rejections=all_rejections,
        )

    def _new_shapes(self, rows: list[PreparedRow]) -> dict[str, str]:
        """Shapes of these rows not yet known to be stored: id -> names."""
        saved = self._saved_shapes
        return {row.shape.id: row.shape.names for row in rows
                if row.shape is not None and row.shape.id not in saved}

    def _save_shapes(self, conn: sa.Connection, shapes: dict[str, str]) -> None:
        # In the rows' own transaction, before them: a document is never stored without
        # the shape that restores it. Insert if absent: other loaders write the same ones
        # (in id order, so two transactions never wait on each other's in turn).
        if shapes:
            upsert_rows(conn, bookkeeping(self.layout.schema)["etl_record_shape"],
                        [{"shape": shape, "names": shapes[shape]} for shape in sorted(shapes)])

    def _compiled(self, rows: int, sample: dict[str, Any], dialect: sa.engine.Dialect
                  ) -> CompiledUpsert | RepeatedUpsert:
        columns = tuple(sample)
        template_key = (dialect.name, "repeated", columns)
        if template_key not in self._statements:
            self._statements[template_key] = RepeatedUpsert.template(
                self.layout, list(columns), dialect)
        repeated = self._statements[template_key]
        if repeated is not None:
            return repeated
        key = (dialect.name, rows, columns)
        compiled = self._statements.get(key)
        if compiled is None:
            if len(self._statements) >= _COMPILED_KEEP:
                self._statements.pop(next(iter(self._statements)))
            compiled = self._statements[key] = CompiledUpsert(self.layout, rows, list(sample),
                                                              dialect)
        return compiled

    def _bookkeeping(self, conn: sa.Connection, rejections: list[Rejection],
                     new_fields: list[str], received: int, upserted: int, duplicates: int,
                     run_id: str | None, window_id: str | None, now: datetime) -> None:
        tables = bookkeeping(self.layout.schema)
        if rejections:
            conn.execute(tables["etl_rejects"].insert(),
                         [reject_row(r, run_id, window_id, now, self._raw_limit)
                          for r in rejections])
        if new_fields:
            track_undeclared(conn, self.resource, new_fields, now, self.layout.schema)
        if run_id is None:
            return
        counts = {"records_fetched": received, "records_upserted": upserted,
                  "records_rejected": len(rejections), "records_duplicate": duplicates}
        if window_id is not None:
            table = tables["etl_sync_window"]
            where = sa.and_(table.c.run_id == run_id, table.c.resource == self.resource,
                            table.c.window_id == window_id)
        else:
            table = tables["etl_sync_log"]
            where = sa.and_(table.c.run_id == run_id, table.c.resource == self.resource)
        done = conn.execute(
            sa.update(table).where(where).values(
                {name: table.c[name] + value for name, value in counts.items()})
        )
        if done.rowcount == 0:
            # The sync log row was never opened: open it here rather than lose the counts.
            row = {"run_id": run_id, "resource": self.resource, "status": "running",
                   "started_at": now, **counts}
            if window_id is not None:
                row["window_id"] = window_id
            conn.execute(table.insert().values(
                {k: v for k, v in row.items() if k in table.c}))

    def _log_retry(self, error: BaseException, wait: float) -> None:
        log.warning("store: %s batch failed (%s); retrying the transaction in %.1f s",
                    self.resource, error, wait)


