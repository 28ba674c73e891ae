"""Contact records (CTRs) kept beside the media: one SQLite table, one JSON document per
contact, written by ``callstream call`` and read over the HTTP API and the CLI.

Records arrive as ``ContactEnded`` events of the call-event bus
(:mod:`callstream.events.recorder` stores them). Each row keeps the cursor of the event
that wrote it, and a record with a cursor is only written over an older one, so the
two writers of an event (the HTTP handler that published it, for read-your-writes, and
the bus subscriber, which also replays the journal after a crash) always leave the
newest record. The subscriber's own position is kept in ``consumers``, in the same
transaction as the record it wrote.
"""

from __future__ import annotations

import contextlib
import json
import math
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from callstream.sqlite_db import add_missing_columns
from callstream.store.base import InvalidArgument

__all__ = ["ContactStore", "check_record"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS contacts (
    contact_id TEXT PRIMARY KEY,
    initiation_ms INTEGER NOT NULL,
    channel TEXT,
    record TEXT NOT NULL,
    cursor INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS contacts_by_time ON contacts (initiation_ms, contact_id);
CREATE TABLE IF NOT EXISTS consumers (
    name TEXT PRIMARY KEY,
    journal_id TEXT NOT NULL,
    cursor INTEGER NOT NULL
);
"""

MAX_RECORD_BYTES = 1024 * 1024


class ContactStore:
    """Contact records by ContactId, newest first when listed."""

    def __init__(self, path: Path) -> None:
        self._lock = threading.Lock()
        self._journals: dict[str, str] = {}  # consumer -> journal id (consumer_position)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        # a store written before records came as events has no cursor column
        add_missing_columns(self._db, "contacts", (("cursor", "INTEGER NOT NULL DEFAULT 0"),))

    def put(
        self, record: dict[str, Any], *, cursor: int | None = None, consumer: str | None = None
    ) -> bool:
        """Insert or replace a CTR (it must carry ``ContactId``; see :func:`check_record`).

        With ``cursor`` (the bus cursor of the ``ContactEnded`` event carrying it) the
        record only replaces one written by an older event; returns whether it was
        written. With ``consumer`` that subscriber's position moves to ``cursor`` in the
        same transaction. Without ``cursor`` the record is written unconditionally."""
        contact_id, initiation, channel, text = check_record(record)
        with self._lock, self._transaction():
            if cursor is None:
                self._db.execute(
                    "INSERT OR REPLACE INTO contacts VALUES (?, ?, ?, ?, 0)",
                    (contact_id, initiation, channel, text),
                )
                written = True
            else:
                written = (
                    self._db.execute(
                        "INSERT INTO contacts VALUES (?, ?, ?, ?, ?) ON CONFLICT (contact_id) "
                        "DO UPDATE SET initiation_ms = excluded.initiation_ms, "
                        "channel = excluded.channel, record = excluded.record, "
                        "cursor = excluded.cursor WHERE excluded.cursor > contacts.cursor",
                        (contact_id, initiation, channel, text, cursor),
                    ).rowcount
                    > 0
                )
                if consumer is not None:
                    self._advance(consumer, cursor)
        return written

    def consumer_position(self, consumer: str, journal_id: str) -> int:
        """Where subscriber ``consumer`` resumes in the journal ``journal_id``: the cursor
        of the last event it handled, or 0. A journal that is not the one the position
        was kept for (its directory was recreated) starts over at 0, and the cursors of
        the stored records are forgotten with it. (A first start writes nothing: the
        position is kept from the first event handled on.)"""
        with self._lock:
            self._journals[consumer] = journal_id
            row = self._db.execute(
                "SELECT journal_id, cursor FROM consumers WHERE name = ?", (consumer,)
            ).fetchone()
            if row is not None and row[0] == journal_id:
                return int(row[1])
            stale = self._db.execute("SELECT 1 FROM contacts WHERE cursor != 0 LIMIT 1")
            if row is None and stale.fetchone() is None:
                return 0
            with self._transaction():
                self._db.execute("UPDATE contacts SET cursor = 0 WHERE cursor != 0")
                self._db.execute(
                    "INSERT OR REPLACE INTO consumers VALUES (?, ?, 0)", (consumer, journal_id)
                )
            return 0

    def advance(self, consumer: str, cursor: int) -> None:
        """Move subscriber ``consumer`` past ``cursor`` (an event with nothing to store)."""
        with self._lock, self._transaction():
            self._advance(consumer, cursor)

    def _advance(self, consumer: str, cursor: int) -> None:
        journal_id = self._journals.get(consumer)
        if journal_id is None:  # no consumer_position() first: only an existing row moves
            self._db.execute(
                "UPDATE consumers SET cursor = MAX(cursor, ?) WHERE name = ?", (cursor, consumer)
            )
            return
        self._db.execute(
            "INSERT INTO consumers VALUES (?, ?, ?) ON CONFLICT (name) "
            "DO UPDATE SET cursor = MAX(cursor, excluded.cursor)",
            (consumer, journal_id, cursor),
        )

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

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


def check_record(record: dict[str, Any]) -> tuple[str, int, str | None, str]:
    """Validate a CTR as the store takes it; returns ``(ContactId, initiation epoch ms,
    Channel, compact JSON)`` or raises :class:`InvalidArgument` naming the field."""
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
    return contact_id, initiation, channel, text


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
