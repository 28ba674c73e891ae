"""The host buffer of retention-0 streams.

Streams with ``data_retention_hours == 0`` are never written to disk: their fragments live
in an in-memory buffer holding the last 5 minutes (at most 200 MB), like KVS's host
buffer. Only their fragment sequence reservation is persisted, so numbers are never
reused across restarts.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

from callstream.store.base import FragmentData, FragmentRecord

__all__ = ["MEMORY_BUFFER_BYTES", "MEMORY_BUFFER_MS", "MemBuffer", "MemEntry", "select"]

MEMORY_BUFFER_MS = 5 * 60 * 1000
"""How long a retention-0 stream's fragments stay readable (KVS host buffer: 5 minutes)."""
MEMORY_BUFFER_BYTES = 200 * 1000 * 1000
"""Per-stream byte cap of the retention-0 buffer (KVS host buffer: 200 MB)."""


@dataclass(slots=True)
class MemEntry:
    """One buffered fragment."""

    record: FragmentRecord
    data: FragmentData
    nbytes: int


class MemBuffer:
    """The retention-0 host buffer of one stream (append order)."""

    __slots__ = ("by_number", "entries", "nbytes", "newest_ts")

    def __init__(self) -> None:
        self.entries: deque[MemEntry] = deque()
        self.by_number: dict[str, MemEntry] = {}
        self.nbytes = 0
        self.newest_ts = 0

    def add(self, entry: MemEntry, *, window_ms: int, max_bytes: int) -> None:
        """Buffer ``entry``, dropping what falls out of the window or the byte cap (the
        newest entry always stays)."""
        self.entries.append(entry)
        self.by_number[entry.record.fragment_number] = entry
        self.nbytes += entry.nbytes
        self.newest_ts = max(self.newest_ts, entry.record.server_timestamp_ms)
        self.evict(self.newest_ts - window_ms, max_bytes=max_bytes, keep_last=True)

    def evict(self, before_ms: int, *, max_bytes: int, keep_last: bool = False) -> int:
        """Drop entries older than ``before_ms`` and the oldest ones beyond ``max_bytes``;
        returns the bytes dropped."""
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


def select(
    entries: Iterable[MemEntry],
    *,
    after_number: str | None,
    start_ms: int | None,
    end_ms: int | None,
    by: str,
) -> list[FragmentRecord]:
    """The records of ``entries`` that a fragment query selects (see
    :meth:`EmbeddedBackend.fragments`), in the entries' order."""
    out: list[FragmentRecord] = []
    for entry in entries:
        rec = entry.record
        ts = rec.server_timestamp_ms if by == "server" else rec.producer_timestamp_ms
        if (
            (after_number is None or rec.fragment_number > after_number)
            and (start_ms is None or ts >= start_ms)
            and (end_ms is None or ts <= end_ms)
        ):
            out.append(rec)
    return out
