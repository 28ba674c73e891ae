"""The lifecycle of one upload (a PutMedia connection, or an in-process writer), sans-I/O.

:class:`IngestSession` says what the bytes mean; this says what the connection around
them does over time, driven by three inputs and a clock:

* :meth:`UploadLifecycle.data` -- body bytes arrived;
* :meth:`UploadLifecycle.end_of_body` -- the producer ended its body;
* :meth:`UploadLifecycle.supersede` -- a newer upload took the stream, or the server is
  stopping: end as if the body had ended here, storing what was received;
* :meth:`UploadLifecycle.tick` -- time passed; due at :meth:`UploadLifecycle.deadline`.

Each returns the events the edge carries out: the ingest events (a fragment opened,
Cluster bytes for live readers, received, ready to store, rejected), :class:`IdleAck`
and :class:`UploadEnded`. Time rules (kvs-wire §2.2):

* a complete Cluster whose trailer has not arrived is stored once the producer has been
  quiet for ``flush_after_s`` (elements that come later go in front of the next Cluster);
* while the producer sends nothing, an IDLE ack every ``idle_ack_s``;
* after ``idle_close_s`` without a byte, the upload ends.

Nothing here reads a clock or touches a socket; the edge passes ``now`` (any monotonic
seconds) and calls :meth:`tick` when :meth:`deadline` has passed.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from callstream.store.ingest import (
    IngestEvent,
    IngestSession,
)

__all__ = [
    "EndReason",
    "IdleAck",
    "UploadEnded",
    "UploadEvent",
    "UploadLifecycle",
    "UploadState",
]

FLUSH_AFTER_S = 0.15
"""Quiet after a complete Cluster after which its fragment is stored without waiting."""
IDLE_ACK_S = 3.0
IDLE_CLOSE_S = 30.0


class UploadState(enum.Enum):
    RECEIVING = "receiving"
    ENDED = "ended"


class EndReason(enum.Enum):
    BODY_ENDED = "body ended"
    SUPERSEDED = "superseded"
    IDLE = "idle"
    FAILED = "failed"  # a fatal ingest error (invalid MKV)


@dataclass(frozen=True, slots=True)
class IdleAck:
    """The producer is quiet: send an IDLE ack."""


@dataclass(frozen=True, slots=True)
class UploadEnded:
    """Nothing more is read. Every fragment still open is dropped by the edge."""

    reason: EndReason


UploadEvent = IngestEvent | IdleAck | UploadEnded


class UploadLifecycle:
    """One upload over time (see the module docstring)."""

    def __init__(
        self,
        session: IngestSession,
        *,
        now: float,
        flush_after_s: float = FLUSH_AFTER_S,
        idle_ack_s: float = IDLE_ACK_S,
        idle_close_s: float = IDLE_CLOSE_S,
    ) -> None:
        self.session = session
        self.flush_after_s = flush_after_s
        self.idle_ack_s = idle_ack_s
        self.idle_close_s = idle_close_s
        self.state = UploadState.RECEIVING
        self.end_reason: EndReason | None = None
        self._last_data = now  # last body bytes
        self._last_idle_ack = now  # or the last data, whichever is later

    # --- inputs -------------------------------------------------------------------------
    def data(self, chunk: bytes, now: float) -> list[UploadEvent]:
        """Body bytes."""
        if self.state is UploadState.ENDED or not chunk:
            return []
        self._last_data = self._last_idle_ack = now
        session = self.session
        events = session.feed(chunk)  # the steady state: no copy, no other work
        if session.failed:
            return [*events, *self._end(EndReason.FAILED)]
        return events  # type: ignore[return-value]  # a list of a subset of UploadEvent

    def end_of_body(self) -> list[UploadEvent]:
        """The producer ended its body: the last fragment is complete."""
        if self.state is UploadState.ENDED:
            return []
        events: list[UploadEvent] = list(self.session.close())
        return events + self._end(EndReason.FAILED if self.session.failed else EndReason.BODY_ENDED)

    def supersede(self) -> list[UploadEvent]:
        """End here (a newer upload, or the server stopping): a complete Cluster still
        waiting for its trailer is stored as it is; an open one is dropped."""
        if self.state is UploadState.ENDED:
            return []
        return self._flush() + self._end(EndReason.SUPERSEDED)

    def connection_lost(self) -> list[UploadEvent]:
        """The connection dropped mid-body: like :meth:`supersede` (what was complete is
        stored), reported as the body's end."""
        if self.state is UploadState.ENDED:
            return []
        return self._flush() + self._end(EndReason.BODY_ENDED)

    def stop(self) -> list[UploadEvent]:
        """End at once, storing nothing more (the edge could not go on: a fragment that
        cannot be numbered, say)."""
        if self.state is UploadState.ENDED:
            return []
        return self._end(EndReason.FAILED)

    def tick(self, now: float) -> list[UploadEvent]:
        """Whatever is due at ``now``."""
        if self.state is UploadState.ENDED:
            return []
        # Sums, not differences: tick() is due exactly when deadline() says.
        if self.session.awaiting_trailer and now >= self._last_data + self.flush_after_s:
            return self._flush()
        if now >= self._last_data + self.idle_close_s:
            return self._flush() + self._end(EndReason.IDLE)
        if now >= self._last_idle_ack + self.idle_ack_s:
            self._last_idle_ack = now
            return [IdleAck()]
        return []

    def deadline(self) -> float | None:
        """When :meth:`tick` next has something to do (None once ended)."""
        if self.state is UploadState.ENDED:
            return None
        if self.session.awaiting_trailer:
            return self._last_data + self.flush_after_s
        return min(self._last_idle_ack + self.idle_ack_s, self._last_data + self.idle_close_s)

    # --- helpers ------------------------------------------------------------------------
    def _flush(self) -> list[UploadEvent]:
        return list(self.session.flush()) if self.session.awaiting_trailer else []

    def _end(self, reason: EndReason) -> list[UploadEvent]:
        self.state = UploadState.ENDED
        self.end_reason = reason
        return [UploadEnded(reason)]
