"""Contact records (CTRs) kept beside the media: one SQLite table, one JSON document per
contact, written by ``callstream call`` and read over the HTTP API and the CLI."""

from __future__ import annotations

import json
import math
import sqlite3
import threading
from pathlib import Path
from typing import Any

from callstream.store.base import InvalidArgument

__all__ = ["ContactStore"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS contacts (
    contact_id TEXT PRIMARY KEY,
    initiation_ms INTEGER NOT NULL,
    channel TEXT,
    record TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS contacts_by_time ON contacts (initiation_ms, contact_id);
"""

MAX_RECORD_BYTES = 1024 * 1024


class ContactStore:
    """Contact records by ContactId, newest first when listed."""

    def __init__(self, path: Path) -> None:
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)

    def put(self, record: dict[str, Any]) -> None:
        """Insert or replace a CTR (it must carry ``ContactId``)."""
        contact_id = record.get("ContactId")
        if not isinstance(contact_id, str) or not contact_id:
            raise InvalidArgument("A contact record needs a ContactId.")
        text = json.dumps(record, separators=(",", ":"))
        if len(text) > MAX_RECORD_BYTES:
            raise InvalidArgument("The contact record is larger than 1 MiB.")
        channel = record.get("Channel")
        if channel is not None and not isinstance(channel, str):
            raise InvalidArgument("Channel must be a string.")
        initiation = _epoch_ms(record.get("InitiationTimestamp"))
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO contacts VALUES (?, ?, ?, ?)",
                (contact_id, initiation, record.get("Channel"), text),
            )

    def get(self, contact_id: str) -> dict[str, Any] | None:
        """The record of one contact, or None."""
        with self._lock:
            row = self._db.execute(
                "SELECT record FROM contacts WHERE contact_id = ?", (contact_id,)
            ).fetchone()
        return None if row is None else dict(json.loads(row[0]))

    def list(self, *, limit: int = 100, channel: str | None = None) -> list[dict[str, Any]]:
        """The newest records first."""
        query = "SELECT record FROM contacts"
        args: list[Any] = []
        if channel:
            query += " WHERE channel = ?"
            args.append(channel)
        query += " ORDER BY initiation_ms DESC, contact_id LIMIT ?"
        args.append(max(1, min(limit, 1000)))
        with self._lock:
            rows = self._db.execute(query, args).fetchall()
        return [dict(json.loads(r[0])) for r in rows]

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _epoch_ms(value: object) -> int:
    """A CTR timestamp (ISO 8601 string as Connect writes it, or epoch seconds) in ms."""
    from datetime import datetime

    if isinstance(value, int | float) and not isinstance(value, bool):
        if not math.isfinite(value) or abs(value) > 1e13:
            raise InvalidArgument("InitiationTimestamp is out of range.")
        return int(value * 1000)
    if isinstance(value, str):
        try:
            return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * 1000)
        except ValueError:
            pass
    return 0
