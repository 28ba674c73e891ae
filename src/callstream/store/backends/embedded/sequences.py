"""Per-stream fragment sequence counters (the ``seq`` field of fragment numbers).

A counter lives in memory; the index remembers a reservation (``streams.seq_reserved``)
written once every :data:`SEQ_BLOCK` sequences, so issuing a number is an in-memory step
almost always, and a restart resumes above both the reservation and the highest stored
sequence: no number is ever issued twice.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass

from callstream.store.backends.embedded.index import Index
from callstream.store.backends.embedded.space import is_full
from callstream.store.base import STREAM_NOT_FOUND, StorageFull, StreamNotFound

__all__ = ["SEQ_BLOCK", "Sequences"]

SEQ_BLOCK = 1024
"""Sequence numbers reserved per persisted high-water mark."""


@dataclass(slots=True)
class _SeqState:
    last: int  # highest sequence issued or stored
    reserved: int  # persisted high-water mark: nothing above it was ever issued


class Sequences:
    """The counters of every stream. Lock order: ``lock`` before the index's
    ``db_lock``."""

    def __init__(self, index: Index, *, check_open: Callable[[], None]) -> None:
        self._index = index
        self._check_open = check_open
        self.lock = threading.Lock()
        self._state: dict[int, _SeqState] = {}

    def load(self, stream_id: int, *, reserved: int, highest_stored: int) -> None:
        """Set a stream's counter (a new stream: both 0)."""
        self._state[stream_id] = _SeqState(last=max(reserved, highest_stored), reserved=reserved)

    def forget(self, stream_id: int) -> None:
        """Drop a deleted stream's counter."""
        self._state.pop(stream_id, None)

    def next(self, stream_id: int) -> int:
        """Next sequence of a stream (1, 2, 3 ...); a reservation is written first when
        the counter reaches the persisted one."""
        with self.lock:
            state = self._state.get(stream_id)
            if state is None:
                raise StreamNotFound(STREAM_NOT_FOUND)
            seq = state.last + 1
            if seq > state.reserved:
                self._reserve(stream_id, state, state.last + SEQ_BLOCK)
            state.last = seq
            return seq

    def observe(self, stream_id: int, seq: int, *, persist: bool) -> None:
        """Raise a stream's counter to ``seq``; for streams without an index row to
        remember it (retention 0) ``persist`` a reservation above it."""
        with self.lock:
            state = self._state.get(stream_id)
            if state is None:
                return
            state.last = max(state.last, seq)
            if persist and seq > state.reserved:
                self._reserve(stream_id, state, seq + SEQ_BLOCK)

    def expired(self, stream_id: int, max_seq: int) -> None:
        """Sequences up to ``max_seq`` were deleted and are remembered in the index as
        reserved (by :func:`~callstream.store.backends.embedded.index.expire_rows`)."""
        with self.lock:
            state = self._state.get(stream_id)
            if state is not None:
                state.reserved = max(state.reserved, max_seq)

    def _reserve(self, stream_id: int, state: _SeqState, reserved: int) -> None:
        # caller holds self.lock
        with self._index.db_lock:
            self._check_open()
            try:
                self._index.reserve_sequences(stream_id, reserved)
            except sqlite3.Error as exc:
                if is_full(exc):
                    raise StorageFull(f"cannot reserve fragment sequences: {exc}") from exc
                raise
        state.reserved = reserved
