"""The event journal: append-only JSON Lines segments in one directory.

Layout (``<data_dir>/events/``)::

    LOCK                          flock'ed while a journal has the directory open
    journal.json                  {"JournalId": "<uuid4>", "Format": 1}
    00000000000000000001.jsonl    segment: events from cursor 1, one wire-form event per line
    00000000000000052210.jsonl    the next segment starts at cursor 52210 ...

Each line is an event's wire form (:func:`callstream.events.types.encode`) and a newline;
the cursors in a segment are consecutive from the number in its name, so a cursor's line
is found by counting (a sparse in-memory index of every 128th line's offset, built the
first time a segment is read, saves the counting). Segments are written by one thread
(:meth:`Journal.append`): a batch is written and ``fdatasync``-ed before the call
returns, and nothing reads past the last durable line.

* **Rotation**: a new segment starts when the current one reaches ``segment_bytes``
  (default 16 MiB) or has been open for a tenth of ``max_age_s``.
* **Retention**: whole segments are deleted, oldest first, while the journal is larger
  than ``max_bytes`` (default 1 GiB) or a segment's last write is older than ``max_age_s``
  (default 7 days); the segment being written is never deleted. A reader asking for
  cursors older than the oldest segment gets events from the oldest one kept.
* **Recovery**: on open, the last segment is read through; everything after the last
  whole line that carries the expected cursor (a torn line, zeros a crash left behind)
  is truncated away. Those events were never durable, so no reader has seen them; their
  cursors are given to the next events published.
* **Identity**: ``JournalId`` changes only when the directory is created anew, so a
  subscriber that keeps a cursor elsewhere (the contact-record subscriber keeps it in
  ``contacts.sqlite3``) can tell a cursor of a journal that no longer exists.
"""

from __future__ import annotations

import bisect
import contextlib
import fcntl
import json
import logging
import os
import re
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from callstream.durable import replace_file, sync_directory
from callstream.events.types import Event, EventError, decode

__all__ = ["Journal", "JournalLocked", "Retention"]

log = logging.getLogger("callstream.events")

_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_SEGMENT = re.compile(r"^(\d{20})\.jsonl$")
INDEX_EVERY = 128
"""Lines between two entries of a segment's sparse offset index."""


class JournalLocked(RuntimeError):
    """Another journal (in this or another process) has the directory open."""


@dataclass(frozen=True, slots=True)
class Retention:
    """How much journal is kept (see the module docstring)."""

    max_bytes: int = 1024 * 1024 * 1024
    max_age_s: float = 7 * 24 * 3600.0
    segment_bytes: int = 16 * 1024 * 1024


@dataclass(slots=True)
class _Segment:
    first: int  # cursor of the first line
    path: Path
    size: int  # bytes of durable, whole lines
    count: int  # lines
    modified: float  # wall-clock time of the last append
    opened: float  # when it became the segment being written (rotation by age)
    index: list[tuple[int, int]] | None  # (cursor, offset) of every INDEX_EVERY-th line

    @property
    def last(self) -> int:
        return self.first + self.count - 1


def _segment_name(first: int) -> str:
    return f"{first:020d}.jsonl"


class Journal:
    """Durable, ordered storage of encoded events (see the module docstring).
    :meth:`append` is for one writer thread; :meth:`read` may run on any thread."""

    def __init__(self, directory: Path, retention: Retention | None = None) -> None:
        self.directory = Path(directory)
        self.retention = retention or Retention()
        self.directory.mkdir(parents=True, exist_ok=True)
        self._lock_fd = os.open(self.directory / "LOCK", os.O_RDWR | os.O_CREAT | _O_CLOEXEC, 0o600)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock_fd)
            raise JournalLocked(f"event journal {self.directory} is in use") from None
        self._lock = threading.Lock()  # the segment list; never held across I/O
        self._fd: int | None = None
        self._last_retention = 0.0
        try:
            self.journal_id = self._identity()
            self._segments = self._load()
            self._recover(self._segments[-1])
            self._fd = os.open(
                self._segments[-1].path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | _O_CLOEXEC, 0o600
            )
            self._apply_retention(time.time())
        except BaseException:
            self.close()
            raise

    # --- opening ----------------------------------------------------------------------

    def _identity(self) -> str:
        meta = self.directory / "journal.json"
        try:
            data = json.loads(meta.read_text())
            journal_id = data["JournalId"]
            if isinstance(journal_id, str) and journal_id:
                return journal_id
        except FileNotFoundError:
            pass
        except (ValueError, KeyError, TypeError):
            log.warning("%s is unreadable; the journal gets a new identity", meta)
        journal_id = str(uuid.uuid4())
        data = json.dumps({"JournalId": journal_id, "Format": 1}).encode()
        replace_file(meta, data, mode=0o666, sync_parent=True)
        return journal_id

    def _load(self) -> list[_Segment]:
        found: list[tuple[int, Path]] = []
        for entry in self.directory.iterdir():
            match = _SEGMENT.match(entry.name)
            if match:
                found.append((int(match.group(1)), entry))
        found.sort()
        if not found:
            path = self.directory / _segment_name(1)
            path.touch(mode=0o600)
            sync_directory(self.directory)
            found = [(1, path)]
        segments: list[_Segment] = []
        now = time.time()
        for i, (first, path) in enumerate(found):
            stat = path.stat()
            # Sealed segments are trusted: their count follows from the next one's name.
            count = found[i + 1][0] - first if i + 1 < len(found) else 0
            segments.append(_Segment(first, path, stat.st_size, count, stat.st_mtime, now, None))
        return segments

    def _recover(self, seg: _Segment) -> None:
        """Keep the longest run of whole lines with consecutive cursors; cut the rest."""
        good = 0
        count = 0
        index: list[tuple[int, int]] = []
        with open(seg.path, "rb") as f:
            for line in f:
                if not line.endswith(b"\n"):
                    break
                try:
                    cursor = json.loads(line).get("Cursor")
                except (ValueError, AttributeError):
                    break
                if cursor != seg.first + count:
                    break
                if count % INDEX_EVERY == 0:
                    index.append((cursor, good))
                good += len(line)
                count += 1
        size = seg.path.stat().st_size
        if size > good:
            log.warning(
                "event journal %s: cut %d bytes after cursor %d (a write a crash interrupted)",
                seg.path.name,
                size - good,
                seg.first + count - 1,
            )
            with open(seg.path, "r+b") as f:
                f.truncate(good)
                f.flush()
                os.fsync(f.fileno())
        seg.size, seg.count, seg.index = good, count, index

    # --- state ------------------------------------------------------------------------

    @property
    def last_cursor(self) -> int:
        """The newest durable cursor (0 for a journal that never held an event)."""
        with self._lock:
            return self._segments[-1].last

    @property
    def first_cursor(self) -> int:
        """The oldest cursor still kept (``last_cursor + 1`` when the journal is empty)."""
        with self._lock:
            for seg in self._segments:
                if seg.count:
                    return seg.first
            return self._segments[-1].first

    @property
    def size(self) -> int:
        """Bytes of all segments."""
        with self._lock:
            return sum(s.size for s in self._segments)

    def segment_names(self) -> list[str]:
        """The segment files, oldest first."""
        with self._lock:
            return [s.path.name for s in self._segments]

    # --- writing (one thread) -----------------------------------------------------------

    def append(self, entries: Sequence[tuple[int, bytes]]) -> None:
        """Write encoded events (``(cursor, line without newline)``; cursors consecutive
        from :attr:`last_cursor` + 1) and make them durable. On an error nothing of the
        batch is kept, and the error (an ``OSError``: disk full, I/O) is raised."""
        if not entries:
            return
        if self._fd is None:
            raise OSError("the event journal is closed")
        active = self._segments[-1]
        if entries[0][0] != active.last + 1:
            raise ValueError(
                f"journal append at cursor {entries[0][0]}, expected {active.last + 1}"
            )
        now = time.time()
        batch = sum(len(line) + 1 for _, line in entries)
        rotate_age = self.retention.max_age_s / 10
        if active.count and (
            active.size + batch > self.retention.segment_bytes or now - active.opened > rotate_age
        ):
            active = self._rotate(now)
        data = bytearray()
        offsets: list[tuple[int, int]] = []
        for cursor, line in entries:
            if (cursor - active.first) % INDEX_EVERY == 0:
                offsets.append((cursor, active.size + len(data)))
            data += line
            data += b"\n"
        fd = self._fd
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fdatasync(fd)
        except OSError:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, active.size)
            raise
        with self._lock:
            active.size += len(data)
            active.count += len(entries)
            active.modified = now
            if active.index is not None:
                active.index.extend(offsets)
        if now - self._last_retention > 60:
            self._apply_retention(now)

    def _rotate(self, now: float) -> _Segment:
        active = self._segments[-1]
        path = self.directory / _segment_name(active.last + 1)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | _O_CLOEXEC, 0o600)
        sync_directory(self.directory)
        seg = _Segment(active.last + 1, path, 0, 0, now, now, [])
        old = self._fd
        with self._lock:
            self._segments.append(seg)
            self._fd = fd
        if old is not None:
            os.close(old)
        self._apply_retention(now)
        return seg

    def _apply_retention(self, now: float) -> None:
        self._last_retention = now
        doomed: list[_Segment] = []
        with self._lock:
            total = sum(s.size for s in self._segments)
            while len(self._segments) > 1:
                oldest = self._segments[0]
                too_big = total > self.retention.max_bytes
                too_old = now - oldest.modified > self.retention.max_age_s
                if not (too_big or too_old):
                    break
                doomed.append(self._segments.pop(0))
                total -= oldest.size
        for seg in doomed:
            with contextlib.suppress(FileNotFoundError):
                seg.path.unlink()
            log.info(
                "event journal: retention deleted %s (cursors %d-%d)",
                seg.path.name,
                seg.first,
                seg.last,
            )

    # --- reading (any thread) -----------------------------------------------------------

    def read(
        self,
        after: int,
        upto: int,
        *,
        want: Callable[[Event], bool] | None = None,
        max_events: int = 512,
        max_bytes: int = 4 * 1024 * 1024,
        max_scan: int = 10_000,
    ) -> tuple[list[tuple[Event, int]], int]:
        """Events with ``after < cursor <= upto`` that ``want`` accepts, oldest first, as
        ``(event, encoded size)``; at most ``max_events`` of them (about ``max_bytes``),
        after looking at most ``max_scan`` lines. Returns them and the last cursor looked
        at (``after`` when none): continue from there. A line that does not decode is
        logged and skipped."""
        with self._lock:
            segments = [(s, s.size, s.count) for s in self._segments]
        found: list[tuple[Event, int]] = []
        scanned_to = after
        scanned = 0
        taken_bytes = 0
        for seg, size, count in segments:
            if not count or seg.first + count - 1 <= scanned_to:
                continue
            if seg.first > upto:
                break
            start = max(scanned_to + 1, seg.first)
            try:
                f = open(seg.path, "rb")  # noqa: SIM115 -- closed below
            except FileNotFoundError:  # deleted by retention meanwhile
                continue
            with f:
                cursor, offset = self._seek(seg, start)
                f.seek(offset)
                remaining = size - offset
                end = min(upto, seg.first + count - 1)
                while cursor <= end and remaining > 0:
                    line = f.readline()
                    if not line:
                        break
                    remaining -= len(line)
                    if cursor >= start:
                        scanned += 1
                        scanned_to = cursor
                        event = _decode_line(line, cursor, seg.path.name)
                        if event is not None and (want is None or want(event)):
                            found.append((event, len(line)))
                            taken_bytes += len(line)
                        if (
                            len(found) >= max_events
                            or taken_bytes >= max_bytes
                            or scanned >= max_scan
                        ):
                            return found, scanned_to
                    cursor += 1
            if scanned_to >= upto:
                break
        return found, scanned_to

    def _seek(self, seg: _Segment, cursor: int) -> tuple[int, int]:
        """The (cursor, offset) of an indexed line at or before ``cursor``."""
        index = seg.index
        if index is None:
            index = self._build_index(seg)
        with self._lock:
            pos = bisect.bisect_right(index, (cursor, 1 << 62)) - 1
            return index[pos] if pos >= 0 else (seg.first, 0)

    def _build_index(self, seg: _Segment) -> list[tuple[int, int]]:
        index: list[tuple[int, int]] = []
        offset = 0
        cursor = seg.first
        with open(seg.path, "rb") as f:
            for line in f:
                if (cursor - seg.first) % INDEX_EVERY == 0:
                    index.append((cursor, offset))
                offset += len(line)
                cursor += 1
        with self._lock:
            if seg.index is None:
                seg.index = index
            return seg.index

    def close(self) -> None:
        """Close the files and release the directory."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1


def _decode_line(line: bytes, cursor: int, segment: str) -> Event | None:
    try:
        event = decode(json.loads(line))
    except (ValueError, EventError) as err:
        log.warning(
            "event journal %s: cursor %d does not decode (%s); skipped", segment, cursor, err
        )
        return None
    if event.cursor != cursor:
        log.warning(
            "event journal %s: line of cursor %d says %d; skipped", segment, cursor, event.cursor
        )
        return None
    return event
