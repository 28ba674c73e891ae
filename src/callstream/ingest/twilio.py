"""Twilio Media Streams (and its clones: Telnyx, SignalWire, Talkdesk, Plivo-style CPaaS).

Twilio opens a WebSocket to the ``<Stream url>`` of ``<Start><Stream>`` (or
``<Connect><Stream>``) and sends JSON text messages only
(https://www.twilio.com/docs/voice/media-streams/websocket-messages):

============  ===============================================================================
``event``     fields read here
============  ===============================================================================
connected     ``protocol`` ("Call"), ``version`` — optional, first
start         ``sequenceNumber``, ``streamSid``, ``start.{accountSid, callSid, streamSid,
              tracks[], customParameters{}, mediaFormat{encoding "audio/x-mulaw",
              sampleRate 8000, channels 1}}`` -> :class:`CallStarted`
media         ``sequenceNumber``, ``media.{track, chunk, timestamp (ms, a string),
              payload (base64 µ-law)}`` -> :class:`AudioReceived` (decoded to L16)
dtmf          ``dtmf.{track, digit}`` -> recorded in :attr:`TwilioStream.dtmf`
mark          ``mark.name`` -> recorded in :attr:`TwilioStream.marks`
stop          ``stop.{accountSid, callSid}`` -> :class:`CallEnded` and a normal close
============  ===============================================================================

Unknown events are counted and ignored (Twilio adds events over time). ``sequenceNumber``
counts every message from 1; a jump is tolerated (recorded in
:attr:`TwilioStream.sequence_gaps`), since ``media.timestamp`` places the audio anyway.

Roles: track ``inbound`` (audio from the caller into Twilio) is the caller, ``outbound``
(what Twilio plays to the caller: the agent or the app) is the agent; ``swap_tracks``
flips that (Talkdesk's stream needed it in LCA). Channels follow ``start.tracks``: ``[
"inbound"]`` gives one channel, both tracks give two (in the order listed). Telnyx-style
``inbound_track`` / ``outbound_track`` names are accepted.

Metadata: ``customParameters`` as given, then ``accountSid``, ``callSid``, ``streamSid``
and ``tracks`` (these win over a custom parameter of the same name).

Errors close with 1007 (not JSON, bad base64, bad timestamp), 1002 (media before start,
a second start, a media track not announced, missing fields), 1003 (a binary message or a
media format other than 8 kHz mono µ-law), 1009 (larger than :data:`MAX_MESSAGE_BYTES`).
The request signature (``X-Twilio-Signature`` over the ``wss://`` URL) is checked by the
edge with :func:`callstream.ingest.signatures.check_twilio_signature`.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from callstream.ingest.events import AudioReceived, CallEnded, CallStarted, Close, IngestEvent, Role
from callstream.ingest.websocket import (
    CLOSE_INVALID_PAYLOAD,
    CLOSE_NORMAL,
    CLOSE_PROTOCOL_ERROR,
    CLOSE_UNSUPPORTED_DATA,
    end_on_close,
    failure,
    parse_json_object,
    receive_guarded,
    record,
)
from callstream.media.g711 import ulaw_encode
from callstream.voice.codecs import decode_pcmu

__all__ = [
    "MAX_MESSAGE_BYTES",
    "SAMPLE_RATE",
    "TwilioClient",
    "TwilioStream",
    "client_messages",
    "server_clear",
    "server_mark",
    "server_media",
]

MAX_MESSAGE_BYTES: Final = 64 * 1024
"""Largest text message accepted (a 20 ms media message is about 400 bytes; the start
message carries the custom parameters)."""
SAMPLE_RATE: Final = 8000

_TRACK_ALIASES: Final = {
    "inbound": "inbound",
    "inbound_track": "inbound",
    "outbound": "outbound",
    "outbound_track": "outbound",
}


def _track(name: Any) -> str | None:
    return _TRACK_ALIASES.get(name) if isinstance(name, str) else None


def _int(value: Any) -> int | None:
    """A non-negative integer from an int or a decimal string (Twilio sends strings)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) < 19:
        return int(value)
    return None


def _refuse_binary(data: bytes) -> list[IngestEvent]:
    return failure("Media Streams sends JSON text only", CLOSE_UNSUPPORTED_DATA)


@dataclass
class TwilioStream:
    """Sans-I/O core of one Media Streams WebSocket (see the module docstring).

    Feed each text message to :meth:`receive_text` (binary ones to :meth:`receive_bytes`,
    which refuses them) and :meth:`receive_close` when the socket closes.
    """

    swap_tracks: bool = False
    source: str = "twilio"
    started: CallStarted | None = None
    stream_sid: str | None = None
    ended: bool = False
    failed: bool = False
    sequence_gaps: list[tuple[int, int]] = field(default_factory=list)
    """``(expected, received)`` for every ``sequenceNumber`` that was not the next one
    (the first :data:`~callstream.ingest.websocket.MAX_RECORDED`, as are marks and dtmf)."""
    marks: list[str] = field(default_factory=list)
    dtmf: list[str] = field(default_factory=list)
    ignored_events: int = 0
    _last_seq: int | None = None
    _channel_of: dict[str, int] = field(default_factory=dict)

    def receive_text(self, text: str) -> list[IngestEvent]:
        """One text message from Twilio."""
        return receive_guarded(self, self._message, text)

    def receive_bytes(self, data: bytes) -> list[IngestEvent]:
        """A binary message: Media Streams sends none."""
        return receive_guarded(self, _refuse_binary, data)

    def receive_close(self) -> list[IngestEvent]:
        """The socket closed; without a ``stop`` first the call still ends."""
        return end_on_close(self, "connection closed without stop")

    def _message(self, text: str) -> list[IngestEvent]:
        msg = parse_json_object(text, MAX_MESSAGE_BYTES)
        if isinstance(msg, list):
            return msg
        event = msg.get("event")
        if not isinstance(event, str):
            return failure("message has no 'event'", CLOSE_PROTOCOL_ERROR)
        if event == "connected":
            return []
        if "sequenceNumber" in msg:
            seq = _int(msg["sequenceNumber"])
            if seq is None:
                return failure(
                    f"bad sequenceNumber {msg['sequenceNumber']!r}", CLOSE_PROTOCOL_ERROR
                )
            self._note_sequence(seq)
        if event == "start":
            return self._start(msg)
        if event in ("media", "dtmf", "mark", "stop") and self.started is None:
            return failure(f"{event!r} before 'start'", CLOSE_PROTOCOL_ERROR)
        if event == "media":
            return self._media(msg)
        if event == "stop":
            self.ended = True
            return [CallEnded("stop"), Close(CLOSE_NORMAL, "stream stopped")]
        if event in ("dtmf", "mark"):  # recorded: dtmf.digit, mark.name
            key, entries = ("digit", self.dtmf) if event == "dtmf" else ("name", self.marks)
            body = msg.get(event)
            value = body.get(key) if isinstance(body, dict) else None
            if not isinstance(value, str):
                return failure(f"{event} message has no {event}.{key}", CLOSE_PROTOCOL_ERROR)
            record(entries, value)
            return []
        self.ignored_events += 1
        return []

    def _note_sequence(self, seq: int) -> None:
        expected = 1 if self._last_seq is None else self._last_seq + 1
        if seq != expected:
            record(self.sequence_gaps, (expected, seq))
        self._last_seq = seq if self._last_seq is None else max(seq, self._last_seq)

    def _start(self, msg: dict[str, Any]) -> list[IngestEvent]:
        if self.started is not None:
            return failure("second 'start' message", CLOSE_PROTOCOL_ERROR)
        start = msg.get("start")
        if not isinstance(start, dict):
            return failure("start message has no 'start' object", CLOSE_PROTOCOL_ERROR)
        call_sid = start.get("callSid")
        stream_sid = start.get("streamSid", msg.get("streamSid"))
        if not isinstance(call_sid, str) or not call_sid:
            return failure("start.callSid missing", CLOSE_PROTOCOL_ERROR)
        fmt = start.get("mediaFormat", {})
        if not isinstance(fmt, dict):
            return failure("start.mediaFormat is not an object", CLOSE_PROTOCOL_ERROR)
        encoding = fmt.get("encoding", "audio/x-mulaw")
        rate = fmt.get("sampleRate", SAMPLE_RATE)
        channels = fmt.get("channels", 1)
        if encoding != "audio/x-mulaw" or rate != SAMPLE_RATE or channels != 1:
            return failure(
                f"unsupported media format {encoding!r} {rate!r} Hz x{channels!r} "
                "(audio/x-mulaw 8000 Hz mono)",
                CLOSE_UNSUPPORTED_DATA,
            )
        tracks_raw = start.get("tracks", ["inbound", "outbound"])
        if not isinstance(tracks_raw, list) or not tracks_raw:
            return failure("start.tracks must be a non-empty list", CLOSE_PROTOCOL_ERROR)
        tracks: list[str] = []
        for name in tracks_raw:
            track = _track(name)
            if track is None:
                return failure(f"unknown track {name!r} in start.tracks", CLOSE_PROTOCOL_ERROR)
            if track not in tracks:
                tracks.append(track)
        roles: list[Role] = []
        for i, track in enumerate(tracks):
            self._channel_of[track] = i
            is_caller = (track == "inbound") != self.swap_tracks
            roles.append("caller" if is_caller else "agent")
        metadata: dict[str, str] = {}
        custom = start.get("customParameters", {})
        if isinstance(custom, dict):
            for key, value in custom.items():
                metadata[str(key)] = value if isinstance(value, str) else json.dumps(value)
        for key in ("accountSid", "callSid"):
            if isinstance(start.get(key), str):
                metadata[key] = start[key]
        if isinstance(stream_sid, str):
            self.stream_sid = stream_sid
            metadata["streamSid"] = stream_sid
        metadata["tracks"] = ",".join(tracks)
        self.started = CallStarted(self.source, call_sid, tuple(roles), SAMPLE_RATE, metadata)
        return [self.started]

    def _media(self, msg: dict[str, Any]) -> list[IngestEvent]:
        media = msg.get("media")
        if not isinstance(media, dict):
            return failure("media message has no 'media' object", CLOSE_PROTOCOL_ERROR)
        track = _track(media.get("track", "inbound"))
        if track is None or track not in self._channel_of:
            return failure(
                f"media on track {media.get('track')!r} not in start.tracks", CLOSE_PROTOCOL_ERROR
            )
        timestamp: int | None = None
        if "timestamp" in media:
            timestamp = _int(media["timestamp"])
            if timestamp is None:
                return failure(f"bad media.timestamp {media['timestamp']!r}", CLOSE_INVALID_PAYLOAD)
        payload = media.get("payload")
        if not isinstance(payload, str):
            return failure("media.payload missing", CLOSE_PROTOCOL_ERROR)
        try:
            ulaw = base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError):
            return failure("media.payload is not base64", CLOSE_INVALID_PAYLOAD)
        if not ulaw:
            return []
        return [AudioReceived(self._channel_of[track], decode_pcmu(ulaw), timestamp)]


# --- client side (the replay client) and bidirectional server messages --------------------


class TwilioClient:
    """Builds the messages Twilio sends, numbered as Twilio numbers them.

    For the replay client: ``connected()``, ``start()``, then ``media()`` per 20 ms and
    track (PCM is µ-law encoded here), ``dtmf()`` / ``mark()``, ``stop()``.
    """

    def __init__(
        self,
        call_sid: str,
        *,
        account_sid: str = "AC00000000000000000000000000000000",
        stream_sid: str = "MZ00000000000000000000000000000000",
        tracks: Sequence[str] = ("inbound", "outbound"),
        custom_parameters: Mapping[str, str] | None = None,
    ) -> None:
        self.call_sid = call_sid
        self.account_sid = account_sid
        self.stream_sid = stream_sid
        self.tracks = tuple(tracks)
        self.custom_parameters = dict(custom_parameters or {})
        self.sequence = 0
        self._chunks: dict[str, int] = {}

    def _next(self) -> str:
        self.sequence += 1
        return str(self.sequence)

    def connected(self) -> str:
        """The first message."""
        return json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"})

    def start(self) -> str:
        """The start message (sequenceNumber 1 when sent first after connected)."""
        return json.dumps(
            {
                "event": "start",
                "sequenceNumber": self._next(),
                "start": {
                    "accountSid": self.account_sid,
                    "streamSid": self.stream_sid,
                    "callSid": self.call_sid,
                    "tracks": list(self.tracks),
                    "customParameters": self.custom_parameters,
                    "mediaFormat": {
                        "encoding": "audio/x-mulaw",
                        "sampleRate": SAMPLE_RATE,
                        "channels": 1,
                    },
                },
                "streamSid": self.stream_sid,
            }
        )

    def media(self, track: str, pcm: bytes, timestamp_ms: int) -> str:
        """One media message: ``pcm`` (16-bit LE, 8 kHz) µ-law encoded on ``track``."""
        chunk = self._chunks.get(track, 0) + 1
        self._chunks[track] = chunk
        return json.dumps(
            {
                "event": "media",
                "sequenceNumber": self._next(),
                "media": {
                    "track": track,
                    "chunk": str(chunk),
                    "timestamp": str(timestamp_ms),
                    "payload": base64.b64encode(ulaw_encode(pcm)).decode("ascii"),
                },
                "streamSid": self.stream_sid,
            }
        )

    def dtmf(self, digit: str) -> str:
        """A DTMF message (inbound track)."""
        return json.dumps(
            {
                "event": "dtmf",
                "streamSid": self.stream_sid,
                "sequenceNumber": self._next(),
                "dtmf": {"track": "inbound_track", "digit": digit},
            }
        )

    def mark(self, name: str) -> str:
        """A mark message (Twilio echoes marks of bidirectional streams)."""
        return json.dumps(
            {
                "event": "mark",
                "sequenceNumber": self._next(),
                "streamSid": self.stream_sid,
                "mark": {"name": name},
            }
        )

    def stop(self) -> str:
        """The stop message."""
        return json.dumps(
            {
                "event": "stop",
                "sequenceNumber": self._next(),
                "streamSid": self.stream_sid,
                "stop": {"accountSid": self.account_sid, "callSid": self.call_sid},
            }
        )


def client_messages(
    call_sid: str,
    pcm_by_track: Mapping[str, bytes],
    *,
    frame_ms: int = 20,
    custom_parameters: Mapping[str, str] | None = None,
) -> list[str]:
    """A whole stream as Twilio would send it: connected, start, media per frame, stop.

    ``pcm_by_track`` maps ``inbound`` / ``outbound`` to 16-bit LE 8 kHz PCM; the media
    messages alternate tracks frame by frame with ``timestamp`` = frame index x ``frame_ms``.
    """
    client = TwilioClient(call_sid, tracks=tuple(pcm_by_track), custom_parameters=custom_parameters)
    out = [client.connected(), client.start()]
    step = SAMPLE_RATE * frame_ms // 1000 * 2
    longest = max((len(p) for p in pcm_by_track.values()), default=0)
    for index, offset in enumerate(range(0, longest, step)):
        for track, pcm in pcm_by_track.items():
            chunk = pcm[offset : offset + step]
            if chunk:
                out.append(client.media(track, chunk, index * frame_ms))
    out.append(client.stop())
    return out


def server_media(stream_sid: str, pcm: bytes) -> str:
    """Audio to play into a bidirectional stream (``<Connect><Stream>``)."""
    payload = base64.b64encode(ulaw_encode(pcm)).decode("ascii")
    return json.dumps({"event": "media", "streamSid": stream_sid, "media": {"payload": payload}})


def server_mark(stream_sid: str, name: str) -> str:
    """Ask Twilio to echo ``name`` once the audio sent before it has played."""
    return json.dumps({"event": "mark", "streamSid": stream_sid, "mark": {"name": name}})


def server_clear(stream_sid: str) -> str:
    """Drop the audio queued for playback."""
    return json.dumps({"event": "clear", "streamSid": stream_sid})
