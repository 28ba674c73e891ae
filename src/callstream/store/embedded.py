"""The embedded store backend: a SQLite index plus append-only, encrypted fragment files.

Data directory layout::

    <data_dir>/LOCK                        flock'ed while a store has the directory open
    <data_dir>/index.sqlite3 (+ -wal, -shm) streams and the fragment index (WAL, synchronous=FULL)
    <data_dir>/keys.json                   master keys (default keyring location, mode 0600)
    <data_dir>/reserve                     space held back for deletions on a full disk
    <data_dir>/streams/<stream-id>/<file-no>.frag   append-only sealed fragment records

``<stream-id>`` is the stream's never-reused SQLite row id, ``<file-no>`` an 8-digit
counter; a stream rolls to a new file at ``file_size_limit`` bytes (64 MiB) or when the
file spans a tenth of the retention period (1 min .. 1 h), so retention frees whole files.

Record format (all integers big-endian)::

    b"CSR1" | u32 sealed length | 47-byte ASCII fragment number | sealed

``sealed`` is :meth:`RecordCipher.seal` of ``u8 version=1 | u32 len x 4 | ebml_header |
header | cluster | trailer``, authenticated together with the stream ARN and the fragment
number.

Durability: ``append_fragment`` appends the record, fsyncs the file (and the directory
when the file is new), inserts the index row and commits (an fsync of the WAL) before it
returns. Opening the store truncates any bytes after the last indexed record of each file
and deletes unindexed files, so a record half-written by a crash is never served.

Deleting (retention, DeleteStream) always commits the index change first and unlinks files
after it: a crash in between leaves files without index rows, which the next open deletes;
the other order would leave index rows pointing at missing files. On a full disk SQLite
still needs room for the WAL frames of a DELETE, so the store keeps ``reserve`` (a few MiB,
allocated, not sparse) and releases it when a deletion finds the disk full; deletions go in
chunks of about ``_DELETE_CHUNK_ROWS`` rows, so that one chunk's WAL fits in the reserve and
the files it frees make room for the next. The reserve is allocated again once space is
free. A failed append leaves nothing behind: a file or directory it created is removed,
a partial record at the end of a file is cut off.

Streams with ``data_retention_hours == 0`` are never written to disk: their fragments live
in an in-memory buffer holding the last 5 minutes (at most 200 MB), like KVS's host buffer.
"""

from __future__ import annotations

import bisect
import contextlib
import errno
import fcntl
import functools
import itertools
import json
import logging
import os
import re
import resource
import secrets
import shutil
import sqlite3
import string
import struct
import sys
import threading
import time
import unicodedata
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from callstream.store.base import (
    FragmentAppend,
    FragmentData,
    FragmentNotFound,
    FragmentRecord,
    IntegrityError,
    InvalidArgument,
    StorageFull,
    StoreError,
    StreamInUse,
    StreamLimitExceeded,
    StreamNotFound,
    StreamRecord,
    TagsLimitExceeded,
    VersionMismatch,
)
from callstream.store.crypto import (
    Keyring,
    RecordCipher,
    default_kms_key_id,
    new_data_key,
    normalize_kms_key_id,
)
from callstream.store.numbers import FRAGMENT_NUMBER_DIGITS, parse_fragment_number

__all__ = [
    "DEFAULT_FILE_SIZE_LIMIT",
    "DEFAULT_RESERVE_BYTES",
    "MAX_RETENTION_HOURS",
    "MAX_TAGS",
    "MEMORY_BUFFER_BYTES",
    "MEMORY_BUFFER_MS",
    "RECORD_HEADER_SIZE",
    "RECORD_MAGIC",
    "DataDirLocked",
    "EmbeddedBackend",
    "decode_fragment_data",
    "encode_fragment_data",
]

log = logging.getLogger(__name__)

DEFAULT_FILE_SIZE_LIMIT = 64 * 1024 * 1024
"""A stream's fragment file is rolled when the next record would take it past this size."""
MEMORY_BUFFER_MS = 5 * 60 * 1000
"""How long a retention-0 stream's fragments stay readable (KVS host buffer: 5 minutes)."""
MEMORY_BUFFER_BYTES = 200 * 1000 * 1000
"""Per-stream byte cap of the retention-0 buffer (KVS host buffer: 200 MB)."""
MAX_TAGS = 50
"""Tags per stream (KVS limit)."""
MAX_RETENTION_HOURS = 87600
"""Largest DataRetentionInHours KVS accepts."""
DEFAULT_RESERVE_BYTES = 4 * 1024 * 1024
"""Space kept in ``<data_dir>/reserve`` so that deletions can commit on a full disk."""

RECORD_MAGIC = b"CSR1"
"""First bytes of every record in a ``.frag`` file."""
_RECORD_HEADER = struct.Struct(f">4sI{FRAGMENT_NUMBER_DIGITS}s")
RECORD_HEADER_SIZE = _RECORD_HEADER.size
"""Bytes before the sealed payload of a record (magic, length, fragment number)."""
_PAYLOAD_HEADER = struct.Struct(">BIIII")
_PAYLOAD_VERSION = 1
_U32_MAX = 0xFFFFFFFF

_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_SEQ_BLOCK = 1024  # sequence numbers reserved per persisted high-water mark
_SCHEMA_VERSION = "1"
_FILE_SUFFIX = ".frag"
_HOUR_MS = 3_600_000
_INT64_MAX = (1 << 63) - 1  # SQLite INTEGER
_SQLITE_FULL = 13
_SQLITE_IOERR_WRITE = 778  # also what SQLite makes of EDQUOT and EFBIG
_DELETE_CHUNK_ROWS = 2000  # index rows deleted per transaction (WAL: well under 1 MiB)
_RESERVE_NAME = "reserve"

_T = TypeVar("_T")

_STREAM_NAME_RE = re.compile(r"[a-zA-Z0-9_.\-]{1,256}")
_DEVICE_NAME_RE = re.compile(r"[a-zA-Z0-9_.\-]{1,128}")
_MEDIA_TYPE_RE = re.compile(r"[\w\-.+]+/[\w\-.+]+(?:,[\w\-.+]+/[\w\-.+]+)*", re.ASCII)
_VERSION_ALPHABET = string.ascii_letters + string.digits
_TAG_EXTRA_CHARS = frozenset("_.:/=+-@")

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

_FRAGMENT_COLUMNS = "fragment_number, server_ts, producer_ts, duration_ms, size, cluster_timecode"


_INSERT_FRAGMENT = (
    "INSERT INTO fragments (stream_id, fragment_number, seq, server_ts, producer_ts, "
    "duration_ms, size, cluster_timecode, file_no, offset, length) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


class DataDirLocked(StoreError):
    """Another store (in this or another process) has the data directory open."""


# --- record encoding ---------------------------------------------------------------------


def encode_fragment_data(data: FragmentData) -> bytes:
    """Serialise the four parts of a fragment into the plaintext of a record."""
    parts = (data.ebml_header, data.header, data.cluster, data.trailer)
    if any(len(p) > _U32_MAX for p in parts):
        raise InvalidArgument("fragment part larger than 4 GiB")
    head = _PAYLOAD_HEADER.pack(_PAYLOAD_VERSION, *(len(p) for p in parts))
    return b"".join((head, *parts))


def decode_fragment_data(plaintext: bytes) -> FragmentData:
    """Inverse of :func:`encode_fragment_data`; :class:`IntegrityError` if malformed."""
    if len(plaintext) < _PAYLOAD_HEADER.size:
        raise IntegrityError("fragment payload truncated")
    version, *lengths = _PAYLOAD_HEADER.unpack_from(plaintext)
    if version != _PAYLOAD_VERSION or _PAYLOAD_HEADER.size + sum(lengths) != len(plaintext):
        raise IntegrityError("fragment payload malformed")
    view = memoryview(plaintext)
    pos = _PAYLOAD_HEADER.size
    out: list[bytes] = []
    for n in lengths:
        out.append(bytes(view[pos : pos + n]))
        pos += n
    return FragmentData(ebml_header=out[0], header=out[1], cluster=out[2], trailer=out[3])


def _fragment_data_size(data: FragmentData) -> int:
    return len(data.ebml_header) + len(data.header) + len(data.cluster) + len(data.trailer)


# --- validation --------------------------------------------------------------------------


def _tag_text_ok(text: str) -> bool:
    return all(c in _TAG_EXTRA_CHARS or unicodedata.category(c)[0] in "LZN" for c in text)


def _validate_tags(tags: object) -> dict[str, str]:
    if not isinstance(tags, dict):
        raise InvalidArgument("tags must be a mapping")
    if len(tags) > MAX_TAGS:
        raise TagsLimitExceeded(f"a stream can have at most {MAX_TAGS} tags")
    out: dict[str, str] = {}
    for key, value in tags.items():
        if not isinstance(key, str) or not 1 <= len(key) <= 128 or not _tag_text_ok(key):
            raise InvalidArgument(f"invalid tag key: {key!r}")
        if not isinstance(value, str) or len(value) > 256 or not _tag_text_ok(value):
            raise InvalidArgument(f"invalid tag value for {key!r}")
        out[key] = value
    return out


def _validate_optional(value: object, pattern: re.Pattern[str], what: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or pattern.fullmatch(value) is None:
        raise InvalidArgument(f"invalid {what}: {value!r}")
    return value


def _validate_media_type(value: object) -> str | None:
    checked = _validate_optional(value, _MEDIA_TYPE_RE, "MediaType")
    if checked is not None and len(checked) > 128:
        raise InvalidArgument("MediaType longer than 128 characters")
    return checked


def _validate_retention(value: object) -> int:
    if (
        not isinstance(value, int)
        or isinstance(value, bool)
        or not 0 <= value <= MAX_RETENTION_HOURS
    ):
        raise InvalidArgument(f"DataRetentionInHours must be 0..{MAX_RETENTION_HOURS}")
    return value


def _new_version() -> str:
    return "".join(secrets.choice(_VERSION_ALPHABET) for _ in range(20))


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _copy_stream(record: StreamRecord) -> StreamRecord:
    return replace(record, tags=dict(record.tags))


def _file_span_ms(retention_hours: int) -> int:
    """Longest server-time span of one file: a tenth of the retention, 1 min .. 1 h."""
    return min(_HOUR_MS, max(60_000, retention_hours * _HOUR_MS // 10))


def _file_name(file_no: int) -> str:
    return f"{file_no:08d}{_FILE_SUFFIX}"


def _parse_file_name(name: str) -> int | None:
    stem, dot, suffix = name.partition(".")
    if dot and "." + suffix == _FILE_SUFFIX and stem.isdigit() and stem.isascii():
        return int(stem)
    return None


def _sync_fd(fd: int) -> None:
    """Flush a file's data to stable storage (``F_FULLFSYNC`` on macOS)."""
    if sys.platform == "darwin":
        fcntl.fcntl(fd, fcntl.F_FULLFSYNC)
    else:
        os.fsync(fd)


def _sync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _is_full(exc: BaseException) -> bool:
    """``exc`` says the file system (or the database's size limit) is full."""
    if isinstance(exc, OSError):
        return exc.errno in (errno.ENOSPC, errno.EDQUOT)
    if isinstance(exc, sqlite3.Error):
        code = getattr(exc, "sqlite_errorcode", None)
        return code is not None and code & 0xFF == _SQLITE_FULL
    return False


def _write_refused(exc: BaseException) -> bool:
    """``exc`` may mean there is no room to write: :func:`_is_full`, or a write error
    that SQLite reports without the errno (a quota or file size limit gives these)."""
    if _is_full(exc):
        return True
    if isinstance(exc, OSError):
        return exc.errno == errno.EFBIG
    return isinstance(exc, sqlite3.Error) and (
        getattr(exc, "sqlite_errorcode", None) == _SQLITE_IOERR_WRITE
    )


def _check_fragment_fields(item: FragmentAppend) -> None:
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
        if type(value) is not int or not 0 <= value <= _INT64_MAX:
            raise InvalidArgument(
                f"fragment {item.fragment_number}: {name} must be an integer in "
                f"0..{_INT64_MAX}, not {value!r}"
            )


def _file_chunks(counts: Sequence[tuple[int, int]], rows: int) -> list[tuple[int, int]]:
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


def _expire_rows(
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


def _allocate(path: Path, size: int) -> None:
    """Create ``path`` with ``size`` bytes really allocated (not a sparse file)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | _O_CLOEXEC, 0o600)
    try:
        if hasattr(os, "posix_fallocate"):
            os.posix_fallocate(fd, 0, size)
        else:  # pragma: no cover - macOS
            os.ftruncate(fd, 0)
            zeros = bytes(min(size, 1 << 20))
            left = size
            while left > 0:
                _write_all(fd, zeros[:left])
                left -= len(zeros)
    finally:
        os.close(fd)


# --- in-memory state ---------------------------------------------------------------------


@dataclass(slots=True)
class _Stream:
    id: int
    record: StreamRecord
    master_key_id: str
    wrapped_key: bytes


class _Writer:
    """Append state of one stream's current fragment file; ``lock`` serialises appends."""

    __slots__ = (
        "deleted",
        "fd",
        "file_no",
        "first_ts",
        "lock",
        "next_file_no",
        "size",
        "unindexed",
    )

    def __init__(self, next_file_no: int = 1) -> None:
        self.lock = threading.Lock()
        # file_no -> records written there whose index rows are not committed yet: the
        # reaper must not delete such a file however few indexed rows it has left.
        self.unindexed: dict[int, int] = {}
        self.fd: int | None = None
        self.file_no = 0
        self.size = 0
        self.first_ts = 0
        self.next_file_no = next_file_no
        self.deleted = False

    def suspend(self) -> None:
        """Close the descriptor but keep appending to the same file later."""
        if self.fd is not None:
            with contextlib.suppress(OSError):
                os.close(self.fd)
        self.fd = None

    def close_file(self) -> None:
        """Close and forget the current file: the next append starts a new one."""
        self.suspend()
        self.file_no = 0
        self.size = 0


@dataclass(slots=True)
class _MemEntry:
    record: FragmentRecord
    data: FragmentData
    nbytes: int


class _MemBuffer:
    """The retention-0 host buffer of one stream (append order)."""

    __slots__ = ("by_number", "entries", "nbytes", "newest_ts")

    def __init__(self) -> None:
        self.entries: deque[_MemEntry] = deque()
        self.by_number: dict[str, _MemEntry] = {}
        self.nbytes = 0
        self.newest_ts = 0

    def add(self, entry: _MemEntry, *, window_ms: int, max_bytes: int) -> None:
        self.entries.append(entry)
        self.by_number[entry.record.fragment_number] = entry
        self.nbytes += entry.nbytes
        self.newest_ts = max(self.newest_ts, entry.record.server_timestamp_ms)
        self.evict(self.newest_ts - window_ms, max_bytes=max_bytes, keep_last=True)

    def evict(self, before_ms: int, *, max_bytes: int, keep_last: bool = False) -> int:
        freed = 0
        floor = 1 if keep_last else 0
        while len(self.entries) > floor and (
            self.nbytes > max_bytes or self.entries[0].record.server_timestamp_ms < before_ms
        ):
            old = self.entries.popleft()
            del self.by_number[old.record.fragment_number]
            self.nbytes -= old.nbytes
            freed += old.nbytes
        return freed


class _IndexSlot:
    """One append's index row waiting for a group commit."""

    __slots__ = ("done", "error", "row")

    def __init__(self, row: tuple[object, ...]) -> None:
        self.row = row
        self.done = False
        self.error: BaseException | None = None


@dataclass(slots=True)
class _SeqState:
    last: int  # highest sequence issued or stored
    reserved: int  # persisted high-water mark: nothing above it was ever issued


# --- the backend -------------------------------------------------------------------------


def default_max_open_files() -> int:
    """Fragment files kept open at once: a quarter of the process's descriptor limit
    (sockets need the rest), between 64 and 4096. Streams beyond it reopen their file
    per append."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 4096
    return max(64, min(4096, soft // 4))


class EmbeddedBackend:
    """Single-node :class:`~callstream.store.base.Backend`: SQLite index, append-only
    AES-256-GCM-sealed fragment files, in-memory buffer for retention-0 streams.

    Thread-safe: the API layer may call it from a thread pool. Appends to different
    streams write and fsync their files concurrently; index commits are serialised, and
    appends that arrive while a commit is in flight share the next one (group commit —
    no append waits longer than for the commit in flight).
    One process at a time may open a data directory (:class:`DataDirLocked`).

    ``keyring`` defaults to ``<data_dir>/keys.json``; keep it elsewhere (and backed up) if
    the data directory's storage is what encryption at rest should protect against.
    ``reserve_bytes`` is the space held back so that deletions can commit on a full disk
    (0: none).
    """

    def __init__(
        self,
        data_dir: Path | str,
        *,
        region: str = "us-east-1",
        account_id: str = "123456789012",
        max_streams: int = 10000,
        keyring: Keyring | None = None,
        file_size_limit: int = DEFAULT_FILE_SIZE_LIMIT,
        memory_buffer_ms: int = MEMORY_BUFFER_MS,
        memory_buffer_bytes: int = MEMORY_BUFFER_BYTES,
        max_open_files: int | None = None,
        reserve_bytes: int = DEFAULT_RESERVE_BYTES,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.region = region
        self.account_id = account_id
        self.max_streams = max_streams
        self.file_size_limit = file_size_limit
        self.memory_buffer_ms = memory_buffer_ms
        self.memory_buffer_bytes = memory_buffer_bytes
        self.max_open_files = max(
            1, default_max_open_files() if max_open_files is None else max_open_files
        )
        self._streams_dir = self.data_dir / "streams"
        self._db_path = self.data_dir / "index.sqlite3"
        self.reserve_bytes = max(0, reserve_bytes)
        self._reserve_path = self.data_dir / _RESERVE_NAME
        self._reserve_lock = threading.Lock()
        self._reserve_missing = True  # re-checked by _ensure_reserve
        self._reserve_warned = False  # one warning per time the reserve cannot be had
        self.keyring = keyring if keyring is not None else Keyring(self.data_dir / "keys.json")

        # Lock order: writer.lock -> _commit_cv -> _seq_lock -> _db_lock -> _lock.
        self._lock = threading.RLock()  # in-memory maps; never held across I/O
        self._db_lock = threading.Lock()  # the writer connection
        self._seq_lock = threading.Lock()
        self._commit_cv = threading.Condition(threading.Lock())  # group commit queue
        self._pending: list[_IndexSlot] = []
        self._committing = False
        self._closed = False
        self._by_id: dict[int, _Stream] = {}
        self._by_name: dict[str, _Stream] = {}
        self._by_arn: dict[str, _Stream] = {}
        self._names: list[str] = []  # sorted
        self._writers: dict[int, _Writer] = {}
        self._open_files: OrderedDict[int, _Writer] = OrderedDict()  # LRU of open descriptors
        self._mem: dict[int, _MemBuffer] = {}
        self._seq: dict[int, _SeqState] = {}
        self._ciphers: dict[int, RecordCipher] = {}
        self._last_creation_ms = 0
        self._tls = threading.local()
        self._readers: list[sqlite3.Connection] = []

        self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._lock_fd = os.open(self.data_dir / "LOCK", os.O_RDWR | os.O_CREAT | _O_CLOEXEC, 0o600)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock_fd)
            raise DataDirLocked(f"data directory {self.data_dir} is in use") from None
        try:
            if not self._db_path.exists():  # SQLite gives -wal/-shm the same mode
                os.close(os.open(self._db_path, os.O_WRONLY | os.O_CREAT, 0o600))
            self._conn = self._connect()
            self._conn.executescript(_SCHEMA)
            self._conn.execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema', ?)", (_SCHEMA_VERSION,)
            )
            self._load()
            self._recover_files()
        except BaseException:
            os.close(self._lock_fd)
            raise
        self._ensure_reserve()

    # --- plumbing ----------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self._db_path, check_same_thread=False, isolation_level=None)
        conn.execute("PRAGMA busy_timeout = 10000")
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()
        if mode is None or str(mode[0]).lower() != "wal":
            raise StoreError(f"cannot put {self._db_path} in WAL mode")
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA fullfsync = ON")  # macOS; no-op elsewhere
        conn.execute("PRAGMA foreign_keys = ON")
        return conn

    def _reader(self) -> sqlite3.Connection:
        """This thread's read-only connection (WAL readers never block the writer)."""
        conn: sqlite3.Connection | None = getattr(self._tls, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self._db_path, check_same_thread=False, isolation_level=None)
            conn.execute("PRAGMA busy_timeout = 10000")
            conn.execute("PRAGMA query_only = ON")
            self._tls.conn = conn
            with self._lock:
                self._check_open()
                self._readers.append(conn)
        return conn

    def _query_one(self, sql: str, params: Sequence[object]) -> tuple[Any, ...] | None:
        """First row of a read query; the statement is reset at once so no read
        transaction lingers (it would hold back WAL checkpoints)."""
        cur = self._reader().execute(sql, params)
        try:
            row: tuple[Any, ...] | None = cur.fetchone()
            return row
        finally:
            cur.close()

    @contextlib.contextmanager
    def _txn(self) -> Iterator[sqlite3.Connection]:
        """A write transaction on the writer connection; caller holds ``_db_lock``."""
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError("the store is closed")

    def _ensure_reserve(self) -> None:
        """Allocate the reserve if it is missing (best effort: on a full disk it waits for
        the next deletion that frees space)."""
        if not self._reserve_missing:
            return
        with self._reserve_lock:
            if not self._reserve_missing:
                return
            if self.reserve_bytes == 0:
                with contextlib.suppress(FileNotFoundError):
                    self._reserve_path.unlink()
                self._reserve_missing = False
                return
            try:
                if self._reserve_path.stat().st_blocks * 512 >= self.reserve_bytes:
                    self._reserve_missing = False
                    return
            except FileNotFoundError:
                pass
            try:
                _allocate(self._reserve_path, self.reserve_bytes)
            except OSError as exc:
                with contextlib.suppress(OSError):
                    self._reserve_path.unlink()
                if not self._reserve_warned:
                    self._reserve_warned = True
                    log.warning(
                        "cannot allocate the %d-byte reserve (will retry after deletions): %s",
                        self.reserve_bytes,
                        exc,
                    )
                return
            self._reserve_missing = False
            self._reserve_warned = False

    def _release_reserve(self) -> bool:
        """Free the reserve for a deletion that found the disk full; False if there is
        none to free."""
        with self._reserve_lock:
            try:
                size = self._reserve_path.stat().st_size
                self._reserve_path.unlink()
            except FileNotFoundError:
                size = 0
            self._reserve_missing = True
        if size:
            log.warning("disk full: released the %d-byte reserve so deletions can commit", size)
        return size > 0

    def _freeing_txn(self, work: Callable[[sqlite3.Connection], _T]) -> _T:
        """Run ``work`` (which only removes data) in a write transaction; caller holds
        ``_db_lock``. A transaction needs free space for its WAL frames even when it
        deletes: if the disk is full (or refuses the write), release the reserve and try
        once more, then give up with :class:`StorageFull`."""
        for attempt in range(2):
            try:
                with self._txn() as conn:
                    return work(conn)
            except (sqlite3.Error, OSError) as exc:
                if not _write_refused(exc):
                    raise
                if attempt == 1 or not self._release_reserve():
                    raise StorageFull(
                        f"cannot delete data: the disk of {self.data_dir} is full or refuses "
                        f"writes ({exc}); free space on it and retry"
                    ) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def _load(self) -> None:
        rows = self._conn.execute(
            "SELECT id, name, arn, creation_ms, version, status, device_name, media_type, "
            "kms_key_id, master_key_id, retention_hours, tags, wrapped_key, seq_reserved "
            "FROM streams"
        ).fetchall()
        max_seq = dict(
            self._conn.execute("SELECT stream_id, MAX(seq) FROM fragments GROUP BY stream_id")
        )
        for row in rows:
            record = StreamRecord(
                name=row[1],
                arn=row[2],
                creation_time_ms=row[3],
                version=row[4],
                status=row[5],
                device_name=row[6],
                media_type=row[7],
                kms_key_id=row[8],
                data_retention_hours=row[10],
                tags=json.loads(row[11]),
            )
            st = _Stream(id=row[0], record=record, master_key_id=row[9], wrapped_key=row[12])
            self._add_stream(st)
            self._seq[st.id] = _SeqState(
                last=max(row[13], max_seq.get(st.id) or 0), reserved=row[13]
            )
            self._last_creation_ms = max(self._last_creation_ms, record.creation_time_ms)

    def _add_stream(self, st: _Stream) -> None:
        self._by_id[st.id] = st
        self._by_name[st.record.name] = st
        self._by_arn[st.record.arn] = st
        bisect.insort(self._names, st.record.name)
        self._writers.setdefault(st.id, _Writer())

    def _stream_dir(self, stream_id: int) -> Path:
        return self._streams_dir / str(stream_id)

    def _recover_files(self) -> None:
        """Drop what a crash may have left behind: bytes after the last indexed record of a
        file, files without indexed records, directories of deleted streams."""
        self._streams_dir.mkdir(exist_ok=True, mode=0o700)
        removed_dirs = False
        for entry in os.scandir(self._streams_dir):
            sid = int(entry.name) if entry.name.isdigit() and entry.name.isascii() else None
            if sid is None or sid not in self._by_id:
                log.warning("removing orphaned stream directory %s", entry.path)
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path, ignore_errors=True)
                else:
                    with contextlib.suppress(OSError):
                        os.unlink(entry.path)
                removed_dirs = True
                continue
            ends: dict[int, int] = dict(
                self._conn.execute(
                    "SELECT file_no, MAX(offset + length) FROM fragments "
                    "WHERE stream_id = ? GROUP BY file_no",
                    (sid,),
                )
            )
            changed = False
            highest = 0
            for fentry in os.scandir(entry.path):
                file_no = _parse_file_name(fentry.name)
                if file_no is None:
                    continue
                highest = max(highest, file_no)
                end = ends.pop(file_no, None)
                if end is None:
                    log.warning("removing unindexed fragment file %s", fentry.path)
                    os.unlink(fentry.path)
                    changed = True
                    continue
                size = fentry.stat(follow_symlinks=False).st_size
                if size > end:
                    log.warning("truncating %s from %d to %d bytes", fentry.path, size, end)
                    fd = os.open(fentry.path, os.O_WRONLY)
                    try:
                        os.ftruncate(fd, end)
                        _sync_fd(fd)
                    finally:
                        os.close(fd)
                elif size < end:
                    log.error("%s is shorter (%d) than its index (%d)", fentry.path, size, end)
            for file_no in ends:
                log.error("%s is missing", Path(entry.path) / _file_name(file_no))
            if changed:
                _sync_dir(Path(entry.path))
            self._writers[sid].next_file_no = highest + 1
        if removed_dirs:
            _sync_dir(self._streams_dir)

    def _resolve(self, stream: StreamRecord) -> _Stream:
        with self._lock:
            st = self._by_arn.get(stream.arn)
        if st is None:
            raise StreamNotFound(f"stream {stream.arn} not found")
        return st

    def _writer(self, stream_id: int) -> _Writer:
        with self._lock:
            w = self._writers.get(stream_id)
            if w is None or stream_id not in self._by_id:
                raise StreamNotFound("stream not found")
            return w

    def _cipher(self, st: _Stream) -> RecordCipher:
        with self._lock:
            cipher = self._ciphers.get(st.id)
        if cipher is None:
            data_key = self.keyring.unwrap_data_key(
                st.master_key_id, st.wrapped_key, context=st.record.arn
            )
            cipher = RecordCipher(data_key, st.record.arn)
            with self._lock:
                cipher = self._ciphers.setdefault(st.id, cipher)
        return cipher

    # --- streams -----------------------------------------------------------------------
    def create_stream(
        self,
        name: str,
        *,
        device_name: str | None,
        media_type: str | None,
        kms_key_id: str | None,
        data_retention_hours: int,
        tags: dict[str, str],
    ) -> StreamRecord:
        """Create an ACTIVE stream; :class:`StreamInUse` if the name exists,
        :class:`StreamLimitExceeded` past ``max_streams``, :class:`TagsLimitExceeded` past
        50 tags, :class:`InvalidArgument` for values KVS would reject."""
        if not isinstance(name, str) or _STREAM_NAME_RE.fullmatch(name) is None:
            raise InvalidArgument(f"invalid StreamName: {name!r}")
        device_name = _validate_optional(device_name, _DEVICE_NAME_RE, "DeviceName")
        media_type = _validate_media_type(media_type)
        if kms_key_id is not None and (
            not isinstance(kms_key_id, str) or not 1 <= len(kms_key_id) <= 2048
        ):
            raise InvalidArgument("KmsKeyId must be 1..2048 characters")
        retention = _validate_retention(data_retention_hours)
        checked_tags = _validate_tags(tags)
        reported_kms = kms_key_id or default_kms_key_id(self.region, self.account_id)
        master_key_id = normalize_kms_key_id(reported_kms, self.region, self.account_id)
        data_key = new_data_key()

        with self._db_lock:
            self._check_open()
            with self._lock:
                if name in self._by_name:
                    raise StreamInUse(f"stream {name} already exists")
                if len(self._by_id) >= self.max_streams:
                    raise StreamLimitExceeded(f"the account already has {len(self._by_id)} streams")
                creation_ms = max(_now_ms(), self._last_creation_ms + 1)
            arn = (
                f"arn:aws:kinesisvideo:{self.region}:{self.account_id}:stream/{name}/{creation_ms}"
            )
            wrapped = self.keyring.wrap_data_key(master_key_id, data_key, context=arn)
            record = StreamRecord(
                name=name,
                arn=arn,
                creation_time_ms=creation_ms,
                version=_new_version(),
                status="ACTIVE",
                device_name=device_name,
                media_type=media_type,
                kms_key_id=reported_kms,
                data_retention_hours=retention,
                tags=checked_tags,
            )
            try:
                with self._txn() as conn:
                    cur = conn.execute(
                        "INSERT INTO streams (name, arn, creation_ms, version, status, "
                        "device_name, media_type, kms_key_id, master_key_id, retention_hours, "
                        "tags, wrapped_key) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (
                            name,
                            arn,
                            creation_ms,
                            record.version,
                            record.status,
                            device_name,
                            media_type,
                            reported_kms,
                            master_key_id,
                            retention,
                            json.dumps(checked_tags, sort_keys=True),
                            wrapped,
                        ),
                    )
            except sqlite3.IntegrityError:
                raise StreamInUse(f"stream {name} already exists") from None
            stream_id = cur.lastrowid
            assert stream_id is not None
            st = _Stream(
                id=stream_id, record=record, master_key_id=master_key_id, wrapped_key=wrapped
            )
            with self._lock:
                self._last_creation_ms = creation_ms
                self._add_stream(st)
                self._seq[stream_id] = _SeqState(last=0, reserved=0)
                self._ciphers[stream_id] = RecordCipher(data_key, arn)
        return _copy_stream(record)

    def get_stream(self, *, name: str | None = None, arn: str | None = None) -> StreamRecord:
        """The stream with ``name`` and/or ``arn``; :class:`StreamNotFound` when absent."""
        if name is None and arn is None:
            raise InvalidArgument("StreamName or StreamARN is required")
        with self._lock:
            self._check_open()
            st = self._by_arn.get(arn) if arn is not None else self._by_name.get(name or "")
            if st is None or (name is not None and st.record.name != name):
                raise StreamNotFound("The requested stream is not found or not active.")
            return _copy_stream(st.record)

    def list_streams(
        self, *, prefix: str | None, after_name: str | None, limit: int
    ) -> list[StreamRecord]:
        """Streams ordered by name, names > ``after_name``, starting with ``prefix``."""
        if limit < 0:
            raise InvalidArgument("limit must be >= 0")
        with self._lock:
            self._check_open()
            names = self._names
            start = bisect.bisect_right(names, after_name) if after_name is not None else 0
            if prefix:
                start = max(start, bisect.bisect_left(names, prefix))
            out: list[StreamRecord] = []
            for name in names[start:]:
                if len(out) >= limit or (prefix and not name.startswith(prefix)):
                    break
                out.append(_copy_stream(self._by_name[name].record))
            return out

    def update_stream(self, arn: str, current_version: str, **changes: object) -> StreamRecord:
        """Apply ``changes`` (``device_name``, ``media_type``, ``data_retention_hours``,
        ``tags`` — the complete new tag set) if ``current_version`` matches; assigns a new
        version. :class:`VersionMismatch` on a stale version."""
        unknown = set(changes) - {"device_name", "media_type", "data_retention_hours", "tags"}
        if unknown:
            raise InvalidArgument(f"cannot update {', '.join(sorted(unknown))}")
        with self._db_lock:
            self._check_open()
            with self._lock:
                st = self._by_arn.get(arn)
            if st is None:
                raise StreamNotFound("The requested stream is not found or not active.")
            if st.record.version != current_version:
                raise VersionMismatch(f"stream version is not {current_version}")
            old = st.record
            new = replace(old, tags=dict(old.tags))
            if "device_name" in changes:
                new.device_name = _validate_optional(
                    changes["device_name"], _DEVICE_NAME_RE, "DeviceName"
                )
            if "media_type" in changes:
                new.media_type = _validate_media_type(changes["media_type"])
            if "data_retention_hours" in changes:
                new.data_retention_hours = _validate_retention(changes["data_retention_hours"])
            if "tags" in changes:
                new.tags = _validate_tags(changes["tags"])
            new.version = _new_version()
            while new.version == old.version:  # pragma: no cover - 62**20 odds
                new.version = _new_version()
            with self._txn() as conn:
                conn.execute(
                    "UPDATE streams SET version = ?, device_name = ?, media_type = ?, "
                    "retention_hours = ?, tags = ? WHERE id = ?",
                    (
                        new.version,
                        new.device_name,
                        new.media_type,
                        new.data_retention_hours,
                        json.dumps(new.tags, sort_keys=True),
                        st.id,
                    ),
                )
            with self._lock:
                st.record = new
        return _copy_stream(new)

    def delete_stream(self, arn: str, current_version: str | None) -> None:
        """Delete the stream, its index rows and its files (space is freed at once).
        ``current_version=None`` skips the version check.

        Works on a full disk (see the module docstring): a stream with many fragments is
        deleted in chunks, oldest files first, each chunk's index rows committed before its
        files are unlinked; the stream row goes with the last chunk. If even that cannot
        commit, :class:`StorageFull` is raised and the stream remains, without the chunks
        already deleted."""
        with self._lock:
            self._check_open()
            st = self._by_arn.get(arn)
        if st is None:
            raise StreamNotFound("The requested stream is not found or not active.")
        writer = self._writer(st.id)
        with writer.lock:
            with self._db_lock:
                self._check_open()
                if st.id not in self._by_id:
                    raise StreamNotFound("The requested stream is not found or not active.")
                if current_version is not None and st.record.version != current_version:
                    raise VersionMismatch(f"stream version is not {current_version}")
            counts: list[tuple[int, int]] = list(
                self._reader().execute(
                    "SELECT file_no, COUNT(*) FROM fragments WHERE stream_id = ? "
                    "GROUP BY file_no ORDER BY file_no",
                    (st.id,),
                )
            )
            stream_dir = self._stream_dir(st.id)
            for first, last in _file_chunks(counts, _DELETE_CHUNK_ROWS)[:-1]:
                drop = functools.partial(
                    _expire_rows, st.id, "stream_id = ?", (st.id,), first, last
                )
                with self._db_lock:
                    self._check_open()
                    self._freeing_txn(drop)
                dead = [f for f, _ in counts if first <= f <= last and f not in writer.unindexed]
                self._unlink_files(stream_dir, writer, dead)
            with self._db_lock:
                self._check_open()

                def drop_all(conn: sqlite3.Connection) -> None:
                    conn.execute("DELETE FROM fragments WHERE stream_id = ?", (st.id,))
                    conn.execute("DELETE FROM streams WHERE id = ?", (st.id,))

                self._freeing_txn(drop_all)
                writer.deleted = True
                writer.close_file()
                with self._lock:
                    del self._by_id[st.id]
                    del self._by_name[st.record.name]
                    del self._by_arn[st.record.arn]
                    self._names.pop(bisect.bisect_left(self._names, st.record.name))
                    self._writers.pop(st.id, None)
                    self._open_files.pop(st.id, None)
                    self._mem.pop(st.id, None)
                    self._seq.pop(st.id, None)
                    self._ciphers.pop(st.id, None)
        if stream_dir.exists():
            shutil.rmtree(stream_dir, ignore_errors=True)
            _sync_dir(self._streams_dir)
        self._ensure_reserve()

    # --- fragments ---------------------------------------------------------------------
    def append_fragment(
        self,
        stream: StreamRecord,
        *,
        data: FragmentData,
        server_timestamp_ms: int,
        producer_timestamp_ms: int,
        duration_ms: int,
        cluster_timecode: int,
        fragment_number: str,
        size: int | None = None,
    ) -> FragmentRecord:
        """Seal, append, fsync and index one fragment; returns once it is durable.

        Retention-0 streams keep the fragment in the in-memory buffer instead. Raises
        :class:`InvalidArgument` for a malformed or duplicate fragment number and
        :class:`StoreError` if the disk write fails (nothing is then indexed)."""
        item = FragmentAppend(
            stream,
            data,
            server_timestamp_ms,
            producer_timestamp_ms,
            duration_ms,
            cluster_timecode,
            fragment_number,
            size,
        )
        result = self.append_fragments([item])[0]
        if isinstance(result, StoreError):
            raise result
        return result

    def append_fragments(
        self, items: Sequence[FragmentAppend]
    ) -> list[FragmentRecord | StoreError]:
        """Many appends, made durable together: each record is written and fsynced to its
        stream's file, then every index row goes in one group commit. A fragment whose
        write or index row fails gets its error (:class:`InvalidArgument` for a number
        the index cannot hold, :class:`StorageFull` on a full disk); the others are stored."""
        self._check_open()
        results: list[FragmentRecord | StoreError] = []
        rows: list[tuple[int, tuple[object, ...]]] = []  # result slot, index row
        for item in items:
            try:
                seq, _, _ = parse_fragment_number(item.fragment_number)
                _check_fragment_fields(item)
                st = self._resolve(item.stream)
                nbytes = _fragment_data_size(item.data)
                record = FragmentRecord(
                    stream_arn=st.record.arn,
                    fragment_number=item.fragment_number,
                    server_timestamp_ms=item.server_timestamp_ms,
                    producer_timestamp_ms=item.producer_timestamp_ms,
                    duration_ms=item.duration_ms,
                    size=nbytes if item.size is None else item.size,
                    cluster_timecode=item.cluster_timecode,
                )
                if st.record.data_retention_hours == 0:
                    self._append_memory(st, record, item.data, nbytes)
                    self._observe_seq(st.id, seq, persist=True)
                else:
                    sealed = self._cipher(st).seal(
                        item.fragment_number, encode_fragment_data(item.data)
                    )
                    if len(sealed) > _U32_MAX:
                        raise InvalidArgument("fragment too large")
                    head = _RECORD_HEADER.pack(
                        RECORD_MAGIC, len(sealed), item.fragment_number.encode()
                    )
                    rows.append((len(results), self._write(st, record, seq, head + sealed)))
            except StoreError as err:
                results.append(err)
                continue
            except Exception as err:  # e.g. EMFILE or ENOSPC opening a file: this item only
                log.warning("cannot store fragment %s: %s", item.fragment_number, err)
                error_type = StorageFull if _is_full(err) else StoreError
                results.append(error_type(f"cannot persist fragment: {err}"))
                continue
            results.append(record)
        errors: list[BaseException | None] = [StoreError("not indexed")] * len(rows)
        try:
            errors = self._index_rows([row for _, row in rows])
        finally:
            for (slot, row), error in zip(rows, errors, strict=True):
                stream_id, row_seq = row[0], row[2]
                assert isinstance(stream_id, int) and isinstance(row_seq, int)
                self._indexed(stream_id, row, failed=error is not None)
                if error is None:
                    self._observe_seq(stream_id, row_seq, persist=False)
                elif stream_id not in self._by_id:  # deleted meanwhile
                    results[slot] = StreamNotFound(
                        "The requested stream is not found or not active."
                    )
                elif isinstance(error, sqlite3.IntegrityError):
                    number = results[slot].fragment_number  # type: ignore[union-attr]
                    results[slot] = InvalidArgument(f"duplicate fragment number {number}")
                elif isinstance(error, OverflowError | sqlite3.InterfaceError):
                    results[slot] = InvalidArgument(f"fragment field out of range: {error}")
                elif _is_full(error):
                    results[slot] = StorageFull(f"cannot index fragment, disk full: {error}")
                else:
                    results[slot] = StoreError(f"cannot index fragment: {error}")
        return results

    def _append_memory(
        self, st: _Stream, record: FragmentRecord, data: FragmentData, nbytes: int
    ) -> None:
        with self._lock:
            if st.id not in self._by_id:
                raise StreamNotFound("The requested stream is not found or not active.")
            buf = self._mem.setdefault(st.id, _MemBuffer())
            if record.fragment_number in buf.by_number:
                raise InvalidArgument(f"duplicate fragment number {record.fragment_number}")
            buf.add(
                _MemEntry(record, data, nbytes),
                window_ms=self.memory_buffer_ms,
                max_bytes=self.memory_buffer_bytes,
            )

    def _write(
        self, st: _Stream, record: FragmentRecord, seq: int, blob: bytes
    ) -> tuple[object, ...]:
        """Append and fsync one sealed record; returns its index row (not yet committed)."""
        writer = self._writer(st.id)
        with writer.lock:
            if writer.deleted:
                raise StreamNotFound("The requested stream is not found or not active.")
            self._check_open()
            if writer.size > 0:
                span = _file_span_ms(st.record.data_retention_hours)
                if (
                    writer.size + len(blob) > self.file_size_limit
                    or record.server_timestamp_ms - writer.first_ts > span
                ):
                    writer.close_file()
            if writer.fd is None:
                if writer.size > 0:
                    self._reopen_file(st.id, writer)
                if writer.fd is None:
                    try:
                        self._open_new_file(st.id, writer)
                    except OSError as exc:
                        error_type = StorageFull if _is_full(exc) else StoreError
                        raise error_type(f"cannot create a fragment file: {exc}") from exc
                self._note_open(st.id, writer)
            else:
                with self._lock:
                    if st.id in self._open_files:
                        self._open_files.move_to_end(st.id)
            fd = writer.fd
            assert fd is not None
            offset = writer.size
            try:
                _write_all(fd, blob)
                _sync_fd(fd)
            except OSError as exc:
                # Cut the partial record off (or remove the file if it held nothing else);
                # if even that fails the tail stays unindexed, and the next open cuts it.
                # Never append after it.
                self._cut_tail(st.id, writer, offset)
                writer.close_file()
                error_type = StorageFull if _is_full(exc) else StoreError
                raise error_type(f"cannot persist fragment: {exc}") from exc
            if offset == 0:
                writer.first_ts = record.server_timestamp_ms
            writer.size = offset + len(blob)
            writer.unindexed[writer.file_no] = writer.unindexed.get(writer.file_no, 0) + 1
            return (
                st.id,
                record.fragment_number,
                seq,
                record.server_timestamp_ms,
                record.producer_timestamp_ms,
                record.duration_ms,
                record.size,
                record.cluster_timecode,
                writer.file_no,
                offset,
                len(blob),
            )

    def _indexed(self, stream_id: int, row: tuple[object, ...], *, failed: bool) -> None:
        """The index row of a written record was committed, or ``failed``: then the
        record is cut off again if nothing follows it in its file (else it stays,
        unindexed: never served, and dropped by the next open if nothing indexed follows)."""
        file_no, offset, length = row[8], row[9], row[10]
        assert isinstance(file_no, int) and isinstance(offset, int) and isinstance(length, int)
        with self._lock:
            writer = self._writers.get(stream_id)
        if writer is None:
            return
        with writer.lock:
            if (
                failed
                and not writer.deleted
                and writer.file_no == file_no
                and writer.size == offset + length
            ):
                self._cut_tail(stream_id, writer, offset)
            left = writer.unindexed.get(file_no, 0) - 1
            if left > 0:
                writer.unindexed[file_no] = left
            else:
                writer.unindexed.pop(file_no, None)

    def _index_rows(self, rows: list[tuple[object, ...]]) -> list[BaseException | None]:
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
            with self._db_lock:
                self._check_open()
                with self._txn() as conn:
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

    def _reopen_file(self, stream_id: int, writer: _Writer) -> None:
        """Reopen a suspended writer's file; start a new file if it changed meanwhile."""
        path = self._stream_dir(stream_id) / _file_name(writer.file_no)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | _O_CLOEXEC)
        except FileNotFoundError:
            writer.close_file()
            return
        if os.fstat(fd).st_size != writer.size:
            os.close(fd)
            writer.close_file()
            return
        writer.fd = fd

    def _note_open(self, stream_id: int, writer: _Writer) -> None:
        """Track ``writer``'s new descriptor; suspend the least recently used writers
        beyond ``max_open_files`` (busy ones are skipped, never waited for)."""
        with self._lock:
            self._open_files[stream_id] = writer
            self._open_files.move_to_end(stream_id)
            excess = len(self._open_files) - self.max_open_files
            candidates = list(itertools.islice(self._open_files.items(), max(excess, 0)))
        for sid, other in candidates:
            if other is writer or not other.lock.acquire(blocking=False):
                continue
            try:
                other.suspend()
            finally:
                other.lock.release()
            with self._lock:
                if self._open_files.get(sid) is other and other.fd is None:
                    del self._open_files[sid]

    def _open_new_file(self, stream_id: int, writer: _Writer) -> None:
        """Create the stream's next file (and its directory); on failure nothing created
        is left behind."""
        stream_dir = self._stream_dir(stream_id)
        if not stream_dir.is_dir():
            stream_dir.mkdir(mode=0o700, exist_ok=True)
            try:
                _sync_dir(self._streams_dir)
            except OSError:
                self._remove_empty_dir(stream_dir)
                raise
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | _O_CLOEXEC
        while True:
            file_no = writer.next_file_no
            writer.next_file_no += 1
            try:
                fd = os.open(stream_dir / _file_name(file_no), flags, 0o600)
            except FileExistsError:
                continue
            except OSError:
                self._remove_empty_dir(stream_dir)
                raise
            break
        writer.fd = fd
        writer.file_no = file_no
        writer.size = 0
        try:
            _sync_dir(stream_dir)
        except OSError:
            self._cut_tail(stream_id, writer, 0)
            writer.close_file()
            raise

    def _remove_empty_dir(self, stream_dir: Path) -> None:
        """Remove a stream directory that holds no file (best effort)."""
        try:
            stream_dir.rmdir()
        except OSError:  # not empty, or already gone
            return
        with contextlib.suppress(OSError):
            _sync_dir(self._streams_dir)

    def _cut_tail(self, stream_id: int, writer: _Writer, offset: int) -> None:
        """Cut the writer's current file back to ``offset`` bytes, where a record that
        was not indexed starts; caller holds ``writer.lock``. A file left empty is
        removed (with its directory, if that is empty too): nothing of a failed append
        stays on disk. On error the file is closed as it is (the next open cuts it)."""
        path = self._stream_dir(stream_id) / _file_name(writer.file_no)
        try:
            if offset == 0:
                writer.suspend()
                path.unlink()
                _sync_dir(path.parent)
                writer.close_file()
                self._remove_empty_dir(path.parent)
                return
            if writer.fd is not None:
                os.ftruncate(writer.fd, offset)
            else:
                fd = os.open(path, os.O_WRONLY | _O_CLOEXEC)
                try:
                    os.ftruncate(fd, offset)
                finally:
                    os.close(fd)
            writer.size = offset
        except OSError as exc:
            log.warning("cannot cut %s back to %d bytes: %s", path, offset, exc)
            writer.close_file()

    def _observe_seq(self, stream_id: int, seq: int, *, persist: bool) -> None:
        """Raise the stream's sequence counter to ``seq``; for streams without an index
        row to remember it (retention 0) persist a reservation above it."""
        with self._seq_lock:
            state = self._seq.get(stream_id)
            if state is None:
                return
            state.last = max(state.last, seq)
            if persist and seq > state.reserved:
                self._reserve_seq(stream_id, state, seq + _SEQ_BLOCK)

    def _reserve_seq(self, stream_id: int, state: _SeqState, reserved: int) -> None:
        # caller holds _seq_lock
        with self._db_lock:
            self._check_open()
            try:
                with self._txn() as conn:
                    conn.execute(
                        "UPDATE streams SET seq_reserved = ? WHERE id = ?", (reserved, stream_id)
                    )
            except sqlite3.Error as exc:
                if _is_full(exc):
                    raise StorageFull(f"cannot reserve fragment sequences: {exc}") from exc
                raise
        state.reserved = reserved

    def fragments(
        self,
        stream: StreamRecord,
        *,
        after_number: str | None = None,
        start_ms: int | None = None,
        end_ms: int | None = None,
        by: str = "server",
        limit: int | None = None,
    ) -> list[FragmentRecord]:
        """Index entries in fragment-number order: numbers > ``after_number``, timestamps
        (server or producer, per ``by``) within ``[start_ms, end_ms]``, at most ``limit``."""
        self._check_open()
        if by not in ("server", "producer"):
            raise InvalidArgument(f"unknown timestamp selector {by!r}")
        if after_number is not None:
            parse_fragment_number(after_number)
        if limit is not None and limit < 0:
            raise InvalidArgument("limit must be >= 0")
        st = self._resolve(stream)
        if limit == 0:
            return []
        column = "server_ts" if by == "server" else "producer_ts"
        sql = f"SELECT {_FRAGMENT_COLUMNS} FROM fragments WHERE stream_id = ?"
        params: list[object] = [st.id]
        if after_number is not None:
            sql += " AND fragment_number > ?"
            params.append(after_number)
        # Stored times lie in 0 .. 2**63-1 ms; bounds beyond SQLite's integer are clamped.
        if start_ms is not None:
            sql += f" AND {column} >= ?"
            params.append(min(max(start_ms, -_INT64_MAX), _INT64_MAX))
        if end_ms is not None:
            sql += f" AND {column} <= ?"
            params.append(min(max(end_ms, -_INT64_MAX), _INT64_MAX))
        sql += " ORDER BY fragment_number"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        arn = st.record.arn
        out = [
            FragmentRecord(arn, r[0], r[1], r[2], r[3], r[4], r[5])
            for r in self._reader().execute(sql, params)
        ]
        with self._lock:
            buf = self._mem.get(st.id)
            mem = list(buf.entries) if buf is not None else []
        if mem:
            for entry in mem:
                rec = entry.record
                ts = rec.server_timestamp_ms if by == "server" else rec.producer_timestamp_ms
                if (
                    (after_number is None or rec.fragment_number > after_number)
                    and (start_ms is None or ts >= start_ms)
                    and (end_ms is None or ts <= end_ms)
                ):
                    out.append(rec)
            out.sort(key=lambda r: r.fragment_number)
            if limit is not None:
                del out[limit:]
        return out

    def last_fragment(self, stream: StreamRecord) -> FragmentRecord | None:
        """The stream's newest fragment (highest number), or None — without listing all."""
        self._check_open()
        st = self._resolve(stream)
        row = self._query_one(
            f"SELECT {_FRAGMENT_COLUMNS} FROM fragments WHERE stream_id = ? "
            "ORDER BY fragment_number DESC LIMIT 1",
            (st.id,),
        )
        newest = FragmentRecord(st.record.arn, *row) if row is not None else None
        with self._lock:
            buf = self._mem.get(st.id)
            if buf is not None and buf.entries:
                mem_newest = max(buf.entries, key=lambda e: e.record.fragment_number).record
                if newest is None or mem_newest.fragment_number > newest.fragment_number:
                    newest = mem_newest
        return newest

    def read_fragment(self, stream: StreamRecord, fragment_number: str) -> FragmentData:
        """Decrypt and verify one fragment; :class:`IntegrityError` if its stored bytes were
        modified, truncated or moved, :class:`FragmentNotFound` if there is no such
        fragment (or it expired)."""
        self._check_open()
        parse_fragment_number(fragment_number)
        st = self._resolve(stream)
        with self._lock:
            buf = self._mem.get(st.id)
            entry = buf.by_number.get(fragment_number) if buf is not None else None
        if entry is not None:
            return entry.data
        location = self._locate(st, fragment_number)
        if location is None:
            raise FragmentNotFound(f"fragment {fragment_number} not found")
        path, offset, length = location
        try:
            fd = os.open(path, os.O_RDONLY | _O_CLOEXEC)
            try:
                raw = os.pread(fd, length, offset)
            finally:
                os.close(fd)
        except FileNotFoundError:
            if self._locate(st, fragment_number) is None:  # reaped meanwhile
                raise FragmentNotFound(f"fragment {fragment_number} not found") from None
            raise IntegrityError(f"fragment {fragment_number}: file {path} is missing") from None
        return self._open_record(st, fragment_number, raw, length)

    def _open_record(
        self, st: _Stream, fragment_number: str, raw: bytes, length: int
    ) -> FragmentData:
        if len(raw) != length or length < RECORD_HEADER_SIZE:
            raise IntegrityError(f"fragment {fragment_number}: record truncated")
        magic, sealed_len, number = _RECORD_HEADER.unpack_from(raw)
        if (
            magic != RECORD_MAGIC
            or sealed_len != length - RECORD_HEADER_SIZE
            or number != fragment_number.encode()
        ):
            raise IntegrityError(f"fragment {fragment_number}: record header does not match")
        plaintext = self._cipher(st).open(fragment_number, memoryview(raw)[RECORD_HEADER_SIZE:])
        return decode_fragment_data(plaintext)

    def _locate(self, st: _Stream, fragment_number: str) -> tuple[str, int, int] | None:
        row = self._query_one(
            "SELECT file_no, offset, length FROM fragments "
            "WHERE stream_id = ? AND fragment_number = ?",
            (st.id, fragment_number),
        )
        if row is None:
            return None
        return f"{self._streams_dir}{os.sep}{st.id}{os.sep}{_file_name(row[0])}", row[1], row[2]

    def locate_fragment(self, stream: StreamRecord, fragment_number: str) -> tuple[Path, int, int]:
        """``(file, offset, length)`` of a stored record (for tooling and tests);
        :class:`FragmentNotFound` for unknown or in-memory fragments."""
        self._check_open()
        location = self._locate(self._resolve(stream), fragment_number)
        if location is None:
            raise FragmentNotFound(f"fragment {fragment_number} is not stored on disk")
        return Path(location[0]), location[1], location[2]

    def next_sequence(self, stream: StreamRecord) -> int:
        """Next per-stream fragment sequence (1, 2, 3 ...). Never repeats a value, also
        across restarts: the counter restarts above the index's MAX(seq) and a persisted
        reservation (so after a restart there may be a gap of up to 1024)."""
        self._check_open()
        st = self._resolve(stream)
        with self._seq_lock:
            state = self._seq.get(st.id)
            if state is None:
                raise StreamNotFound("The requested stream is not found or not active.")
            seq = state.last + 1
            if seq > state.reserved:
                self._reserve_seq(st.id, state, state.last + _SEQ_BLOCK)
            state.last = seq
            return seq

    def reap(self, now_ms: int) -> int:
        """Expire fragments whose server timestamp is older than ``now_ms`` minus their
        stream's retention (retention-0 streams: the memory window). Index rows go at once;
        a file is deleted once none of its records is left. Returns the bytes freed (file
        sizes unlinked plus memory-buffer bytes dropped).

        Works on a full disk (see the module docstring). A stream that cannot be reaped
        (its failure is logged, one line) does not keep the others from being reaped."""
        self._check_open()
        freed = 0
        with self._lock:
            streams = list(self._by_id.values())
            for st in streams:
                buf = self._mem.get(st.id)
                if buf is not None:
                    freed += buf.evict(
                        now_ms - self.memory_buffer_ms, max_bytes=self.memory_buffer_bytes
                    )
        for st in streams:
            retention = st.record.data_retention_hours
            # Retention 0 means nothing persists: any disk rows left from a former
            # retention go entirely.
            cutoff = now_ms - retention * _HOUR_MS if retention > 0 else None
            try:
                freed += self._reap_stream(st, cutoff)
            except Exception as exc:
                self._check_open()  # closing: stop here, not once per stream
                log.warning("retention reaper: stream %s: %s", st.record.name, exc)
        self._ensure_reserve()
        return freed

    def _reap_stream(self, st: _Stream, cutoff: int | None) -> int:
        where = "stream_id = ?" + (" AND server_ts < ?" if cutoff is not None else "")
        params: tuple[int, ...] = (st.id, cutoff) if cutoff is not None else (st.id,)
        counts: list[tuple[int, int]] = list(
            self._reader().execute(
                f"SELECT file_no, COUNT(*) FROM fragments WHERE {where} "
                "GROUP BY file_no ORDER BY file_no",
                params,
            )
        )
        if not counts:
            return 0
        try:
            writer = self._writer(st.id)
        except StreamNotFound:
            return 0
        freed = 0
        stream_dir = self._stream_dir(st.id)
        with writer.lock:
            for first, last in _file_chunks(counts, _DELETE_CHUNK_ROWS):
                if writer.deleted:
                    return freed
                expire = functools.partial(_expire_rows, st.id, where, params, first, last)
                with self._db_lock:
                    self._check_open()
                    max_seq, live = self._freeing_txn(expire)
                with self._seq_lock:
                    state = self._seq.get(st.id)
                    if state is not None:
                        state.reserved = max(state.reserved, max_seq)
                dead = [
                    f
                    for f, _ in counts
                    if first <= f <= last and f not in live and f not in writer.unindexed
                ]
                freed += self._unlink_files(stream_dir, writer, dead)
        return freed

    def _unlink_files(self, stream_dir: Path, writer: _Writer, file_nos: list[int]) -> int:
        """Unlink files whose index rows are committed as gone; caller holds
        ``writer.lock``. Returns the bytes freed."""
        freed = 0
        for file_no in file_nos:
            if writer.file_no == file_no:
                writer.close_file()
            path = stream_dir / _file_name(file_no)
            try:
                freed += path.stat().st_size
                path.unlink()
            except FileNotFoundError:
                pass
        if file_nos:
            _sync_dir(stream_dir)
        return freed

    # --- lifecycle ---------------------------------------------------------------------
    def close(self) -> None:
        """Close files and connections and release the data directory. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True  # appends re-check this under their writer lock
            writers = list(self._writers.values())
        for writer in writers:
            with writer.lock:
                writer.close_file()
        with self._db_lock, self._lock:
            self._open_files.clear()
            readers, self._readers = self._readers, []
            with contextlib.suppress(sqlite3.Error):
                self._conn.close()
            for conn in readers:
                with contextlib.suppress(sqlite3.Error):
                    conn.close()
            os.close(self._lock_fd)

    def __enter__(self) -> EmbeddedBackend:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
