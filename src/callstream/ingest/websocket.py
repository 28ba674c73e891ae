"""The plain call-audio WebSocket: a JSON start message, binary L16 or µ-law, an end message.

This is LCA's generic WebSocket shape (``ingest-protocols.md`` §10), and with the field
mapping below it also takes jambonz ``listen`` and FreeSWITCH ``mod_audio_fork`` /
``mod_audio_stream`` as they send (§4-6). It also holds what the WebSocket cores share:
the close codes, :data:`MAX_TEXT_BYTES` / :data:`MAX_BINARY_BYTES`, and the guard around
each message of a core that stops at its end or first failure (:func:`receive_guarded`,
:func:`end_on_close`, used here and by the Twilio core).

Messages (peer -> callstream)

==============  ===========================================================================
message         meaning
==============  ===========================================================================
text, first     the start message, a JSON object (fields below)
binary          audio: L16 little-endian or µ-law at the start's rate; with two channels,
                samples interleaved (ch0, ch1, ch0, ...); any whole number of frames
text, later     ``{"event": "end"}`` / ``{"callEvent": "END"}`` / ``{"type": "end"}`` ends
                the call; other text is ignored (jambonz and mod_audio_fork send none)
==============  ===========================================================================

Nothing is sent back except the close.

Start-message fields (first present name wins)

============  ================================================  ==========================
what          accepted names                                    default
============  ================================================  ==========================
call id       ``callSid`` / ``call_sid`` (jambonz), ``callId``  required
              (LCA), ``call_id``, ``uuid`` (mod_audio_fork
              metadata), ``sessionId``; the other id fields
              stay in the metadata (jambonz's ``callId`` is
              the SIP Call-ID)
sample rate   ``sampleRate`` (jambonz), ``samplingRate`` (LCA),  the edge's default (8000)
              ``sample_rate``; 8000 or 16000
encoding      ``encoding``: ``L16`` / ``LINEAR16`` / ``PCM16`` /  ``L16``
              ``audio/l16``; ``PCMU`` / ``MULAW`` / ``ulaw`` /
              ``audio/x-mulaw``
channels      ``channels``: 1, 2 or a list of roles             the edge's default (LCA: 2)
              (``caller``/``agent``); ``roles``: list of
              roles; jambonz ``mixType``: ``mono``/``mixed`` ->
              1, ``stereo`` -> 2
metadata      ``metadata`` (an object) plus every other scalar
              top-level field (``from``, ``to``,
              ``fromNumber``, ``toNumber``, ``agentId``,
              ``direction``, ...), as strings
============  ================================================  ==========================

Roles: one channel is the caller; two are ``(caller, agent)`` unless the start message
lists roles — LCA's ch0 = CUSTOMER, ch1 = AGENT; jambonz ``stereo`` and mod_audio_fork
``stereo`` put the caller (the A leg) on ch0 and the callee on ch1, so an agent-dialled
outbound call wants ``"roles": ["agent", "caller"]`` or the sink's override. ``mixed`` is
both parties on one channel, recorded as the caller. mod_audio_fork takes rate and mix
from its API command, not the message: put ``callId``, ``sampleRate`` and ``channels``
into the metadata JSON it sends first, or let the edge supply defaults (query string).

Close codes: 1002 audio before start / a second start / a start without call id, 1003
binary-only data where text is needed or an unsupported encoding/rate/channel count,
1007 not JSON / not an object / a frame that is not whole samples, 1009 too big.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, Literal, Protocol, TypeVar

import numpy as np

from callstream.ingest.events import (
    AudioReceived,
    CallEnded,
    CallStarted,
    Close,
    IngestEvent,
    ProtocolError,
    Role,
)
from callstream.ingest.signatures import check_shared_token
from callstream.media.g711 import ulaw_encode
from callstream.voice.codecs import decode_pcmu

__all__ = [
    "CLOSE_INTERNAL_ERROR",
    "CLOSE_INVALID_PAYLOAD",
    "CLOSE_MESSAGE_TOO_BIG",
    "CLOSE_NORMAL",
    "CLOSE_POLICY_VIOLATION",
    "CLOSE_PROTOCOL_ERROR",
    "CLOSE_UNSUPPORTED_DATA",
    "MAX_BINARY_BYTES",
    "MAX_RECORDED",
    "MAX_TEXT_BYTES",
    "SUBPROTOCOLS",
    "CoreState",
    "MessageRefused",
    "PlainWebSocket",
    "check_shared_token",
    "deinterleave",
    "end_message",
    "end_on_close",
    "failure",
    "frames",
    "interleave",
    "load_json_object",
    "parse_json_object",
    "receive_guarded",
    "record",
    "start_message",
]

CLOSE_NORMAL: Final = 1000
CLOSE_PROTOCOL_ERROR: Final = 1002
CLOSE_UNSUPPORTED_DATA: Final = 1003
CLOSE_INVALID_PAYLOAD: Final = 1007
CLOSE_POLICY_VIOLATION: Final = 1008
CLOSE_MESSAGE_TOO_BIG: Final = 1009
CLOSE_INTERNAL_ERROR: Final = 1011

MAX_TEXT_BYTES: Final = 64 * 1024
"""Largest text message the plain socket accepts (start messages carry metadata)."""
MAX_BINARY_BYTES: Final = 128 * 1024
"""Largest binary message: two seconds of 16 kHz stereo L16 is 128,000 bytes."""

MAX_RECORDED: Final = 1000
"""Most entries a core keeps in a diagnostic list (DTMF digits, marks, sequence gaps,
client errors); later ones are dropped, so a peer cannot grow a connection's memory by
repeating a small message."""
MAX_RECORDED_CHARS: Final = 200
"""Longest text kept per recorded entry."""

SUBPROTOCOLS: Final = ("audio.jambonz.org", "audio.drachtio.org", "audiostream.drachtio.org")
"""WebSocket subprotocols jambonz ``listen`` and mod_audio_fork ask for; the edge accepts
them (and none) on the plain socket's path."""

_RATES: Final = (8000, 16000)
_ROLES: Final[tuple[Role, ...]] = ("caller", "agent")
_L16_NAMES: Final = frozenset({"l16", "linear16", "pcm16", "pcm", "audio/l16", "slin"})
_PCMU_NAMES: Final = frozenset({"pcmu", "mulaw", "ulaw", "audio/x-mulaw", "audio/pcmu"})
_END_VALUES: Final = frozenset({"end", "stop", "hangup"})

Encoding = Literal["L16", "PCMU"]


def failure(message: str, code: int) -> list[IngestEvent]:
    """``[ProtocolError(message), Close(code, reason)]``; the reason fits a close frame."""
    reason = message.encode()[:120].decode("utf-8", "ignore")
    return [ProtocolError(message), Close(code, reason)]


class CoreState(Protocol):
    """The call state :func:`receive_guarded` and :func:`end_on_close` read and set."""

    started: CallStarted | None
    ended: bool
    failed: bool


_Message = TypeVar("_Message", str, bytes)


def receive_guarded(
    core: CoreState, handle: Callable[[_Message], list[IngestEvent]], message: _Message
) -> list[IngestEvent]:
    """``handle(message)`` for a core that stops at its end or its first failure: nothing
    once ``core`` ended or failed, a :class:`ProtocolError` among the events marks it
    failed, and an exception becomes a failure that closes with 1011."""
    if core.failed or core.ended:
        return []
    try:
        events = handle(message)
    except Exception as exc:  # never let a peer's bytes raise through the edge
        events = failure(f"internal error: {exc!r}", CLOSE_INTERNAL_ERROR)
    if any(isinstance(e, ProtocolError) for e in events):
        core.failed = True
    return events


def end_on_close(core: CoreState, reason: str) -> list[IngestEvent]:
    """The socket closed: a started call that has not ended or failed ends (``reason``)."""
    if core.failed or core.ended or core.started is None:
        return []
    core.ended = True
    return [CallEnded(reason)]


def record(entries: list[Any], entry: Any) -> None:
    """Append ``entry`` (text truncated) to a diagnostic list unless it is full."""
    if len(entries) < MAX_RECORDED:
        entries.append(entry[:MAX_RECORDED_CHARS] if isinstance(entry, str) else entry)


class MessageRefused(Exception):
    """A peer's message breaks the protocol: ``info`` says how, ``code`` is the close code."""

    def __init__(self, info: str, code: int = CLOSE_PROTOCOL_ERROR) -> None:
        super().__init__(info)
        self.info = info
        self.code = code


def load_json_object(text: str, limit: int) -> dict[str, Any]:
    """``text`` as a JSON object; :class:`MessageRefused` when it is longer than ``limit``
    characters (1009), not JSON or not an object (1007)."""
    if len(text) > limit:
        raise MessageRefused(
            f"text message of {len(text)} characters exceeds {limit}", CLOSE_MESSAGE_TOO_BIG
        )
    try:
        value = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise MessageRefused(
            f"text message is not JSON: {exc}"[:200], CLOSE_INVALID_PAYLOAD
        ) from None
    if not isinstance(value, dict):
        raise MessageRefused("text message is not a JSON object", CLOSE_INVALID_PAYLOAD)
    return value


def parse_json_object(text: str, limit: int) -> dict[str, Any] | list[IngestEvent]:
    """``text`` as a JSON object, or the failure events (see :func:`load_json_object`)."""
    try:
        return load_json_object(text, limit)
    except MessageRefused as refused:
        return failure(refused.info, refused.code)


def deinterleave(pcm: bytes, channels: int) -> list[bytes]:
    """Split interleaved 16-bit LE PCM into one mono buffer per channel."""
    if channels == 1:
        return [bytes(pcm)]
    samples = np.frombuffer(pcm, dtype="<i2").reshape(-1, channels)
    return [samples[:, i].astype("<i2").tobytes() for i in range(channels)]


def interleave(channels: Sequence[bytes]) -> bytes:
    """Interleave mono 16-bit LE buffers (padded with silence to the longest)."""
    if len(channels) == 1:
        return bytes(channels[0])
    longest = max(len(c) // 2 for c in channels)
    out = np.zeros((longest, len(channels)), dtype="<i2")
    for i, pcm in enumerate(channels):
        samples = np.frombuffer(pcm[: len(pcm) // 2 * 2], dtype="<i2")
        out[: len(samples), i] = samples
    return out.tobytes()


def _first(obj: Mapping[str, Any], names: Sequence[str]) -> Any:
    for name in names:
        if name in obj and obj[name] is not None:
            return obj[name]
    return None


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def _is_end(obj: Mapping[str, Any]) -> bool:
    for name in ("event", "callEvent", "type"):
        value = obj.get(name)
        if isinstance(value, str) and value.lower() in _END_VALUES:
            return True
    return False


_CALL_ID_KEYS: Final = ("callSid", "call_sid", "callId", "call_id", "uuid", "sessionId")
"""Where the call id is looked for, in order. jambonz sends both ``callSid`` (its call
identifier) and ``callId`` (the SIP Call-ID); LCA sends only ``callId``."""

_START_KEYS: Final = frozenset(
    {
        "sampleRate",
        "samplingRate",
        "sample_rate",
        "encoding",
        "channels",
        "roles",
        "mixType",
        "metadata",
        "event",
        "callEvent",
        "type",
    }
)


class PlainWebSocket:
    """Sans-I/O core of the plain call-audio WebSocket (see the module docstring).

    ``default_*`` apply when the start message leaves the field out (the edge may take
    them from the query string for mod_audio_fork). Feed every text message to
    :meth:`receive_text`, every binary one to :meth:`receive_bytes`, and call
    :meth:`receive_close` when the peer goes away; each returns the events.
    """

    def __init__(
        self,
        *,
        default_sample_rate: int = 8000,
        default_channels: int = 2,
        default_encoding: Encoding = "L16",
        source: str = "websocket",
    ) -> None:
        self.default_sample_rate = default_sample_rate
        self.default_channels = default_channels
        self.default_encoding: Encoding = default_encoding
        self.source = source
        self.started: CallStarted | None = None
        self.encoding: Encoding = default_encoding
        self.ended = False
        self.failed = False
        self.ignored_text = 0
        """Text messages after the start that were not an end message."""

    # -- input --------------------------------------------------------------------------

    def receive_text(self, text: str) -> list[IngestEvent]:
        """One text message."""
        return receive_guarded(self, self._text, text)

    def receive_bytes(self, data: bytes) -> list[IngestEvent]:
        """One binary message (audio)."""
        return receive_guarded(self, self._bytes, data)

    def receive_close(self) -> list[IngestEvent]:
        """The peer closed the socket (how jambonz and mod_audio_fork end a call)."""
        return end_on_close(self, "peer closed the connection")

    # -- internals ----------------------------------------------------------------------

    def _text(self, text: str) -> list[IngestEvent]:
        obj = parse_json_object(text, MAX_TEXT_BYTES)
        if isinstance(obj, list):
            return obj
        if self.started is not None:
            if _is_end(obj):
                self.ended = True
                return [CallEnded("end message"), Close(CLOSE_NORMAL, "call ended")]
            self.ignored_text += 1
            return []
        if _is_end(obj):
            return failure("end message before the start message", CLOSE_PROTOCOL_ERROR)
        return self._start(obj)

    def _start(self, obj: dict[str, Any]) -> list[IngestEvent]:
        id_key = next((k for k in _CALL_ID_KEYS if obj.get(k) is not None), None)
        call_id = obj[id_key] if id_key is not None else None
        nested = obj.get("metadata")
        if call_id is None and isinstance(nested, dict):
            call_id = _first(nested, _CALL_ID_KEYS)
        if not isinstance(call_id, str | int) or isinstance(call_id, bool) or call_id == "":
            return failure("start message has no callId (or callSid/uuid)", CLOSE_PROTOCOL_ERROR)
        rate = _first(obj, ("sampleRate", "samplingRate", "sample_rate"))
        if rate is None:
            rate = self.default_sample_rate
        if isinstance(rate, str) and rate.isdigit():
            rate = int(rate)
        if isinstance(rate, bool) or rate not in _RATES:
            return failure(
                f"unsupported sample rate {rate!r} (8000 or 16000)", CLOSE_UNSUPPORTED_DATA
            )
        encoding_name = obj.get("encoding", self.default_encoding)
        if not isinstance(encoding_name, str):
            return failure("encoding must be a string", CLOSE_UNSUPPORTED_DATA)
        if encoding_name.lower() in _L16_NAMES:
            encoding: Encoding = "L16"
        elif encoding_name.lower() in _PCMU_NAMES:
            encoding = "PCMU"
        else:
            return failure(
                f"unsupported encoding {encoding_name!r} (L16 or PCMU)", CLOSE_UNSUPPORTED_DATA
            )
        roles = self._roles(obj)
        if isinstance(roles, str):
            return failure(roles, CLOSE_UNSUPPORTED_DATA)
        metadata: dict[str, str] = {}
        for key, value in obj.items():
            if key not in _START_KEYS and key != id_key and not isinstance(value, dict | list):
                metadata[key] = _text(value)
        if isinstance(nested, dict):
            for key, value in nested.items():
                metadata[str(key)] = _text(value)
        if "mixType" in obj:
            metadata["mixType"] = _text(obj["mixType"])
        metadata["encoding"] = encoding
        self.encoding = encoding
        self.started = CallStarted(self.source, str(call_id), roles, int(rate), metadata)
        return [self.started]

    def _roles(self, obj: Mapping[str, Any]) -> tuple[Role, ...] | str:
        listed = obj.get("roles")
        channels = obj.get("channels")
        if isinstance(channels, list):
            listed = channels
        if listed is not None:
            if (
                not isinstance(listed, list)
                or not 1 <= len(listed) <= 2
                or any(r not in _ROLES for r in listed)
                or len(set(listed)) != len(listed)
            ):
                return "roles must list 1 or 2 distinct roles of caller/agent"
            return tuple(listed)
        count: Any = channels
        mix = obj.get("mixType")
        if count is None and isinstance(mix, str):
            count = {"mono": 1, "mixed": 1, "stereo": 2}.get(mix.lower(), mix)
        if count is None:
            count = self.default_channels
        if isinstance(count, str) and count.isdigit():
            count = int(count)
        if not isinstance(count, int) or isinstance(count, bool) or count not in (1, 2):
            return f"unsupported channel count {count!r} (1 or 2)"
        return _ROLES[:count]

    def _bytes(self, data: bytes) -> list[IngestEvent]:
        if len(data) > MAX_BINARY_BYTES:
            return failure(
                f"binary message of {len(data)} bytes exceeds {MAX_BINARY_BYTES}",
                CLOSE_MESSAGE_TOO_BIG,
            )
        if self.started is None:
            return failure("audio before the start message", CLOSE_PROTOCOL_ERROR)
        channels = len(self.started.channels)
        width = 2 if self.encoding == "L16" else 1
        if len(data) % (channels * width):
            return failure(
                f"audio message of {len(data)} bytes is not whole {channels}-channel "
                f"{self.encoding} frames",
                CLOSE_INVALID_PAYLOAD,
            )
        if not data:
            return []
        pcm = decode_pcmu(bytes(data)) if self.encoding == "PCMU" else bytes(data)
        return [AudioReceived(i, part) for i, part in enumerate(deinterleave(pcm, channels))]


# --- client side (the replay client) -----------------------------------------------------


def start_message(
    call_id: str,
    *,
    sample_rate: int = 8000,
    encoding: Encoding = "L16",
    roles: Sequence[Role] = ("caller", "agent"),
    metadata: Mapping[str, str] | None = None,
) -> str:
    """The start message :class:`PlainWebSocket` reads (callstream's own field names)."""
    return json.dumps(
        {
            "event": "start",
            "callId": call_id,
            "sampleRate": sample_rate,
            "encoding": encoding,
            "channels": len(roles),
            "roles": list(roles),
            "metadata": dict(metadata or {}),
        }
    )


def end_message(call_id: str) -> str:
    """The end message."""
    return json.dumps({"event": "end", "callId": call_id})


def frames(
    pcm_by_channel: Sequence[bytes],
    *,
    sample_rate: int = 8000,
    encoding: Encoding = "L16",
    frame_ms: int = 20,
) -> list[bytes]:
    """Binary messages of ``frame_ms`` each: interleaved channels, L16 LE or µ-law."""
    samples_per_frame = sample_rate * frame_ms // 1000
    pcm = interleave(pcm_by_channel)
    step = samples_per_frame * len(pcm_by_channel) * 2
    out: list[bytes] = []
    for offset in range(0, len(pcm), step):
        chunk = pcm[offset : offset + step]
        out.append(ulaw_encode(chunk) if encoding == "PCMU" else chunk)
    return out
