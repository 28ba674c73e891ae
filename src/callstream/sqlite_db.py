"""One way to open the small SQLite registries kept in the data directory."""

from __future__ import annotations

import sqlite3
from pathlib import Path

__all__ = ["add_missing_columns", "open_registry_db"]


def open_registry_db(path: Path) -> sqlite3.Connection:
    """A connection usable from any thread (callers serialise with their own lock), in
    autocommit mode, WAL, ``synchronous=FULL`` and a 30 s busy timeout: a registry change
    is durable when the call that made it returns."""
    db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False, timeout=30.0)
    db.execute("PRAGMA busy_timeout = 30000")
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = FULL")
    return db


def add_missing_columns(
    db: sqlite3.Connection, table: str, columns: tuple[tuple[str, str], ...]
) -> None:
    """Add the ``(name, definition)`` columns ``table`` lacks: a file written by an older
    callstream opens. Another process adding one at the same moment is not an error."""
    present = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
    for name, definition in columns:
        if name in present:
            continue
        try:
            db.execute(f"ALTER TABLE {table} ADD COLUMN {name} {definition}")
        except sqlite3.OperationalError as err:
            if "duplicate column" not in str(err):
                raise
