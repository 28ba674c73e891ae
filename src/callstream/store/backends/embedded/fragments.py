"""The fragments of every stream: appending them, reading and querying them, and deleting
them (retention, a deleted stream).

An append seals the fragment into a record (:mod:`.records`), appends and fsyncs it to
its stream's file (:mod:`.files`), and commits its index row together with those of
concurrent appends (:mod:`.index`); a retention-0 stream's fragment goes to the host
buffer instead (:mod:`.memory`). Fragment numbers come from :mod:`.sequences`.

Deleting always commits the index change first and unlinks files after it: a crash in
between leaves files without index rows, which the next open deletes; the other order
would leave index rows pointing at missing files. Deletions go in chunks of about
``_DELETE_CHUNK_ROWS`` rows, so that one chunk's WAL fits in the full-disk reserve
(:mod:`.space`), and the files each chunk frees make room for the next.
"""

from __future__ import annotations

import functools
import logging
import os
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path

from callstream.store.backends.embedded.files import (
    O_CLOEXEC,
    StreamFile,
    StreamFiles,
    file_span_ms,
)
from callstream.store.backends.embedded.index import (
    Index,
    check_fragment_fields,
    expire_rows,
    file_chunks,
    fragment_filter,
)
from callstream.store.backends.embedded.memory import MemBuffer, MemEntry, select
from callstream.store.backends.embedded.records import open_record, seal_record
from callstream.store.backends.embedded.sequences import Sequences
from callstream.store.backends.embedded.space import Reserve, freeing_txn, is_full
from callstream.store.backends.embedded.streams import StreamEntry, StreamTable
from callstream.store.base import (
    STREAM_NOT_FOUND,
    FragmentAppend,
    FragmentData,
    FragmentNotFound,
    FragmentRecord,
    IntegrityError,
    InvalidArgument,
    StorageFull,
    StoreError,
    StreamNotFound,
    StreamRecord,
)
from callstream.store.crypto import Keyring, RecordCipher
from callstream.store.numbers import parse_fragment_number

__all__ = ["FragmentStore"]

log = logging.getLogger(__name__)

_HOUR_MS = 3_600_000
_DELETE_CHUNK_ROWS = 2000  # index rows deleted per transaction (WAL: well under 1 MiB)


class FragmentStore:
    """The fragment half of :class:`~.backend.EmbeddedBackend` (which owns the parts
    passed in and delegates its fragment methods here; see there for thread safety).

    ``lock`` is the backend's lock of its in-memory maps (never held across I/O).
    """

    def __init__(
        self,
        *,
        lock: threading.RLock,
        streams: StreamTable,
        index: Index,
        files: StreamFiles,
        reserve: Reserve,
        keyring: Keyring,
        data_dir: Path,
        file_size_limit: int,
        memory_buffer_ms: int,
        memory_buffer_bytes: int,
    ) -> None:
        self._lock = lock
        self._streams = streams
        self._index = index
        self._files = files
        self._reserve = reserve
        self._keyring = keyring
        self._data_dir = data_dir
        self._file_size_limit = file_size_limit
        self._memory_buffer_ms = memory_buffer_ms
        self._memory_buffer_bytes = memory_buffer_bytes
        self._check_open = index.check_open
        self.sequences = Sequences(index, check_open=index.check_open)
        self._mem: dict[int, MemBuffer] = {}
        self._ciphers: dict[int, RecordCipher] = {}

    # --- streams ---------------------------------------------------------------------------
    def resolve(self, stream: StreamRecord) -> StreamEntry:
        """The entry of ``stream``; :class:`StreamNotFound` if it was deleted."""
        with self._lock:
            st = self._streams.by_arn.get(stream.arn)
        if st is None:
            raise StreamNotFound(f"stream {stream.arn} not found")
        return st

    def writer(self, stream_id: int) -> StreamFile:
        """The append state of a stream's files; :class:`StreamNotFound` if deleted."""
        with self._lock:
            w = self._files.writers.get(stream_id)
            if w is None or stream_id not in self._streams.by_id:
                raise StreamNotFound("stream not found")
            return w

    def add_cipher(self, stream_id: int, cipher: RecordCipher) -> None:
        """Keep a new stream's record cipher (else it is unwrapped on first use)."""
        with self._lock:
            self._ciphers[stream_id] = cipher

    def _cipher(self, st: StreamEntry) -> RecordCipher:
        with self._lock:
            cipher = self._ciphers.get(st.id)
        if cipher is None:
            data_key = self._keyring.unwrap_data_key(
                st.master_key_id, st.wrapped_key, context=st.record.arn
            )
            cipher = RecordCipher(data_key, st.record.arn)
            with self._lock:
                cipher = self._ciphers.setdefault(st.id, cipher)
        return cipher

    def forget(self, stream_id: int) -> None:
        """Drop a deleted stream's state; caller holds the lock."""
        self._mem.pop(stream_id, None)
        self.sequences.forget(stream_id)
        self._ciphers.pop(stream_id, None)

    # --- appending -----------------------------------------------------------------------
    def append(self, items: Sequence[FragmentAppend]) -> list[FragmentRecord | StoreError]:
        """:meth:`EmbeddedBackend.append_fragments`."""
        self._check_open()
        results: list[FragmentRecord | StoreError] = []
        rows: list[tuple[int, tuple[object, ...]]] = []  # result slot, index row
        for item in items:
            try:
                seq, _, _ = parse_fragment_number(item.fragment_number)
                check_fragment_fields(item)
                st = self.resolve(item.stream)
                record = item.record()
                if st.record.data_retention_hours == 0:
                    self._append_memory(st, record, item.data)
                    self.sequences.observe(st.id, seq, persist=True)
                else:
                    blob = seal_record(self._cipher(st), item.fragment_number, item.data)
                    rows.append((len(results), self._write(st, record, seq, blob)))
            except StoreError as err:
                results.append(err)
                continue
            except Exception as err:  # e.g. EMFILE or ENOSPC opening a file: this item only
                log.warning("cannot store fragment %s: %s", item.fragment_number, err)
                error_type = StorageFull if is_full(err) else StoreError
                results.append(error_type(f"cannot persist fragment: {err}"))
                continue
            results.append(record)
        errors: list[BaseException | None] = [StoreError("not indexed")] * len(rows)
        try:
            errors = self._index.commit_rows([row for _, row in rows])
        finally:
            for (slot, row), error in zip(rows, errors, strict=True):
                stream_id, row_seq, file_no, offset, length = row[0], row[2], *row[8:11]
                assert isinstance(stream_id, int) and isinstance(row_seq, int)
                assert isinstance(file_no, int) and isinstance(offset, int)
                assert isinstance(length, int)
                self._files.indexed(stream_id, file_no, offset, length, failed=error is not None)
                if error is None:
                    self.sequences.observe(stream_id, row_seq, persist=False)
                elif stream_id not in self._streams.by_id:  # deleted meanwhile
                    results[slot] = StreamNotFound(STREAM_NOT_FOUND)
                elif isinstance(error, sqlite3.IntegrityError):
                    number = results[slot].fragment_number  # type: ignore[union-attr]
                    results[slot] = InvalidArgument(f"duplicate fragment number {number}")
                elif isinstance(error, OverflowError | sqlite3.InterfaceError):
                    results[slot] = InvalidArgument(f"fragment field out of range: {error}")
                elif is_full(error):
                    results[slot] = StorageFull(f"cannot index fragment, disk full: {error}")
                else:
                    results[slot] = StoreError(f"cannot index fragment: {error}")
        return results

    def _append_memory(self, st: StreamEntry, record: FragmentRecord, data: FragmentData) -> None:
        with self._lock:
            if st.id not in self._streams.by_id:
                raise StreamNotFound(STREAM_NOT_FOUND)
            buf = self._mem.setdefault(st.id, MemBuffer())
            if record.fragment_number in buf.by_number:
                raise InvalidArgument(f"duplicate fragment number {record.fragment_number}")
            buf.add(
                MemEntry(record, data, data.size),
                window_ms=self._memory_buffer_ms,
                max_bytes=self._memory_buffer_bytes,
            )

    def _write(
        self, st: StreamEntry, record: FragmentRecord, seq: int, blob: bytes
    ) -> tuple[object, ...]:
        """Append and fsync one sealed record; returns its index row (not yet committed)."""
        writer = self.writer(st.id)
        with writer.lock:
            if writer.deleted:
                raise StreamNotFound(STREAM_NOT_FOUND)
            self._check_open()
            file_no, offset = self._files.append(
                st.id,
                writer,
                blob,
                record.server_timestamp_ms,
                size_limit=self._file_size_limit,
                span_ms=file_span_ms(st.record.data_retention_hours),
            )
            return (
                st.id,
                record.fragment_number,
                seq,
                record.server_timestamp_ms,
                record.producer_timestamp_ms,
                record.duration_ms,
                record.size,
                record.cluster_timecode,
                file_no,
                offset,
                len(blob),
            )

    def next_sequence(self, stream: StreamRecord) -> int:
        """:meth:`EmbeddedBackend.next_sequence`."""
        self._check_open()
        return self.sequences.next(self.resolve(stream).id)

    # --- reading -------------------------------------------------------------------------
    def query(
        self,
        stream: StreamRecord,
        *,
        after_number: str | None = None,
        start_ms: int | None = None,
        end_ms: int | None = None,
        by: str = "server",
        limit: int | None = None,
    ) -> list[FragmentRecord]:
        """:meth:`EmbeddedBackend.fragments`: the index's rows and the host buffer's."""
        self._check_open()
        if by not in ("server", "producer"):
            raise InvalidArgument(f"unknown timestamp selector {by!r}")
        if after_number is not None:
            parse_fragment_number(after_number)
        if limit is not None and limit < 0:
            raise InvalidArgument("limit must be >= 0")
        st = self.resolve(stream)
        if limit == 0:
            return []
        out = self._index.fragment_records(
            st.record.arn,
            st.id,
            after_number=after_number,
            start_ms=start_ms,
            end_ms=end_ms,
            by=by,
            limit=limit,
        )
        with self._lock:
            buf = self._mem.get(st.id)
            mem = list(buf.entries) if buf is not None else []
        if mem:
            out += select(mem, after_number=after_number, start_ms=start_ms, end_ms=end_ms, by=by)
            out.sort(key=lambda r: r.fragment_number)
            if limit is not None:
                del out[limit:]
        return out

    def last(self, stream: StreamRecord) -> FragmentRecord | None:
        """:meth:`EmbeddedBackend.last_fragment`."""
        self._check_open()
        st = self.resolve(stream)
        newest = self._index.last_record(st.record.arn, st.id)
        with self._lock:
            buf = self._mem.get(st.id)
            if buf is not None and buf.entries:
                mem_newest = max(buf.entries, key=lambda e: e.record.fragment_number).record
                if newest is None or mem_newest.fragment_number > newest.fragment_number:
                    newest = mem_newest
        return newest

    def read(self, stream: StreamRecord, fragment_number: str) -> FragmentData:
        """:meth:`EmbeddedBackend.read_fragment`: from the host buffer, else the file."""
        self._check_open()
        parse_fragment_number(fragment_number)
        st = self.resolve(stream)
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
            fd = os.open(path, os.O_RDONLY | O_CLOEXEC)
            try:
                raw = os.pread(fd, length, offset)
            finally:
                os.close(fd)
        except FileNotFoundError:
            if self._locate(st, fragment_number) is None:  # reaped meanwhile
                raise FragmentNotFound(f"fragment {fragment_number} not found") from None
            raise IntegrityError(f"fragment {fragment_number}: file {path} is missing") from None
        return open_record(self._cipher(st), fragment_number, raw, length)

    def _locate(self, st: StreamEntry, fragment_number: str) -> tuple[str, int, int] | None:
        row = self._index.locate(st.id, fragment_number)
        if row is None:
            return None
        return self._files.path(st.id, row[0]), row[1], row[2]

    def locate(self, stream: StreamRecord, fragment_number: str) -> tuple[Path, int, int]:
        """:meth:`EmbeddedBackend.locate_fragment`."""
        self._check_open()
        location = self._locate(self.resolve(stream), fragment_number)
        if location is None:
            raise FragmentNotFound(f"fragment {fragment_number} is not stored on disk")
        return Path(location[0]), location[1], location[2]

    # --- retention -----------------------------------------------------------------------
    def reap(self, now_ms: int) -> int:
        """:meth:`EmbeddedBackend.reap`."""
        self._check_open()
        freed = 0
        with self._lock:
            streams = list(self._streams.by_id.values())
            for st in streams:
                buf = self._mem.get(st.id)
                if buf is not None:
                    freed += buf.evict(
                        now_ms - self._memory_buffer_ms, max_bytes=self._memory_buffer_bytes
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
        self._reserve.ensure()
        return freed

    def _reap_stream(self, st: StreamEntry, cutoff: int | None) -> int:
        where, params = fragment_filter(st.id, cutoff)
        counts = self._index.file_counts(where, params)
        if not counts:
            return 0
        try:
            writer = self.writer(st.id)
        except StreamNotFound:
            return 0
        with writer.lock:
            return self._drop(st.id, writer, where, params, counts)

    def drop_stream_files(self, stream_id: int, writer: StreamFile) -> None:
        """Delete a stream's fragments, oldest files first, in chunks, except the last
        chunk (which goes with the stream's row); caller holds ``writer.lock``."""
        where, params = fragment_filter(stream_id, None)
        counts = self._index.file_counts(where, params)
        self._drop(stream_id, writer, where, params, counts, keep_last_chunk=True)

    def _drop(
        self,
        stream_id: int,
        writer: StreamFile,
        where: str,
        params: tuple[int, ...],
        counts: list[tuple[int, int]],
        *,
        keep_last_chunk: bool = False,
    ) -> int:
        """Per chunk of the files in ``counts`` (:meth:`Index.file_counts` of ``where``):
        commit the deletion of their rows ``where``, then unlink those of them left
        without rows; returns the bytes freed. Caller holds ``writer.lock``."""
        chunks = file_chunks(counts, _DELETE_CHUNK_ROWS)
        if keep_last_chunk:
            del chunks[-1:]
        freed = 0
        for first, last in chunks:
            if writer.deleted:
                return freed
            expire = functools.partial(expire_rows, stream_id, where, params, first, last)
            with self._index.db_lock:
                self._check_open()
                max_seq, live = freeing_txn(self._index.txn, self._reserve, expire, self._data_dir)
            self.sequences.expired(stream_id, max_seq)
            dead = [
                f
                for f, _ in counts
                if first <= f <= last and f not in live and f not in writer.unindexed
            ]
            freed += self._files.unlink(stream_id, writer, dead)
        return freed
