"""The embedded backend: :class:`EmbeddedBackend`, a data directory's streams and
fragments behind the synchronous :class:`~callstream.store.base.Backend` protocol.

Data directory layout::

    <data_dir>/LOCK                         flock'ed while a store has the directory open
    <data_dir>/index.sqlite3 (+ -wal, -shm) streams and the fragment index (:mod:`.index`)
    <data_dir>/keys.json                    master keys (default keyring location, mode 0600)
    <data_dir>/reserve                      space held back for deletions on a full disk
    <data_dir>/streams/<stream-id>/<file-no>.frag   sealed fragment records (:mod:`.files`)

This module holds the directory (opening, recovery, closing) and the streams (create,
describe, list, update, delete; fields validated by :mod:`callstream.kvs.model`); the
fragments are :class:`~.fragments.FragmentStore`'s.
"""

from __future__ import annotations

import fcntl
import functools
import os
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from callstream.kvs.model import stream_arn
from callstream.store.backends.embedded.files import (
    DEFAULT_FILE_SIZE_LIMIT,
    O_CLOEXEC,
    StreamFile,
    StreamFiles,
    default_max_open_files,
)
from callstream.store.backends.embedded.fragments import FragmentStore
from callstream.store.backends.embedded.index import Index, drop_stream_rows
from callstream.store.backends.embedded.memory import MEMORY_BUFFER_BYTES, MEMORY_BUFFER_MS
from callstream.store.backends.embedded.space import (
    DEFAULT_RESERVE_BYTES,
    RESERVE_NAME,
    Reserve,
    freeing_txn,
)
from callstream.store.backends.embedded.streams import StreamEntry, StreamTable
from callstream.store.base import (
    STREAM_NOT_FOUND,
    FragmentAppend,
    FragmentData,
    FragmentRecord,
    InvalidArgument,
    NewStream,
    StoreError,
    StreamInUse,
    StreamLimitExceeded,
    StreamNotFound,
    StreamRecord,
    VersionMismatch,
    changed_stream,
    check_stream_changes,
    copy_stream,
    now_ms,
)
from callstream.store.crypto import Keyring, RecordCipher, new_data_key, stream_key_ids

__all__ = ["DataDirLocked", "EmbeddedBackend"]


class DataDirLocked(StoreError):
    """Another store (in this or another process) has the data directory open."""


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
        self.reserve_bytes = max(0, reserve_bytes)
        self.keyring = keyring if keyring is not None else Keyring(self.data_dir / "keys.json")

        # Lock order: file lock -> group commit -> sequences -> index db_lock -> _lock.
        self._lock = threading.RLock()  # in-memory maps; never held across I/O
        self._closed = False
        self._streams = StreamTable()
        self._files = StreamFiles(
            self.data_dir / "streams",
            max_open_files=max(
                1, default_max_open_files() if max_open_files is None else max_open_files
            ),
            lock=self._lock,
        )
        self._reserve = Reserve(self.data_dir / RESERVE_NAME, self.reserve_bytes)

        self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._lock_fd = os.open(self.data_dir / "LOCK", os.O_RDWR | os.O_CREAT | O_CLOEXEC, 0o600)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock_fd)
            raise DataDirLocked(f"data directory {self.data_dir} is in use") from None
        try:
            self._index = Index(self.data_dir / "index.sqlite3", check_open=self._check_open)
            self._fragments = FragmentStore(
                lock=self._lock,
                streams=self._streams,
                index=self._index,
                files=self._files,
                reserve=self._reserve,
                keyring=self.keyring,
                data_dir=self.data_dir,
                file_size_limit=self.file_size_limit,
                memory_buffer_ms=self.memory_buffer_ms,
                memory_buffer_bytes=self.memory_buffer_bytes,
            )
            self._load()
            self._files.recover(self._streams.by_id.keys(), self._index.file_ends)
        except BaseException:
            os.close(self._lock_fd)
            raise
        self._reserve.ensure()

    @property
    def max_open_files(self) -> int:
        """Fragment files kept open at once (least recently used ones are closed)."""
        return self._files.max_open_files

    @max_open_files.setter
    def max_open_files(self, value: int) -> None:
        self._files.max_open_files = max(1, value)

    # --- plumbing ----------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise StoreError("the store is closed")

    def _load(self) -> None:
        highest = self._index.highest_sequences()
        for row in self._index.stream_rows():
            st = StreamEntry.from_row(row)
            self._add_stream(st)
            self._fragments.sequences.load(
                st.id, reserved=row[13], highest_stored=highest.get(st.id) or 0
            )

    def _add_stream(self, st: StreamEntry) -> None:
        self._streams.add(st)
        self._files.writers.setdefault(st.id, StreamFile())

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
        new = NewStream.checked(
            name,
            device_name=device_name,
            media_type=media_type,
            kms_key_id=kms_key_id,
            data_retention_hours=data_retention_hours,
            tags=tags,
        )
        reported_kms, master_key_id = stream_key_ids(new.kms_key_id, self.region, self.account_id)
        data_key = new_data_key()

        with self._index.db_lock:
            self._check_open()
            with self._lock:
                if name in self._streams.by_name:
                    raise StreamInUse(f"stream {name} already exists")
                if len(self._streams) >= self.max_streams:
                    raise StreamLimitExceeded(
                        f"the account already has {len(self._streams)} streams"
                    )
                creation_ms = max(now_ms(), self._streams.last_creation_ms + 1)
            arn = stream_arn(self.region, self.account_id, name, creation_ms)
            wrapped = self.keyring.wrap_data_key(master_key_id, data_key, context=arn)
            record = new.record(arn=arn, creation_time_ms=creation_ms, kms_key_id=reported_kms)
            try:
                stream_id = self._index.insert_stream(record, master_key_id, wrapped)
            except sqlite3.IntegrityError:
                raise StreamInUse(f"stream {name} already exists") from None
            st = StreamEntry(
                id=stream_id, record=record, master_key_id=master_key_id, wrapped_key=wrapped
            )
            with self._lock:
                self._add_stream(st)
                self._fragments.sequences.load(stream_id, reserved=0, highest_stored=0)
                self._fragments.add_cipher(stream_id, RecordCipher(data_key, arn))
        return copy_stream(record)

    def get_stream(self, *, name: str | None = None, arn: str | None = None) -> StreamRecord:
        """The stream with ``name`` and/or ``arn``; :class:`StreamNotFound` when absent."""
        if name is None and arn is None:
            raise InvalidArgument("StreamName or StreamARN is required")
        with self._lock:
            self._check_open()
            st = self._streams.find(name=name, arn=arn)
            if st is None:
                raise StreamNotFound(STREAM_NOT_FOUND)
            return copy_stream(st.record)

    def list_streams(
        self, *, prefix: str | None, after_name: str | None, limit: int
    ) -> list[StreamRecord]:
        """Streams ordered by name, names > ``after_name``, starting with ``prefix``."""
        if limit < 0:
            raise InvalidArgument("limit must be >= 0")
        with self._lock:
            self._check_open()
            return self._streams.list(prefix=prefix, after_name=after_name, limit=limit)

    def update_stream(self, arn: str, current_version: str, **changes: object) -> StreamRecord:
        """Apply ``changes`` (``device_name``, ``media_type``, ``data_retention_hours``,
        ``tags`` — the complete new tag set) if ``current_version`` matches; assigns a new
        version. :class:`VersionMismatch` on a stale version."""
        check_stream_changes(changes)
        with self._index.db_lock:
            self._check_open()
            with self._lock:
                st = self._streams.by_arn.get(arn)
            if st is None:
                raise StreamNotFound(STREAM_NOT_FOUND)
            if st.record.version != current_version:
                raise VersionMismatch(f"stream version is not {current_version}")
            new = changed_stream(st.record, changes)
            self._index.update_stream(st.id, new)
            with self._lock:
                st.record = new
        return copy_stream(new)

    def delete_stream(self, arn: str, current_version: str | None) -> None:
        """Delete the stream, its index rows and its files (space is freed at once).
        ``current_version=None`` skips the version check.

        Works on a full disk (see :mod:`.space`): a stream with many fragments is deleted
        in chunks, oldest files first, each chunk's index rows committed before its files
        are unlinked; the stream row goes with the last chunk. If even that cannot commit,
        :class:`StorageFull` is raised and the stream remains, without the chunks already
        deleted."""
        with self._lock:
            self._check_open()
            st = self._streams.by_arn.get(arn)
        if st is None:
            raise StreamNotFound(STREAM_NOT_FOUND)
        writer = self._fragments.writer(st.id)
        db_lock = self._index.db_lock
        with writer.lock:
            with db_lock:
                self._check_open()
                if st.id not in self._streams.by_id:
                    raise StreamNotFound(STREAM_NOT_FOUND)
                if current_version is not None and st.record.version != current_version:
                    raise VersionMismatch(f"stream version is not {current_version}")
            self._fragments.drop_stream_files(st.id, writer)
            with db_lock:
                self._check_open()
                drop = functools.partial(drop_stream_rows, st.id)
                freeing_txn(self._index.txn, self._reserve, drop, self.data_dir)
                writer.deleted = True
                writer.close_file()
                with self._lock:
                    self._streams.remove(st)
                    self._files.forget(st.id)
                    self._fragments.forget(st.id)
        self._files.remove_stream(st.id)
        self._reserve.ensure()

    # --- appending -----------------------------------------------------------------------
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
        return self._fragments.append(items)

    def next_sequence(self, stream: StreamRecord) -> int:
        """Next per-stream fragment sequence (1, 2, 3 ...). Never repeats a value, also
        across restarts: the counter restarts above the index's MAX(seq) and a persisted
        reservation (so after a restart there may be a gap of up to 1024)."""
        return self._fragments.next_sequence(stream)

    # --- reading -------------------------------------------------------------------------
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
        return self._fragments.query(
            stream, after_number=after_number, start_ms=start_ms, end_ms=end_ms, by=by, limit=limit
        )

    def last_fragment(self, stream: StreamRecord) -> FragmentRecord | None:
        """The stream's newest fragment (highest number), or None — without listing all."""
        return self._fragments.last(stream)

    def read_fragment(self, stream: StreamRecord, fragment_number: str) -> FragmentData:
        """Decrypt and verify one fragment; :class:`IntegrityError` if its stored bytes were
        modified, truncated or moved, :class:`FragmentNotFound` if there is no such
        fragment (or it expired)."""
        return self._fragments.read(stream, fragment_number)

    def locate_fragment(self, stream: StreamRecord, fragment_number: str) -> tuple[Path, int, int]:
        """``(file, offset, length)`` of a stored record (for tooling and tests);
        :class:`FragmentNotFound` for unknown or in-memory fragments."""
        return self._fragments.locate(stream, fragment_number)

    # --- retention -----------------------------------------------------------------------
    def reap(self, now_ms: int) -> int:
        """Expire fragments whose server timestamp is older than ``now_ms`` minus their
        stream's retention (retention-0 streams: the memory window). Index rows go at once;
        a file is deleted once none of its records is left. Returns the bytes freed (file
        sizes unlinked plus memory-buffer bytes dropped).

        Works on a full disk (see :mod:`.space`). A stream that cannot be reaped (its
        failure is logged, one line) does not keep the others from being reaped."""
        return self._fragments.reap(now_ms)

    # --- lifecycle -----------------------------------------------------------------------
    def close(self) -> None:
        """Close files and connections and release the data directory. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True  # appends re-check this under their writer lock
        self._files.close_all()
        with self._index.db_lock, self._lock:
            self._index.close()
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
