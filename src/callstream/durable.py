"""Crash-safe replacement of small files, and making a directory's entries durable.

:func:`replace_file` writes the new contents to a temporary file in the target's
directory, fsyncs it and renames it over the target, so a reader (or a restart after a
crash) sees either the whole old file or the whole new one, never a mix or a torn write.
:func:`sync_directory` fsyncs a directory so that renames, creations and removals of its
entries survive a crash too.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

__all__ = ["replace_file", "sync_directory"]

_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_O_DIRECTORY = getattr(os, "O_DIRECTORY", 0)


def sync_directory(path: Path | str) -> None:
    """Make the entries of directory ``path`` (names created, renamed or removed in it)
    durable. Raises ``NotADirectoryError`` if ``path`` is not a directory."""
    fd = os.open(path, os.O_RDONLY | _O_DIRECTORY | _O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def replace_file(
    path: Path | str, data: bytes, *, mode: int = 0o600, sync_parent: bool = False
) -> None:
    """Replace the file ``path`` with ``data`` atomically and durably.

    The data goes to a new temporary file next to ``path`` (a hidden name unique to this
    call, created exclusively with permission bits ``mode``, less the umask as for
    :func:`os.open`), is fsynced and renamed over ``path``; the file ends with that mode
    whatever the old one had. Concurrent writers never share a temporary file: the last
    rename wins and the file is always one writer's whole data. If anything fails the
    temporary file is removed, ``path`` is left as it was and the error propagates (a
    missing directory raises ``FileNotFoundError``). With ``sync_parent`` the directory
    is fsynced after the rename, so the new file also survives a crash of the machine
    (without, a crash may bring back the old file, whole).
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_CLOEXEC, mode)
    try:
        try:
            view = memoryview(data)
            while view:  # os.write may write less than asked
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if sync_parent:
        sync_directory(path.parent)
