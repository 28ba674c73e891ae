"""The streams of a data directory as the backend keeps them in memory.

Every stream is loaded from the index when the store opens and kept in a
:class:`StreamTable` (by row id, name and ARN, names sorted for listing), so looking a
stream up never touches SQLite. Callers hold the backend's lock of its in-memory maps.
"""

from __future__ import annotations

import bisect
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from callstream.store.base import StreamRecord, copy_stream

__all__ = ["StreamEntry", "StreamTable"]


@dataclass(slots=True)
class StreamEntry:
    """One stream: its index row id, what DescribeStream reports, its wrapped data key."""

    id: int
    record: StreamRecord
    master_key_id: str
    wrapped_key: bytes

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> StreamEntry:
        """The entry of a ``streams`` row (the columns of
        :data:`~callstream.store.backends.embedded.index.STREAM_COLUMNS`)."""
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
        return cls(id=row[0], record=record, master_key_id=row[9], wrapped_key=row[12])


class StreamTable:
    """The streams, by row id, name and ARN."""

    def __init__(self) -> None:
        self.by_id: dict[int, StreamEntry] = {}
        self.by_name: dict[str, StreamEntry] = {}
        self.by_arn: dict[str, StreamEntry] = {}
        self._names: list[str] = []  # sorted
        self.last_creation_ms = 0  # creation times (and so ARNs) are never reused

    def __len__(self) -> int:
        return len(self.by_id)

    def add(self, entry: StreamEntry) -> None:
        """Add a loaded or created stream."""
        self.by_id[entry.id] = entry
        self.by_name[entry.record.name] = entry
        self.by_arn[entry.record.arn] = entry
        bisect.insort(self._names, entry.record.name)
        self.last_creation_ms = max(self.last_creation_ms, entry.record.creation_time_ms)

    def remove(self, entry: StreamEntry) -> None:
        """Forget a deleted stream."""
        del self.by_id[entry.id]
        del self.by_name[entry.record.name]
        del self.by_arn[entry.record.arn]
        self._names.pop(bisect.bisect_left(self._names, entry.record.name))

    def find(self, *, name: str | None, arn: str | None) -> StreamEntry | None:
        """The stream with ``arn`` (and ``name``, if given too), else the one named
        ``name``; None when there is none."""
        entry = self.by_arn.get(arn) if arn is not None else self.by_name.get(name or "")
        if entry is None or (name is not None and entry.record.name != name):
            return None
        return entry

    def list(self, *, prefix: str | None, after_name: str | None, limit: int) -> list[StreamRecord]:
        """Copies of the streams ordered by name, names > ``after_name``, starting with
        ``prefix``, at most ``limit``."""
        names = self._names
        start = bisect.bisect_right(names, after_name) if after_name is not None else 0
        if prefix:
            start = max(start, bisect.bisect_left(names, prefix))
        out: list[StreamRecord] = []
        for name in names[start:]:
            if len(out) >= limit or (prefix and not name.startswith(prefix)):
                break
            out.append(copy_stream(self.by_name[name].record))
        return out
