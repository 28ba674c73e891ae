"""Asterisk AudioSocket: the TCP protocol of ``AudioSocket(uuid,host:port)`` and its
channel driver (``res_audiosocket`` / ``app_audiosocket``, Asterisk >= 18).

Every message is ``kind (1 byte) | payload length (2 bytes, big-endian) | payload``
(https://docs.asterisk.org/Configuration/Channel-Drivers/AudioSocket/):

=========  ===================================================================================
kind       payload -> what the core does
=========  ===================================================================================
``0x00``   hangup, no payload -> :class:`CallEnded` and a close
``0x01``   the call's UUID, 16 bytes, sent first -> :class:`CallStarted` (``call_id`` is the
           UUID's text form; one channel, the caller)
``0x03``   one ASCII DTMF digit -> recorded in :attr:`AudioSocketConnection.dtmf`
``0x10``   signed linear 16-bit 8 kHz mono -> :class:`AudioReceived` on channel 0
``0x11``-  the same at 12, 16, 24, 32, 44.1, 48, 96, 192 kHz (newer Asterisk channel
``0x18``   driver); accepted when it matches the connection's configured rate
``0xff``   error; payload an optional application error code. Asterisk's are bit flags:
           ``0x01`` hangup of the calling party (-> :class:`CallEnded`), ``0x02`` frame
           forwarding error, ``0x04`` memory (allocation) error (-> :class:`ProtocolError`
           naming them, then :class:`CallEnded`)
=========  ===================================================================================

Byte order of the samples: ``res_audiosocket.c`` copies Asterisk's ``slin`` frame data
onto the socket unchanged, i.e. host order, which is little-endian on every platform
Asterisk runs on in practice; the protocol page says little-endian too. So audio is
passed through as 16-bit LE without conversion.

Roles: AudioSocket carries the channel's own audio (what the dialplan's channel hears from
its far end), one stream per connection; it is recorded as the caller. A second
AudioSocket on the agent's channel is a second connection (role override in the sink).

Framing survives any TCP chunking; a header announcing more than
:data:`MAX_PAYLOAD_BYTES` is refused before its payload arrives, so nothing is ever
allocated by an untrusted length. Audio before the UUID, a second UUID, a UUID payload of
the wrong size, an odd-length audio payload, DTMF of the wrong size and unknown kinds are
protocol errors; bytes after the end are ignored. There is no authentication in the
protocol: the edge restricts peers by address (and may check the UUID against a list).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Final

from callstream.ingest.events import (
    AudioReceived,
    CallEnded,
    CallStarted,
    Close,
    IngestEvent,
    ProtocolError,
)
from callstream.ingest.websocket import CLOSE_PROTOCOL_ERROR, failure, record

__all__ = [
    "ASTERISK_ERRORS",
    "AUDIO_KIND_RATES",
    "KIND_AUDIO",
    "KIND_DTMF",
    "KIND_ERROR",
    "KIND_HANGUP",
    "KIND_UUID",
    "MAX_PAYLOAD_BYTES",
    "AudioSocketConnection",
    "audio_frame",
    "client_stream",
    "dtmf_frame",
    "error_frame",
    "frame",
    "hangup_frame",
    "uuid_frame",
]

KIND_HANGUP: Final = 0x00
KIND_UUID: Final = 0x01
KIND_DTMF: Final = 0x03
KIND_AUDIO: Final = 0x10
KIND_ERROR: Final = 0xFF

AUDIO_KIND_RATES: Final = {
    0x10: 8000,
    0x11: 12000,
    0x12: 16000,
    0x13: 24000,
    0x14: 32000,
    0x15: 44100,
    0x16: 48000,
    0x17: 96000,
    0x18: 192000,
}
"""Audio kinds and their sample rates, as the Asterisk AudioSocket page lists them (an
older CyCoreSystems proposal used ``0x11`` for 16 kHz; Asterisk's table is used here)."""

ASTERISK_ERRORS: Final = {
    0x01: "hangup of calling party",
    0x02: "frame forwarding error",
    0x04: "memory (allocation) error",
}

MAX_PAYLOAD_BYTES: Final = 16384
"""Largest payload accepted: Asterisk sends 20 ms frames (320 bytes at 8 kHz, 1,920 at
48 kHz); one second of 8 kHz audio is 16,000 bytes. The wire allows up to 65,535."""

_HEADER: Final = 3


def _error_name(payload: bytes) -> tuple[int | None, str]:
    if not payload:
        return None, "error (no code)"
    code = int.from_bytes(payload[:4], "big")
    if len(payload) == 1:
        names = [name for bit, name in ASTERISK_ERRORS.items() if code & bit]
        unknown = code & ~sum(ASTERISK_ERRORS)
        if unknown:
            names.append(f"unknown flags 0x{unknown:02x}")
        return code, f"error 0x{code:02x} ({', '.join(names) or 'no flags'})"
    return code, f"error {payload.hex()} (application-specific)"


@dataclass
class AudioSocketConnection:
    """Sans-I/O core of one AudioSocket TCP connection (see the module docstring).

    Feed whatever ``recv`` returned to :meth:`receive_bytes` and call :meth:`receive_eof`
    when the peer closes; each returns the events.
    """

    sample_rate: int = 8000
    """The rate the connection's audio kind must carry (0x10 = 8 kHz from the dialplan
    application; the channel driver may use a higher-rate kind)."""
    max_payload: int = MAX_PAYLOAD_BYTES
    source: str = "audiosocket"
    started: CallStarted | None = None
    ended: bool = False
    failed: bool = False
    dtmf: list[str] = field(default_factory=list)
    error_code: int | None = None
    bytes_received: int = 0
    _buffer: bytearray = field(default_factory=bytearray)

    def receive_bytes(self, data: bytes) -> list[IngestEvent]:
        """Bytes as they came off the socket, split anywhere."""
        if self.failed or self.ended:
            return []
        self.bytes_received += len(data)
        self._buffer += data
        events: list[IngestEvent] = []
        pos = 0
        buf = self._buffer
        base = self.bytes_received - len(buf)  # stream offset of buf[0]
        while not (self.failed or self.ended) and len(buf) - pos >= _HEADER:
            kind = buf[pos]
            length = (buf[pos + 1] << 8) | buf[pos + 2]
            refused = self._check_header(kind, length, base + pos)
            if refused:
                events += refused
                break
            if len(buf) - pos - _HEADER < length:
                break
            payload = bytes(buf[pos + _HEADER : pos + _HEADER + length])
            pos += _HEADER + length
            events += self._message(kind, payload, base + pos - _HEADER - length)
        del buf[:pos]
        if self.failed or self.ended:
            buf.clear()
        return events

    def receive_eof(self) -> list[IngestEvent]:
        """The peer closed the connection (a documented way to hang up)."""
        if self.failed or self.ended:
            return []
        if self._buffer:
            pending = len(self._buffer)
            self._buffer.clear()
            return self._fail(f"connection closed inside a frame ({pending} bytes pending)")
        self.ended = True
        if self.started is None:
            return [Close()]
        return [CallEnded("connection closed"), Close()]

    def _fail(self, message: str) -> list[IngestEvent]:
        self.failed = True
        return failure(message, CLOSE_PROTOCOL_ERROR)

    def _check_header(self, kind: int, length: int, at: int) -> list[IngestEvent]:
        if kind not in AUDIO_KIND_RATES and kind not in (
            KIND_HANGUP,
            KIND_UUID,
            KIND_DTMF,
            KIND_ERROR,
        ):
            return self._fail(f"unknown AudioSocket kind 0x{kind:02x} at byte {at}")
        if length > self.max_payload:
            return self._fail(
                f"AudioSocket kind 0x{kind:02x} at byte {at} announces {length} bytes "
                f"(limit {self.max_payload})"
            )
        if kind == KIND_UUID and length != 16:
            return self._fail(f"UUID message at byte {at} has {length} bytes, not 16")
        if kind == KIND_DTMF and length != 1:
            return self._fail(f"DTMF message at byte {at} has {length} bytes, not 1")
        return []

    def _message(self, kind: int, payload: bytes, at: int) -> list[IngestEvent]:
        if kind == KIND_UUID:
            if self.started is not None:
                return self._fail(f"second UUID message at byte {at}")
            call_id = str(uuid.UUID(bytes=payload))
            self.started = CallStarted(
                self.source, call_id, ("caller",), self.sample_rate, {"uuid": call_id}
            )
            return [self.started]
        if kind == KIND_HANGUP:
            self.ended = True
            return [CallEnded("hangup"), Close()] if self.started else [Close()]
        if kind == KIND_ERROR:
            code, name = _error_name(payload)
            self.error_code = code
            self.ended = True
            ended: list[IngestEvent] = [CallEnded(name)] if self.started else []
            if code == 0x01 and len(payload) == 1:
                return [*ended, Close()]
            return [ProtocolError(f"peer reported AudioSocket {name}"), *ended, Close()]
        if self.started is None:
            return self._fail(f"kind 0x{kind:02x} at byte {at} before the UUID message")
        if kind == KIND_DTMF:
            record(self.dtmf, payload.decode("latin-1"))
            return []
        rate = AUDIO_KIND_RATES[kind]
        if rate != self.sample_rate:
            return self._fail(
                f"audio kind 0x{kind:02x} ({rate} Hz) at byte {at} on a {self.sample_rate} Hz "
                "connection"
            )
        if len(payload) % 2:
            return self._fail(f"audio at byte {at} has an odd length {len(payload)}")
        if not payload:
            return []
        return [AudioReceived(0, payload)]


# --- encoder (the replay client, and audio sent back to Asterisk) --------------------------


def frame(kind: int, payload: bytes = b"") -> bytes:
    """One AudioSocket message."""
    if not 0 <= kind <= 0xFF:
        raise ValueError(f"kind must be a byte, got {kind}")
    if len(payload) > 0xFFFF:
        raise ValueError(f"payload of {len(payload)} bytes exceeds 65535")
    return bytes((kind, len(payload) >> 8, len(payload) & 0xFF)) + bytes(payload)


def uuid_frame(call_id: str | uuid.UUID) -> bytes:
    """The identification message Asterisk sends first."""
    value = call_id if isinstance(call_id, uuid.UUID) else uuid.UUID(call_id)
    return frame(KIND_UUID, value.bytes)


def audio_frame(pcm: bytes, sample_rate: int = 8000) -> bytes:
    """An audio message: 16-bit LE mono PCM at ``sample_rate``."""
    kinds = {rate: kind for kind, rate in AUDIO_KIND_RATES.items()}
    if sample_rate not in kinds:
        raise ValueError(f"AudioSocket has no audio kind for {sample_rate} Hz")
    return frame(kinds[sample_rate], pcm)


def dtmf_frame(digit: str) -> bytes:
    """A DTMF message (one ASCII digit)."""
    if len(digit) != 1 or not digit.isascii():
        raise ValueError(f"DTMF digit must be one ASCII character, got {digit!r}")
    return frame(KIND_DTMF, digit.encode("ascii"))


def hangup_frame() -> bytes:
    """The hangup message."""
    return frame(KIND_HANGUP)


def error_frame(code: int | None = None) -> bytes:
    """An error message, with Asterisk's one-byte code when given."""
    return frame(KIND_ERROR, b"" if code is None else bytes((code,)))


def client_stream(
    call_id: str, pcm: bytes, *, sample_rate: int = 8000, frame_ms: int = 20
) -> list[bytes]:
    """What Asterisk would send for a whole call: UUID, 20 ms audio messages, hangup."""
    step = sample_rate * frame_ms // 1000 * 2
    out = [uuid_frame(call_id)]
    out += [audio_frame(pcm[i : i + step], sample_rate) for i in range(0, len(pcm), step)]
    out.append(hangup_frame())
    return out
