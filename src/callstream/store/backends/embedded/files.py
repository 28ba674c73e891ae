"""Every stream's append-only fragment files: appending with fsync, the descriptors kept
open (an LRU), cutting off what a failed append left, and recovery after a crash.

``<data_dir>/streams/<stream-id>/<file-no>.frag`` holds a stream's sealed records.
``<stream-id>`` is the stream's never-reused SQLite row id, ``<file-no>`` an 8-digit
counter; a stream rolls to a new file at ``file_size_limit`` bytes (64 MiB) or when the
file spans a tenth of the retention period (1 min .. 1 h), so retention frees whole files.

An append writes the record and fsyncs the file (and the directory when the file is new)
before its index row is committed. A failed append leaves nothing behind: a file or
directory it created is removed, a partial record at the end of a file is cut off.
Opening the store (:meth:`StreamFiles.recover`) truncates any bytes after the last indexed
record of each file and deletes unindexed files, so a record half-written by a crash is
never served.
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import logging
import os
import resource
import shutil
import sys
import threading
from collections import OrderedDict
from collections.abc import Callable, Collection
from pathlib import Path

from callstream.durable import sync_directory
from callstream.store.backends.embedded.space import is_full
from callstream.store.base import StorageFull, StoreError

__all__ = [
    "DEFAULT_FILE_SIZE_LIMIT",
    "O_CLOEXEC",
    "StreamFile",
    "StreamFiles",
    "default_max_open_files",
    "file_name",
    "file_span_ms",
    "parse_file_name",
    "sync_fd",
    "write_all",
]

log = logging.getLogger(__name__)

DEFAULT_FILE_SIZE_LIMIT = 64 * 1024 * 1024
"""A stream's fragment file is rolled when the next record would take it past this size."""

O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_FILE_SUFFIX = ".frag"
_HOUR_MS = 3_600_000


def file_span_ms(retention_hours: int) -> int:
    """Longest server-time span of one file: a tenth of the retention, 1 min .. 1 h."""
    return min(_HOUR_MS, max(60_000, retention_hours * _HOUR_MS // 10))


def file_name(file_no: int) -> str:
    """The name of a stream's file number ``file_no``."""
    return f"{file_no:08d}{_FILE_SUFFIX}"


def parse_file_name(name: str) -> int | None:
    """The file number of a fragment file's name, None for any other name."""
    stem, dot, suffix = name.partition(".")
    if dot and "." + suffix == _FILE_SUFFIX and stem.isdigit() and stem.isascii():
        return int(stem)
    return None


def sync_fd(fd: int) -> None:
    """Flush a file's data to stable storage (``F_FULLFSYNC`` on macOS)."""
    if sys.platform == "darwin":
        fcntl.fcntl(fd, fcntl.F_FULLFSYNC)
    else:
        os.fsync(fd)


def write_all(fd: int, data: bytes) -> None:
    """``os.write`` until all of ``data`` is written."""
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def default_max_open_files() -> int:
    """Fragment files kept open at once: a quarter of the process's descriptor limit
    (sockets need the rest), between 64 and 4096. Streams beyond it reopen their file
    per append."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 4096
    return max(64, min(4096, soft // 4))


class StreamFile:
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


class StreamFiles:
    """The files under ``streams_dir``: one :class:`StreamFile` per stream, at most
    ``max_open_files`` descriptors open (least recently used ones are closed).

    ``lock`` is the backend's lock of its in-memory maps (never held across I/O); it
    guards :attr:`writers` and the LRU here too.
    """

    def __init__(self, streams_dir: Path, *, max_open_files: int, lock: threading.RLock) -> None:
        self.streams_dir = streams_dir
        self.max_open_files = max_open_files
        self.writers: dict[int, StreamFile] = {}
        self._lock = lock
        self._open_files: OrderedDict[int, StreamFile] = OrderedDict()  # LRU of descriptors

    def stream_dir(self, stream_id: int) -> Path:
        """The directory of a stream's files."""
        return self.streams_dir / str(stream_id)

    def path(self, stream_id: int, file_no: int) -> str:
        """The path of one file of a stream."""
        return f"{self.streams_dir}{os.sep}{stream_id}{os.sep}{file_name(file_no)}"

    def forget(self, stream_id: int) -> None:
        """Drop a deleted stream's state; caller holds the lock."""
        self.writers.pop(stream_id, None)
        self._open_files.pop(stream_id, None)

    def recover(self, known: Collection[int], ends: Callable[[int], dict[int, int]]) -> None:
        """Drop what a crash may have left behind: bytes after the last indexed record of
        a file, files without indexed records, directories of streams not in ``known``.
        ``ends(stream_id)`` gives the end of the last indexed record of each file."""
        self.streams_dir.mkdir(exist_ok=True, mode=0o700)
        removed_dirs = False
        for entry in os.scandir(self.streams_dir):
            sid = int(entry.name) if entry.name.isdigit() and entry.name.isascii() else None
            if sid is None or sid not in known:
                log.warning("removing orphaned stream directory %s", entry.path)
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path, ignore_errors=True)
                else:
                    with contextlib.suppress(OSError):
                        os.unlink(entry.path)
                removed_dirs = True
                continue
            file_ends = ends(sid)
            changed = False
            highest = 0
            for fentry in os.scandir(entry.path):
                file_no = parse_file_name(fentry.name)
                if file_no is None:
                    continue
                highest = max(highest, file_no)
                end = file_ends.pop(file_no, None)
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
                        sync_fd(fd)
                    finally:
                        os.close(fd)
                elif size < end:
                    log.error("%s is shorter (%d) than its index (%d)", fentry.path, size, end)
            for file_no in file_ends:
                log.error("%s is missing", Path(entry.path) / file_name(file_no))
            if changed:
                sync_directory(Path(entry.path))
            self.writers[sid].next_file_no = highest + 1
        if removed_dirs:
            sync_directory(self.streams_dir)

    # --- appending -------------------------------------------------------------------------
    def append(
        self,
        stream_id: int,
        writer: StreamFile,
        blob: bytes,
        server_timestamp_ms: int,
        *,
        size_limit: int,
        span_ms: int,
    ) -> tuple[int, int]:
        """Append and fsync one record; returns its ``(file_no, offset)``. Caller holds
        ``writer.lock``. Raises :class:`StorageFull` or :class:`StoreError` when it
        cannot be written (nothing of it is then left in the file)."""
        if writer.size > 0 and (
            writer.size + len(blob) > size_limit or server_timestamp_ms - writer.first_ts > span_ms
        ):
            writer.close_file()
        if writer.fd is None:
            if writer.size > 0:
                self.reopen(stream_id, writer)
            if writer.fd is None:
                try:
                    self.open_new(stream_id, writer)
                except OSError as exc:
                    error_type = StorageFull if is_full(exc) else StoreError
                    raise error_type(f"cannot create a fragment file: {exc}") from exc
            self._note_open(stream_id, writer)
        else:
            with self._lock:
                if stream_id in self._open_files:
                    self._open_files.move_to_end(stream_id)
        fd = writer.fd
        assert fd is not None
        offset = writer.size
        try:
            write_all(fd, blob)
            sync_fd(fd)
        except OSError as exc:
            # Cut the partial record off (or remove the file if it held nothing else);
            # if even that fails the tail stays unindexed, and the next open cuts it.
            # Never append after it.
            self.cut_tail(stream_id, writer, offset)
            writer.close_file()
            error_type = StorageFull if is_full(exc) else StoreError
            raise error_type(f"cannot persist fragment: {exc}") from exc
        if offset == 0:
            writer.first_ts = server_timestamp_ms
        writer.size = offset + len(blob)
        writer.unindexed[writer.file_no] = writer.unindexed.get(writer.file_no, 0) + 1
        return writer.file_no, offset

    def indexed(
        self, stream_id: int, file_no: int, offset: int, length: int, *, failed: bool
    ) -> None:
        """The index row of a written record was committed, or ``failed``: then the
        record is cut off again if nothing follows it in its file (else it stays,
        unindexed: never served, and dropped by the next open if nothing indexed follows)."""
        with self._lock:
            writer = self.writers.get(stream_id)
        if writer is None:
            return
        with writer.lock:
            if (
                failed
                and not writer.deleted
                and writer.file_no == file_no
                and writer.size == offset + length
            ):
                self.cut_tail(stream_id, writer, offset)
            left = writer.unindexed.get(file_no, 0) - 1
            if left > 0:
                writer.unindexed[file_no] = left
            else:
                writer.unindexed.pop(file_no, None)

    def reopen(self, stream_id: int, writer: StreamFile) -> None:
        """Reopen a suspended writer's file; start a new file if it changed meanwhile."""
        path = self.stream_dir(stream_id) / file_name(writer.file_no)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | O_CLOEXEC)
        except FileNotFoundError:
            writer.close_file()
            return
        if os.fstat(fd).st_size != writer.size:
            os.close(fd)
            writer.close_file()
            return
        writer.fd = fd

    def _note_open(self, stream_id: int, writer: StreamFile) -> None:
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

    def open_new(self, stream_id: int, writer: StreamFile) -> None:
        """Create the stream's next file (and its directory); on failure nothing created
        is left behind."""
        stream_dir = self.stream_dir(stream_id)
        if not stream_dir.is_dir():
            stream_dir.mkdir(mode=0o700, exist_ok=True)
            try:
                sync_directory(self.streams_dir)
            except OSError:
                self._remove_empty_dir(stream_dir)
                raise
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | O_CLOEXEC
        while True:
            file_no = writer.next_file_no
            writer.next_file_no += 1
            try:
                fd = os.open(stream_dir / file_name(file_no), flags, 0o600)
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
            sync_directory(stream_dir)
        except OSError:
            self.cut_tail(stream_id, writer, 0)
            writer.close_file()
            raise

    def _remove_empty_dir(self, stream_dir: Path) -> None:
        """Remove a stream directory that holds no file (best effort)."""
        try:
            stream_dir.rmdir()
        except OSError:  # not empty, or already gone
            return
        with contextlib.suppress(OSError):
            sync_directory(self.streams_dir)

    def cut_tail(self, stream_id: int, writer: StreamFile, offset: int) -> None:
        """Cut the writer's current file back to ``offset`` bytes, where a record that
        was not indexed starts; caller holds ``writer.lock``. A file left empty is
        removed (with its directory, if that is empty too): nothing of a failed append
        stays on disk. On error the file is closed as it is (the next open cuts it)."""
        path = self.stream_dir(stream_id) / file_name(writer.file_no)
        try:
            if offset == 0:
                writer.suspend()
                path.unlink()
                sync_directory(path.parent)
                writer.close_file()
                self._remove_empty_dir(path.parent)
                return
            if writer.fd is not None:
                os.ftruncate(writer.fd, offset)
            else:
                fd = os.open(path, os.O_WRONLY | O_CLOEXEC)
                try:
                    os.ftruncate(fd, offset)
                finally:
                    os.close(fd)
            writer.size = offset
        except OSError as exc:
            log.warning("cannot cut %s back to %d bytes: %s", path, offset, exc)
            writer.close_file()

    # --- deleting ----------------------------------------------------------------------------
    def unlink(self, stream_id: int, writer: StreamFile, file_nos: list[int]) -> int:
        """Unlink files whose index rows are committed as gone; caller holds
        ``writer.lock``. Returns the bytes freed."""
        stream_dir = self.stream_dir(stream_id)
        freed = 0
        for file_no in file_nos:
            if writer.file_no == file_no:
                writer.close_file()
            path = stream_dir / file_name(file_no)
            try:
                freed += path.stat().st_size
                path.unlink()
            except FileNotFoundError:
                pass
        if file_nos:
            sync_directory(stream_dir)
        return freed

    def remove_stream(self, stream_id: int) -> None:
        """Remove a deleted stream's directory (what is left of it)."""
        stream_dir = self.stream_dir(stream_id)
        if stream_dir.exists():
            shutil.rmtree(stream_dir, ignore_errors=True)
            sync_directory(self.streams_dir)

    def close_all(self) -> None:
        """Close every descriptor (the store is closing)."""
        with self._lock:
            writers = list(self.writers.values())
        for writer in writers:
            with writer.lock:
                writer.close_file()
        with self._lock:
            self._open_files.clear()
