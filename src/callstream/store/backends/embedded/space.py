"""A full disk: recognising it, and the reserve that lets deletions commit on one.

On a full disk SQLite still needs room for the WAL frames of a DELETE, so the store keeps
``<data_dir>/reserve`` (a few MiB, allocated, not sparse) and releases it when a deletion
finds the disk full (:func:`freeing_txn`); deletions go in chunks small enough for one
chunk's WAL to fit in the reserve, and the files each chunk frees make room for the next.
The reserve is allocated again once space is free (:meth:`Reserve.ensure`, after every
deletion).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import sqlite3
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TypeVar

from callstream.store.base import StorageFull

__all__ = [
    "DEFAULT_RESERVE_BYTES",
    "RESERVE_NAME",
    "Reserve",
    "allocate",
    "freeing_txn",
    "is_full",
    "write_refused",
]

log = logging.getLogger(__name__)

DEFAULT_RESERVE_BYTES = 4 * 1024 * 1024
"""Space kept in ``<data_dir>/reserve`` so that deletions can commit on a full disk."""
RESERVE_NAME = "reserve"

_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_SQLITE_FULL = 13
_SQLITE_IOERR_WRITE = 778  # also what SQLite makes of EDQUOT and EFBIG

_T = TypeVar("_T")


def is_full(exc: BaseException) -> bool:
    """``exc`` says the file system (or the database's size limit) is full."""
    if isinstance(exc, OSError):
        return exc.errno in (errno.ENOSPC, errno.EDQUOT)
    if isinstance(exc, sqlite3.Error):
        code = getattr(exc, "sqlite_errorcode", None)
        return code is not None and code & 0xFF == _SQLITE_FULL
    return False


def write_refused(exc: BaseException) -> bool:
    """``exc`` may mean there is no room to write: :func:`is_full`, or a write error
    that SQLite reports without the errno (a quota or file size limit gives these)."""
    if is_full(exc):
        return True
    if isinstance(exc, OSError):
        return exc.errno == errno.EFBIG
    return isinstance(exc, sqlite3.Error) and (
        getattr(exc, "sqlite_errorcode", None) == _SQLITE_IOERR_WRITE
    )


def allocate(path: Path, size: int) -> None:
    """Create ``path`` with ``size`` bytes really allocated (not a sparse file)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | _O_CLOEXEC, 0o600)
    try:
        if hasattr(os, "posix_fallocate"):
            os.posix_fallocate(fd, 0, size)
        else:  # pragma: no cover - macOS
            os.ftruncate(fd, 0)
            zeros = bytes(min(size, 1 << 20))
            left = size
            while left > 0:
                left -= os.write(fd, zeros[:left])
    finally:
        os.close(fd)


class Reserve:
    """``size`` bytes held in ``path`` for deletions on a full disk (0: none)."""

    def __init__(self, path: Path, size: int) -> None:
        self.path = path
        self.size = max(0, size)
        self._lock = threading.Lock()
        self._missing = True  # re-checked by ensure()
        self._warned = False  # one warning per time the reserve cannot be had

    def ensure(self) -> None:
        """Allocate the reserve if it is missing (best effort: on a full disk it waits for
        the next deletion that frees space)."""
        if not self._missing:
            return
        with self._lock:
            if not self._missing:
                return
            if self.size == 0:
                with contextlib.suppress(FileNotFoundError):
                    self.path.unlink()
                self._missing = False
                return
            try:
                if self.path.stat().st_blocks * 512 >= self.size:
                    self._missing = False
                    return
            except FileNotFoundError:
                pass
            try:
                allocate(self.path, self.size)
            except OSError as exc:
                with contextlib.suppress(OSError):
                    self.path.unlink()
                if not self._warned:
                    self._warned = True
                    log.warning(
                        "cannot allocate the %d-byte reserve (will retry after deletions): %s",
                        self.size,
                        exc,
                    )
                return
            self._missing = False
            self._warned = False

    def release(self) -> bool:
        """Free the reserve for a deletion that found the disk full; False if there is
        none to free."""
        with self._lock:
            try:
                size = self.path.stat().st_size
                self.path.unlink()
            except FileNotFoundError:
                size = 0
            self._missing = True
        if size:
            log.warning("disk full: released the %d-byte reserve so deletions can commit", size)
        return size > 0


def freeing_txn(
    txn: Callable[[], AbstractContextManager[sqlite3.Connection]],
    reserve: Reserve,
    work: Callable[[sqlite3.Connection], _T],
    data_dir: Path,
) -> _T:
    """Run ``work`` (which only removes data) in a write transaction (``txn``; the
    caller holds the writer connection). A transaction needs free space for its WAL
    frames even when it deletes: if the disk is full (or refuses the write), release the
    reserve and try once more, then give up with :class:`StorageFull`."""
    for attempt in range(2):
        try:
            with txn() as conn:
                return work(conn)
        except (sqlite3.Error, OSError) as exc:
            if not write_refused(exc):
                raise
            if attempt == 1 or not reserve.release():
                raise StorageFull(
                    f"cannot delete data: the disk of {data_dir} is full or refuses "
                    f"writes ({exc}); free space on it and retry"
                ) from exc
    raise AssertionError("unreachable")  # pragma: no cover
