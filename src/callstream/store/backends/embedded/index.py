"""The SQLite index: streams and fragment rows, its connections, and group commit.

``<data_dir>/index.sqlite3`` (WAL, ``synchronous=FULL``) holds one row per stream (its
key material wrapped, its sequence reservation) and one per stored fragment (where its
record is: file, offset, length). One writer connection commits; every thread reads
through its own connection (WAL readers never block the writer).

Group commit: appends of many streams write and fsync their files concurrently, then
queue their index rows; the first to find no commit in flight commits everything queued
in one transaction, the others wait for it (:meth:`Index.commit_rows`).
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from callstream.store.base import (
    FragmentAppend,
    FragmentRecord,
    InvalidArgument,
    StoreError,
    StreamRecord,
)

__all__ = [
    "FRAGMENT_COLUMNS",
    "INT64_MAX",
    "SCHEMA_VERSION",
    "STREAM_COLUMNS",
    "Index",
    "check_fragment_fields",
    "drop_stream_rows",
    "expire_rows",
    "file_chunks",
    "fragment_filter",
]

SCHEMA_VERSION = "1"
INT64_MAX = (1 << 63) - 1  # SQLite INTEGER

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS streams (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    name            TEXT NOT NULL UNIQUE,
    arn             TEXT NOT NULL UNIQUE,
    creation_ms     INTEGER NOT NULL,
    version         TEXT NOT NULL,
    status          TEXT NOT NULL,
    device_name     TEXT,
    media_type      TEXT,
    kms_key_id      TEXT NOT NULL,
    master_key_id   TEXT NOT NULL,
    retention_hours INTEGER NOT NULL,
    tags            TEXT NOT NULL,
    wrapped_key     BLOB NOT NULL,
    seq_reserved    INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS fragments (
    stream_id        INTEGER NOT NULL REFERENCES streams(id) ON DELETE CASCADE,
    fragment_number  TEXT NOT NULL,
    seq              INTEGER NOT NULL,
    server_ts        INTEGER NOT NULL,
    producer_ts      INTEGER NOT NULL,
    duration_ms      INTEGER NOT NULL,
    size             INTEGER NOT NULL,
    cluster_timecode INTEGER NOT NULL,
    file_no          INTEGER NOT NULL,
    offset           INTEGER NOT NULL,
    length           INTEGER NOT NULL,
    PRIMARY KEY (stream_id, fragment_number)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS fragments_by_server ON fragments (stream_id, server_ts);
CREATE INDEX IF NOT EXISTS fragments_by_producer ON fragments (stream_id, producer_ts);
CREATE INDEX IF NOT EXISTS fragments_by_file ON fragments (stream_id, file_no);
"""

STREAM_COLUMNS = (
    "id, name, arn, creation_ms, version, status, device_name, media_type, "
    "kms_key_id, master_key_id, retention_hours, tags, wrapped_key, seq_reserved"
)
"""The columns of a ``streams`` row as :meth:`Index.stream_rows` returns them."""
FRAGMENT_COLUMNS = "fragment_number, server_ts, producer_ts, duration_ms, size, cluster_timecode"
"""The columns a :class:`FragmentRecord` is built from (after its stream ARN)."""

_INSERT_FRAGMENT = (
    "INSERT INTO fragments (stream_id, fragment_number, seq, server_ts, producer_ts, "
    "duration_ms, size, cluster_timecode, file_no, offset, length) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


class _IndexSlot:
    """One append's index row waiting for a group commit."""

    __slots__ = ("done", "error", "row")

    def __init__(self, row: tuple[object, ...]) -> None:
        self.row = row
        self.done = False
        self.error: BaseException | None = None


class Index:
    """The index database of one data directory.

    ``db_lock`` guards the writer connection (:attr:`conn`, :meth:`txn`);
    ``check_open`` raises once the store is closed.
    """

    def __init__(self, db_path: Path, *, check_open: Callable[[], None]) -> None:
        self.db_path = db_path
        self.db_lock = threading.Lock()
        self.check_open = check_open
        self._commit_cv = threading.Condition(threading.Lock())  # group commit queue
        self._pending: list[_IndexSlot] = []
        self._committing = False
        self._tls = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        if not db_path.exists():  # SQLite gives -wal/-shm the same mode
            db_path.touch(mode=0o600)
        self.conn = self._connect()
        self.conn.executescript(_SCHEMA)
        self.conn.execute(
            "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema', ?)", (SCHEMA_VERSION,)
        )

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.db_path, check_same_thread=False, isolation_level=None)
        conn.execute("PRAGMA busy_timeout = 10000")
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()
        if mode is None or str(mode[0]).lower() != "wal":
            raise StoreError(f"cannot put {self.db_path} in WAL mode")
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA fullfsync = ON")  # macOS; no-op elsewhere
        conn.execute("PRAGMA foreign_keys = ON")
        return conn

    def reader(self) -> sqlite3.Connection:
        """This thread's read-only connection (WAL readers never block the writer)."""
        conn: sqlite3.Connection | None = getattr(self._tls, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.db_path, check_same_thread=False, isolation_level=None)
            conn.execute("PRAGMA busy_timeout = 10000")
            conn.execute("PRAGMA query_only = ON")
            self._tls.conn = conn
            with self._readers_lock:
                self.check_open()
                self._readers.append(conn)
        return conn

    def query_one(self, sql: str, params: Sequence[object]) -> tuple[Any, ...] | None:
        """First row of a read query; the statement is reset at once so no read
        transaction lingers (it would hold back WAL checkpoints)."""
        cur = self.reader().execute(sql, params)
        try:
            row: tuple[Any, ...] | None = cur.fetchone()
            return row
        finally:
            cur.close()

    @contextlib.contextmanager
    def txn(self) -> Iterator[sqlite3.Connection]:
        """A write transaction on the writer connection; caller holds ``db_lock``."""
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def commit_rows(self, rows: list[tuple[object, ...]]) -> list[BaseException | None]:
        """Insert fragment rows and commit, sharing the commit with concurrent appends;
        returns each row's error (None: committed).

        Group commit: the first caller to find no commit in flight becomes the leader and
        commits every row queued so far in one transaction; callers arriving meanwhile
        queue for the next one. Nobody waits longer than for the commit in flight, and
        nobody returns before the transaction holding its rows is durable.
        """
        if not rows:
            return []
        slots = [_IndexSlot(row) for row in rows]
        last = slots[-1]
        with self._commit_cv:
            self._pending.extend(slots)
            while not last.done:
                if self._committing:
                    self._commit_cv.wait()
                    continue
                self._committing = True
                batch, self._pending = self._pending, []
                self._commit_cv.release()
                try:
                    self._commit_batch(batch)
                finally:
                    self._commit_cv.acquire()
                    self._committing = False
                    self._commit_cv.notify_all()
        return [slot.error for slot in slots]

    def _commit_batch(self, batch: list[_IndexSlot]) -> None:
        """Insert the batch's rows in one transaction. A row that fails (a constraint, a
        value SQLite cannot bind, any error of its own statement) gets its error and the
        others are committed; only an error that ends the transaction (SQLite rolled it
        back, COMMIT failed, the store closed) fails every row."""
        try:
            with self.db_lock:
                self.check_open()
                with self.txn() as conn:
                    for slot in batch:
                        try:
                            conn.execute(_INSERT_FRAGMENT, slot.row)
                        except Exception as exc:
                            if not conn.in_transaction:  # SQLite rolled everything back
                                raise
                            slot.error = exc  # only this statement was undone
        except BaseException as exc:
            for slot in batch:
                if slot.error is None:
                    slot.error = exc
        finally:
            for slot in batch:
                slot.done = True

    # --- streams ---------------------------------------------------------------------------
    def stream_rows(self) -> list[tuple[Any, ...]]:
        """Every ``streams`` row (:data:`STREAM_COLUMNS`)."""
        return self.conn.execute(f"SELECT {STREAM_COLUMNS} FROM streams").fetchall()

    def highest_sequences(self) -> dict[int, int]:
        """The highest stored fragment sequence of every stream that has fragments."""
        return dict(
            self.conn.execute("SELECT stream_id, MAX(seq) FROM fragments GROUP BY stream_id")
        )

    def insert_stream(self, record: StreamRecord, master_key_id: str, wrapped_key: bytes) -> int:
        """Commit a new stream's row; returns its id (:class:`sqlite3.IntegrityError`
        if the name or ARN exists). Caller holds ``db_lock``."""
        with self.txn() as conn:
            cur = conn.execute(
                "INSERT INTO streams (name, arn, creation_ms, version, status, "
                "device_name, media_type, kms_key_id, master_key_id, retention_hours, "
                "tags, wrapped_key) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    record.name,
                    record.arn,
                    record.creation_time_ms,
                    record.version,
                    record.status,
                    record.device_name,
                    record.media_type,
                    record.kms_key_id,
                    master_key_id,
                    record.data_retention_hours,
                    json.dumps(record.tags, sort_keys=True),
                    wrapped_key,
                ),
            )
        stream_id = cur.lastrowid
        assert stream_id is not None
        return stream_id

    def update_stream(self, stream_id: int, record: StreamRecord) -> None:
        """Commit a stream's changed fields. Caller holds ``db_lock``."""
        with self.txn() as conn:
            conn.execute(
                "UPDATE streams SET version = ?, device_name = ?, media_type = ?, "
                "retention_hours = ?, tags = ? WHERE id = ?",
                (
                    record.version,
                    record.device_name,
                    record.media_type,
                    record.data_retention_hours,
                    json.dumps(record.tags, sort_keys=True),
                    stream_id,
                ),
            )

    def reserve_sequences(self, stream_id: int, reserved: int) -> None:
        """Commit a stream's sequence reservation. Caller holds ``db_lock``."""
        with self.txn() as conn:
            conn.execute("UPDATE streams SET seq_reserved = ? WHERE id = ?", (reserved, stream_id))

    # --- fragments ---------------------------------------------------------------------------
    def fragment_records(
        self,
        arn: str,
        stream_id: int,
        *,
        after_number: str | None,
        start_ms: int | None,
        end_ms: int | None,
        by: str,
        limit: int | None,
    ) -> list[FragmentRecord]:
        """A stream's fragments in number order: numbers > ``after_number``, timestamps
        (``by`` "server" or "producer") within ``[start_ms, end_ms]``, at most ``limit``."""
        column = "server_ts" if by == "server" else "producer_ts"
        sql = f"SELECT {FRAGMENT_COLUMNS} FROM fragments WHERE stream_id = ?"
        params: list[object] = [stream_id]
        if after_number is not None:
            sql += " AND fragment_number > ?"
            params.append(after_number)
        # Stored times lie in 0 .. 2**63-1 ms; bounds beyond SQLite's integer are clamped.
        if start_ms is not None:
            sql += f" AND {column} >= ?"
            params.append(min(max(start_ms, -INT64_MAX), INT64_MAX))
        if end_ms is not None:
            sql += f" AND {column} <= ?"
            params.append(min(max(end_ms, -INT64_MAX), INT64_MAX))
        sql += " ORDER BY fragment_number"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        return [
            FragmentRecord(arn, r[0], r[1], r[2], r[3], r[4], r[5])
            for r in self.reader().execute(sql, params)
        ]

    def last_record(self, arn: str, stream_id: int) -> FragmentRecord | None:
        """A stream's fragment with the highest number."""
        row = self.query_one(
            f"SELECT {FRAGMENT_COLUMNS} FROM fragments WHERE stream_id = ? "
            "ORDER BY fragment_number DESC LIMIT 1",
            (stream_id,),
        )
        return FragmentRecord(arn, *row) if row is not None else None

    def locate(self, stream_id: int, fragment_number: str) -> tuple[int, int, int] | None:
        """``(file_no, offset, length)`` of a stored fragment's record."""
        row = self.query_one(
            "SELECT file_no, offset, length FROM fragments "
            "WHERE stream_id = ? AND fragment_number = ?",
            (stream_id, fragment_number),
        )
        return (row[0], row[1], row[2]) if row is not None else None

    def file_counts(self, where: str, params: tuple[int, ...]) -> list[tuple[int, int]]:
        """``(file_no, rows)`` of the fragments ``where`` (:func:`fragment_filter`), by
        ascending file number."""
        return list(
            self.reader().execute(
                f"SELECT file_no, COUNT(*) FROM fragments WHERE {where} "
                "GROUP BY file_no ORDER BY file_no",
                params,
            )
        )

    def file_ends(self, stream_id: int) -> dict[int, int]:
        """The end of the last indexed record of each file of a stream."""
        return dict(
            self.conn.execute(
                "SELECT file_no, MAX(offset + length) FROM fragments "
                "WHERE stream_id = ? GROUP BY file_no",
                (stream_id,),
            )
        )

    def close(self) -> None:
        """Close every connection; caller holds ``db_lock`` (and has closed the store,
        so no new reader connection is made)."""
        with self._readers_lock:
            readers, self._readers = self._readers, []
        with contextlib.suppress(sqlite3.Error):
            self.conn.close()
        for conn in readers:
            with contextlib.suppress(sqlite3.Error):
                conn.close()


def check_fragment_fields(item: FragmentAppend) -> None:
    """:class:`InvalidArgument` unless every number of ``item`` is an int the index can
    hold (0 .. 2**63 - 1): a value SQLite cannot bind must never reach a group commit."""
    fields = (
        ("server_timestamp_ms", item.server_timestamp_ms),
        ("producer_timestamp_ms", item.producer_timestamp_ms),
        ("duration_ms", item.duration_ms),
        ("cluster_timecode", item.cluster_timecode),
        ("size", 0 if item.size is None else item.size),
    )
    for name, value in fields:
        if type(value) is not int or not 0 <= value <= INT64_MAX:
            raise InvalidArgument(
                f"fragment {item.fragment_number}: {name} must be an integer in "
                f"0..{INT64_MAX}, not {value!r}"
            )


def drop_stream_rows(stream_id: int, conn: sqlite3.Connection) -> None:
    """Delete a stream's row and its fragments' rows (in the caller's transaction)."""
    conn.execute("DELETE FROM fragments WHERE stream_id = ?", (stream_id,))
    conn.execute("DELETE FROM streams WHERE id = ?", (stream_id,))


def fragment_filter(stream_id: int, before_ms: int | None) -> tuple[str, tuple[int, ...]]:
    """SQL condition and parameters selecting a stream's fragments (those with a server
    timestamp before ``before_ms``, if given)."""
    if before_ms is None:
        return "stream_id = ?", (stream_id,)
    return "stream_id = ? AND server_ts < ?", (stream_id, before_ms)


def file_chunks(counts: Sequence[tuple[int, int]], rows: int) -> list[tuple[int, int]]:
    """Split ``(file_no, row count)`` pairs (ascending file_no) into ``(first, last)``
    file ranges of about ``rows`` rows each (a file's rows are never split)."""
    chunks: list[tuple[int, int]] = []
    first: int | None = None
    total = 0
    for file_no, n in counts:
        if first is None:
            first = file_no
        total += n
        if total >= rows:
            chunks.append((first, file_no))
            first, total = None, 0
    if first is not None:
        chunks.append((first, counts[-1][0]))
    return chunks


def expire_rows(
    stream_id: int,
    where: str,
    params: tuple[int, ...],
    first: int,
    last: int,
    conn: sqlite3.Connection,
) -> tuple[int, set[int]]:
    """Delete the index rows ``where`` of files ``first .. last`` of a stream (in the
    caller's transaction); returns the highest sequence deleted and the files among
    ``first .. last`` that still have rows."""
    chunk = f"{where} AND file_no BETWEEN ? AND ?"
    chunk_params = (*params, first, last)
    (max_seq,) = conn.execute(
        f"SELECT MAX(seq) FROM fragments WHERE {chunk}", chunk_params
    ).fetchone()
    conn.execute(f"DELETE FROM fragments WHERE {chunk}", chunk_params)
    # Remember the highest expired sequence so it is never issued again.
    conn.execute(
        "UPDATE streams SET seq_reserved = MAX(seq_reserved, ?) WHERE id = ?",
        (max_seq or 0, stream_id),
    )
    live = conn.execute(
        "SELECT DISTINCT file_no FROM fragments WHERE stream_id = ? AND file_no BETWEEN ? AND ?",
        (stream_id, first, last),
    )
    return max_seq or 0, {r[0] for r in live}
