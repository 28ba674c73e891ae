"""What an ingest protocol core says happened: the one contract every adapter normalises to.

A protocol core (``twilio.py``, ``audiohook.py``, ``audiosocket.py``, ``websocket.py``) is a
sans-I/O state machine in the h11 style: the edge feeds it what arrived (a text or binary
WebSocket message, TCP bytes) and it returns a list of these events. Audio is already
decoded to 16-bit little-endian mono PCM per channel, so nothing past the core knows about
µ-law, base64 or interleaving. The call sink (:mod:`callstream.ingest.call`) turns them
into streams, tags and call events; the edge sends :class:`Reply` payloads back and closes
the connection on :class:`Close`.

Roles follow ``ingest-protocols.md`` §11: ``caller`` is the customer, ``agent`` the
contact-center side.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

__all__ = [
    "AudioReceived",
    "CallEnded",
    "CallPaused",
    "CallResumed",
    "CallStarted",
    "Close",
    "IngestEvent",
    "ProtocolError",
    "Reply",
    "Role",
]

Role = Literal["caller", "agent"]


@dataclass(frozen=True, slots=True)
class CallStarted:
    """The peer announced a call: who it is and what its channels carry.

    ``channels`` gives the role of each channel index ``AudioReceived.channel`` refers to,
    after the protocol's own role mapping (an override is applied by the sink).
    ``metadata`` holds what the protocol carries about the call (Twilio customParameters,
    AudioHook participant and conversation ids, the plain socket's start message fields);
    the sink turns it into stream tags.
    """

    source: str
    """``twilio``, ``audiohook``, ``audiosocket`` or ``websocket``."""
    call_id: str
    """The protocol's own call id (Twilio callSid, AudioHook conversationId, AudioSocket
    UUID, the plain socket's callId)."""
    channels: tuple[Role, ...]
    sample_rate: int
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AudioReceived:
    """PCM for one channel: 16-bit little-endian mono samples at the call's rate.

    ``timestamp_ms`` is the protocol's own media time of the first sample, relative to the
    start of the call, when the protocol carries one (Twilio's ``media.timestamp``,
    AudioHook's position); ``None`` means "right after the previous audio of this channel".
    """

    channel: int
    pcm: bytes
    timestamp_ms: int | None = None


@dataclass(frozen=True, slots=True)
class CallPaused:
    """Audio stops on purpose (AudioHook ``paused``, a Twilio hold is not signalled)."""


@dataclass(frozen=True, slots=True)
class CallResumed:
    """Audio flows again after :class:`CallPaused`."""


@dataclass(frozen=True, slots=True)
class CallEnded:
    """The peer ended the call normally (Twilio ``stop``, AudioHook ``close``, AudioSocket
    hangup, the plain socket's end message)."""

    reason: str = "ended"


@dataclass(frozen=True, slots=True)
class ProtocolError:
    """The peer broke the protocol; the edge answers with the :class:`Close` or
    :class:`Reply` events returned alongside and stops reading."""

    message: str


@dataclass(frozen=True, slots=True)
class Reply:
    """Something to send to the peer: text (a JSON message) or bytes."""

    data: str | bytes


@dataclass(frozen=True, slots=True)
class Close:
    """Close the connection (WebSocket close ``code`` and ``reason``; TCP ignores them)."""

    code: int = 1000
    reason: str = ""


IngestEvent = (
    CallStarted
    | AudioReceived
    | CallPaused
    | CallResumed
    | CallEnded
    | ProtocolError
    | Reply
    | Close
)
