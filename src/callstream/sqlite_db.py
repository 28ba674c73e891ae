"""One way to open the small SQLite registries kept in the data directory."""

from __future__ import annotations

import sqlite3
from pathlib import Path

__all__ = ["open_registry_db"]


def open_registry_db(path: Path) -> sqlite3.Connection:
    """A connection usable from any thread (callers serialise with their own lock), in
    autocommit mode, WAL, ``synchronous=FULL`` and a 30 s busy timeout: a registry change
    is durable when the call that made it returns."""
    db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False, timeout=30.0)
    db.execute("PRAGMA busy_timeout = 30000")
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = FULL")
    return db
