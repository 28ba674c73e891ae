"""Genesys Cloud AudioHook (protocol version 2): the server side of an AudioHook Monitor.

Genesys (the *client*) opens a WebSocket with a signed upgrade request (checked by
:func:`callstream.ingest.signatures.check_audiohook_request`) and runs transactions in
JSON text messages; audio comes as binary frames between them.

Every text message is ``{"version": "2", "id": <session id>, "type", "seq",
"parameters"}``; client messages add ``serverseq`` (the last server ``seq`` seen) and
``position`` (ISO 8601 ``PT<seconds>S``: the audio stream position), server messages add
``clientseq`` (the last client ``seq`` seen). ``seq`` counts from 1 on each side.

=============  ========================================================================
client sends   what this core does
=============  ========================================================================
open           picks one offered ``media`` (PCMU or L16 at 8 kHz; stereo first, then
               PCMU), replies ``opened {media: [chosen], startPaused}`` and emits
               :class:`CallStarted` (``call_id`` = ``conversationId``); the connection
               probe (``conversationId`` all zeros) gets ``opened`` but no call events
binary frame   audio in the opened format, channels interleaved in ``media.channels``
               order -> :class:`AudioReceived` per channel with ``timestamp_ms`` = the
               stream position of its first sample
ping           replies ``pong``; ``parameters.rtt`` (the client's last round trip) is
               kept in :attr:`AudioHookSession.rtt_ms`
paused         the client paused (on hold, or answering a server ``pause``) ->
               :class:`CallPaused`
resumed        audio again -> :class:`CallResumed`; ``discarded`` advances the position
discarded      the client dropped audio -> the position advances by ``discarded``
update         ``language`` changed -> replies ``updated``
reconnecting,  the client is moving the conversation to a new session (after a server
reconnected    ``reconnect`` or on its own) -> counted in
               :attr:`AudioHookSession.reconnect_notices`; the old session then closes
               with reason ``reconnect``, and the new session's ``open`` lists the old one
               in ``continuedSessions`` (kept as the call metadata ``continuedSessions``)
error          the client reports an error (``code``, ``message``) -> kept in
               :attr:`AudioHookSession.client_errors`; the client closes next
close          replies ``closed``, emits :class:`CallEnded` (``reason``) and a normal close
=============  ========================================================================

The server may send ``pause`` / ``resume`` (:meth:`AudioHookSession.pause`,
:meth:`~AudioHookSession.resume`), ``event`` (:meth:`~AudioHookSession.send_event`),
``reconnect`` (:meth:`~AudioHookSession.reconnect`) and ``disconnect``
(:meth:`~AudioHookSession.disconnect`).

Roles: ``media.channels`` names ``external`` (the customer) -> caller and ``internal``
(the agent) -> agent, in the order the chosen media lists them.

Protocol errors (not JSON, larger than :data:`MAX_TEXT_BYTES` / :data:`MAX_BINARY_BYTES`,
a bad envelope, ``seq`` not the previous + 1, ``serverseq`` ahead of what was sent, a
different session ``id``, an unknown type, bad parameters, audio before ``opened`` or
while paused, a frame that is not whole samples of every channel) are answered with
``disconnect {reason: "error", info}`` as the Genesys reference server does, then
:class:`ProtocolError` and :class:`Close` (1002, or 1007 for undecodable data, 1009 for
size, 1003 when no offered media is usable, 1008 for an organization id that does not
match the signed header). The reference server instead keeps reading until the client's
close transaction; this core closes at once, so a broken peer cannot keep the session
open (the call still ends: the edge ends the sink when the socket goes).

L16 frames are read as little-endian, as the Genesys reference implementation does.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from callstream.ingest.events import (
    AudioReceived,
    CallEnded,
    CallPaused,
    CallResumed,
    CallStarted,
    Close,
    IngestEvent,
    Reply,
    Role,
)
from callstream.ingest.websocket import (
    CLOSE_INTERNAL_ERROR,
    CLOSE_INVALID_PAYLOAD,
    CLOSE_MESSAGE_TOO_BIG,
    CLOSE_NORMAL,
    CLOSE_POLICY_VIOLATION,
    CLOSE_UNSUPPORTED_DATA,
    MessageRefused,
    deinterleave,
    failure,
    interleave,
    load_json_object,
    record,
)
from callstream.media.g711 import ulaw_encode
from callstream.voice.codecs import decode_pcmu

__all__ = [
    "MAX_BINARY_BYTES",
    "MAX_TEXT_BYTES",
    "NULL_UUID",
    "SAMPLE_RATE",
    "AudioHookClient",
    "AudioHookSession",
    "format_duration",
    "parse_duration",
]

MAX_TEXT_BYTES: Final = 65535
"""Largest text message (the Genesys reference server's limit)."""
MAX_BINARY_BYTES: Final = 64 * 1024
"""Largest audio frame (one second of stereo L16 is 32,000 bytes)."""
SAMPLE_RATE: Final = 8000

_CHANNEL_ROLES: Final[dict[str, Role]] = {"external": "caller", "internal": "agent"}
_FORMAT_WIDTH: Final = {"PCMU": 1, "L16": 2}
_CLIENT_TYPES: Final = frozenset(
    {
        "open",
        "close",
        "discarded",
        "error",
        "ping",
        "update",
        "paused",
        "resumed",
        "reconnecting",
        "reconnected",
    }
)
_MAX_CONTINUED: Final = 6
"""Continued session ids kept (six UUIDs fit one 256-character tag value)."""
_DURATION_RE: Final = re.compile(r"PT([0-9]{0,12})(?:\.([0-9]{1,18}))?S")
NULL_UUID: Final = "00000000-0000-0000-0000-000000000000"
"""The conversation id of Genesys's connection probe (an open that is no call)."""

State = Literal["preparing", "active", "paused", "closed", "failed"]


def parse_duration(text: Any) -> int | None:
    """An AudioHook duration (``PT1.25S``) in microseconds, or ``None`` if malformed."""
    if not isinstance(text, str):
        return None
    m = _DURATION_RE.fullmatch(text)
    if not m or not (m.group(1) or m.group(2)):
        return None
    # The reference implementation's grammar (PT(\d*\.)?\d+S): the integer part may be
    # empty; digits past the nanosecond are dropped.
    fraction = (m.group(2) or "")[:9].ljust(9, "0")
    return int(m.group(1) or "0") * 1_000_000 + int(fraction) // 1000


def format_duration(samples: int, rate: int = SAMPLE_RATE) -> str:
    """``samples`` at ``rate`` as an AudioHook duration, exact to the sample."""
    whole, rest = divmod(samples, rate)
    if not rest:
        return f"PT{whole}S"
    fraction = f"{rest * 1_000_000_000 // rate:09d}".rstrip("0")
    return f"PT{whole}.{fraction}S"


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


@dataclass(frozen=True, slots=True)
class _Media:
    format: str
    channels: tuple[str, ...]

    def as_json(self) -> dict[str, Any]:
        return {
            "type": "audio",
            "format": self.format,
            "channels": list(self.channels),
            "rate": SAMPLE_RATE,
        }


@dataclass
class AudioHookSession:
    """Sans-I/O core of one AudioHook WebSocket (see the module docstring).

    ``session_id`` and ``organization_id`` are the ``Audiohook-Session-Id`` and
    ``Audiohook-Organization-Id`` headers of the (signature-checked) upgrade request; when
    given, every message's ``id`` and the open's ``organizationId`` must match them.
    Feed text messages to :meth:`receive_text`, binary ones to :meth:`receive_bytes`, and
    call :meth:`receive_close` when the socket closes.
    """

    session_id: str | None = None
    organization_id: str | None = None
    start_paused: bool = False
    source: str = "audiohook"
    state: State = "preparing"
    started: CallStarted | None = None
    media: dict[str, Any] | None = None
    """The chosen media, as sent in ``opened``."""
    seq: int = 0
    clientseq: int = 0
    rtt_ms: float | None = None
    language: str | None = None
    client_position_us: int | None = None
    """The ``position`` of the last client message, in microseconds."""
    client_errors: list[dict[str, Any]] = field(default_factory=list)
    probe: bool = False
    """The open was Genesys's connection probe (conversation id all zeros): it is answered
    (``opened``, ``pong``, ``closed``) but emits no call events."""
    samples: int = 0
    """Samples per channel received so far."""
    skipped_samples: int = 0
    """Samples the client reported discarded (``discarded``, ``resumed``)."""
    reconnect_notices: int = 0
    """``reconnecting`` / ``reconnected`` messages the client sent."""
    _format: str = "PCMU"
    _channels: int = 0

    # -- input --------------------------------------------------------------------------

    def receive_text(self, text: str) -> list[IngestEvent]:
        """One text message from the client."""
        if self.state in ("closed", "failed"):
            return []
        try:
            return self._text(text)
        except MessageRefused as exc:
            return self._error(exc.info, exc.code)
        except Exception as exc:  # never let a peer's bytes raise through the edge
            return self._error(f"internal error: {exc!r}", CLOSE_INTERNAL_ERROR)

    def receive_bytes(self, data: bytes) -> list[IngestEvent]:
        """One binary message (an audio frame)."""
        if self.state in ("closed", "failed"):
            return []
        try:
            return self._audio(data)
        except MessageRefused as exc:
            return self._error(exc.info, exc.code)
        except Exception as exc:
            return self._error(f"internal error: {exc!r}", CLOSE_INTERNAL_ERROR)

    def receive_close(self) -> list[IngestEvent]:
        """The socket closed; a call that was open ends without a close transaction."""
        if self.state in ("closed", "failed") or self.started is None:
            self.state = "closed" if self.state != "failed" else self.state
            return []
        self.state = "closed"
        return [CallEnded("connection closed without a close transaction")]

    # -- server-initiated messages --------------------------------------------------------

    def pause(self) -> list[IngestEvent]:
        """Ask the client to pause the audio (it answers ``paused``)."""
        return self._server_only("pause", {})

    def resume(self) -> list[IngestEvent]:
        """Ask the client to resume after a server pause (it answers ``resumed``)."""
        return self._server_only("resume", {})

    def send_event(self, entities: list[dict[str, Any]]) -> list[IngestEvent]:
        """An ``event`` message (e.g. transcript entities) to the client."""
        return self._server_only("event", {"entities": entities})

    def reconnect(self) -> list[IngestEvent]:
        """Ask the client to move the conversation to a new session (server draining):
        it opens one with ``continuedSessions`` and closes this one (reason
        ``reconnect``)."""
        return self._server_only("reconnect", {})

    def disconnect(self, reason: str = "completed", info: str | None = None) -> list[IngestEvent]:
        """Ask the client to end the session (it runs a close transaction next)."""
        params: dict[str, Any] = {"reason": reason}
        if info:
            params["info"] = info
        return self._server_only("disconnect", params)

    def _server_only(self, kind: str, params: dict[str, Any]) -> list[IngestEvent]:
        if self.state not in ("active", "paused"):
            return []
        return [self._reply(kind, params)]

    # -- internals ----------------------------------------------------------------------

    def _reply(self, kind: str, params: dict[str, Any]) -> Reply:
        self.seq += 1
        message = {
            "version": "2",
            "id": self.session_id or "00000000-0000-0000-0000-000000000000",
            "type": kind,
            "seq": self.seq,
            "clientseq": self.clientseq,
            "parameters": params,
        }
        return Reply(json.dumps(message))

    def _error(self, info: str, code: int) -> list[IngestEvent]:
        reply = self._reply("disconnect", {"reason": "error", "info": info[:500]})
        self.state = "failed"
        return [reply, *failure(info, code)]

    def _text(self, text: str) -> list[IngestEvent]:
        msg = load_json_object(text, MAX_TEXT_BYTES)
        kind = self._envelope(msg)
        params: dict[str, Any] = msg["parameters"]
        if kind == "open":
            return self._open(params)
        if kind == "ping":
            rtt = params.get("rtt")
            if rtt is not None:
                micros = parse_duration(rtt)
                if micros is None:
                    raise MessageRefused(f"ping rtt {rtt!r} is not a duration")
                self.rtt_ms = micros / 1000
            return [self._reply("pong", {})]
        if kind == "close":
            reason = params.get("reason", "end")
            was_open = self.started is not None
            self.state = "closed"
            events: list[IngestEvent] = [self._reply("closed", {})]
            if was_open:
                events.append(CallEnded(str(reason)))
            return [*events, Close(CLOSE_NORMAL, "session closed")]
        if kind == "error":
            record(self.client_errors, params)
            return []
        if self.state == "preparing":
            raise MessageRefused(f"'{kind}' before the open transaction")
        if kind == "paused":
            if self.state == "active":
                self.state = "paused"
                return [] if self.probe else [CallPaused()]
            return []
        if kind in ("reconnecting", "reconnected"):
            self.reconnect_notices += 1
            return []
        if kind in ("resumed", "discarded"):
            discarded = parse_duration(params.get("discarded", "PT0S"))
            if discarded is None:
                raise MessageRefused(f"{kind} 'discarded' is not a duration")
            self.skipped_samples += discarded * SAMPLE_RATE // 1_000_000
            if kind == "resumed" and self.state == "paused":
                self.state = "active"
                return [] if self.probe else [CallResumed()]
            return []
        # update
        language = params.get("language")
        if not isinstance(language, str):
            raise MessageRefused("update without a 'language' string")
        self.language = language
        return [self._reply("updated", {})]

    def _envelope(self, msg: dict[str, Any]) -> str:
        if msg.get("version") != "2":
            raise MessageRefused(f"unsupported protocol version {msg.get('version')!r}")
        kind = msg.get("type")
        seq = _int(msg.get("seq"))
        serverseq = _int(msg.get("serverseq"))
        session_id = msg.get("id")
        if not isinstance(kind, str) or not isinstance(session_id, str):
            raise MessageRefused("message without 'type' and 'id' strings")
        if seq is None or serverseq is None:
            raise MessageRefused("message without integer 'seq' and 'serverseq'")
        if not isinstance(msg.get("parameters"), dict):
            raise MessageRefused("message without a 'parameters' object")
        if seq != self.clientseq + 1:
            raise MessageRefused(
                f"invalid seq {seq} (expected {self.clientseq + 1}, not monotonically increasing)"
            )
        self.clientseq = seq
        if not 0 <= serverseq <= self.seq:
            raise MessageRefused(f"invalid serverseq {serverseq} (last sent {self.seq})")
        if self.session_id is None:
            self.session_id = session_id
        elif session_id != self.session_id:
            raise MessageRefused("session identifier mismatch")
        position = parse_duration(msg.get("position"))
        if position is None:
            raise MessageRefused(f"invalid position {msg.get('position')!r}")
        self.client_position_us = position
        if kind not in _CLIENT_TYPES:
            raise MessageRefused(f"'{kind}' is not a supported client message")
        return kind

    def _open(self, params: dict[str, Any]) -> list[IngestEvent]:
        if self.state != "preparing":
            raise MessageRefused("second 'open' message")
        org = params.get("organizationId")
        conversation = params.get("conversationId")
        offered = params.get("media")
        if not isinstance(org, str) or not isinstance(conversation, str) or not conversation:
            raise MessageRefused("open without organizationId and conversationId strings")
        if not isinstance(offered, list):
            raise MessageRefused("open without a 'media' list")
        if self.organization_id is not None and org != self.organization_id:
            raise MessageRefused(
                "organizationId does not match the signed header", CLOSE_POLICY_VIOLATION
            )
        chosen = _choose_media(offered)
        if chosen is None:
            raise MessageRefused(
                "no offered media is PCMU or L16 at 8000 Hz", CLOSE_UNSUPPORTED_DATA
            )
        self._format = chosen.format
        self._channels = len(chosen.channels)
        self.media = chosen.as_json()
        metadata: dict[str, str] = {
            "organizationId": org,
            "conversationId": conversation,
            "sessionId": self.session_id or "",
            "mediaFormat": chosen.format,
            "mediaChannels": ",".join(chosen.channels),
        }
        participant = params.get("participant")
        if isinstance(participant, dict):
            for key, name in (("id", "participantId"), ("ani", "ani"), ("aniName", "aniName")):
                if isinstance(participant.get(key), str):
                    metadata[name] = participant[key]
            if isinstance(participant.get("dnis"), str):
                metadata["dnis"] = participant["dnis"]
        if isinstance(params.get("language"), str):
            self.language = params["language"]
            metadata["language"] = params["language"]
        continued = params.get("continuedSessions")
        if isinstance(continued, list):
            ids = [
                c["id"]
                for c in continued[:_MAX_CONTINUED]
                if isinstance(c, dict) and isinstance(c.get("id"), str)
            ]
            if ids:
                metadata["continuedSessions"] = ",".join(ids)
        custom = params.get("customConfig")
        if isinstance(custom, dict):
            for key, value in custom.items():
                text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
                metadata[f"customConfig.{key}"] = text
        roles = tuple(_CHANNEL_ROLES[c] for c in chosen.channels)
        opened = self._reply("opened", {"media": [self.media], "startPaused": self.start_paused})
        self.state = "paused" if self.start_paused else "active"
        if conversation == NULL_UUID:
            # Genesys's connection probe: answered like any open, but there is no call.
            self.probe = True
            return [opened]
        self.started = CallStarted(self.source, conversation, roles, SAMPLE_RATE, metadata)
        events: list[IngestEvent] = [opened, self.started]
        if self.start_paused:
            events.append(CallPaused())
        return events

    def _audio(self, data: bytes) -> list[IngestEvent]:
        if len(data) > MAX_BINARY_BYTES:
            raise MessageRefused(
                f"audio frame of {len(data)} bytes exceeds {MAX_BINARY_BYTES}",
                CLOSE_MESSAGE_TOO_BIG,
            )
        if self.state == "preparing":
            raise MessageRefused("audio before the open transaction completed")
        if self.state == "paused":
            raise MessageRefused("audio while paused")
        width = _FORMAT_WIDTH[self._format] * self._channels
        if len(data) % width:
            raise MessageRefused(
                f"audio frame of {len(data)} bytes is not whole {self._channels}-channel "
                f"{self._format} samples",
                CLOSE_INVALID_PAYLOAD,
            )
        if not data or self.probe:
            return []
        pcm = decode_pcmu(bytes(data)) if self._format == "PCMU" else bytes(data)
        timestamp = (self.samples + self.skipped_samples) * 1000 // SAMPLE_RATE
        self.samples += len(data) // width
        return [
            AudioReceived(i, part, timestamp)
            for i, part in enumerate(deinterleave(pcm, self._channels))
        ]


def _choose_media(offered: list[Any]) -> _Media | None:
    usable: list[_Media] = []
    for entry in offered:
        if not isinstance(entry, dict):
            continue
        channels = entry.get("channels")
        fmt = entry.get("format")
        if (
            entry.get("type", "audio") != "audio"
            or not isinstance(fmt, str)
            or fmt not in _FORMAT_WIDTH
            or entry.get("rate") != SAMPLE_RATE
            or not isinstance(channels, list)
            or not 1 <= len(channels) <= 2
            or any(not isinstance(c, str) or c not in _CHANNEL_ROLES for c in channels)
            or len(set(channels)) != len(channels)
        ):
            continue
        usable.append(_Media(fmt, tuple(channels)))
    if not usable:
        return None
    return min(usable, key=lambda m: (-len(m.channels), m.format != "PCMU"))


# --- client side (the replay client) -----------------------------------------------------

_DEFAULT_MEDIA: Final = (
    {"type": "audio", "format": "PCMU", "channels": ["external", "internal"], "rate": 8000},
    {"type": "audio", "format": "PCMU", "channels": ["external"], "rate": 8000},
    {"type": "audio", "format": "PCMU", "channels": ["internal"], "rate": 8000},
)


class AudioHookClient:
    """Builds what Genesys Cloud sends, numbered and positioned as it does.

    Send :meth:`open`, feed every server message to :meth:`receive` (it tracks
    ``serverseq`` and the media ``opened`` chose), then :meth:`audio` frames and the
    other messages, and :meth:`close` at the end.
    """

    def __init__(
        self,
        *,
        session_id: str,
        organization_id: str,
        conversation_id: str,
        participant: Mapping[str, str] | None = None,
        media: Sequence[Mapping[str, Any]] = _DEFAULT_MEDIA,
        custom_config: Mapping[str, Any] | None = None,
        language: str | None = None,
    ) -> None:
        self.session_id = session_id
        self.organization_id = organization_id
        self.conversation_id = conversation_id
        self.participant = dict(
            participant
            or {
                "id": "00000000-0000-0000-0000-000000000001",
                "ani": "+15551230000",
                "aniName": "Caller",
                "dnis": "+15559870000",
            }
        )
        self.offered = [dict(m) for m in media]
        self.custom_config = dict(custom_config or {})
        self.language = language
        self.seq = 0
        self.serverseq = 0
        self.samples = 0
        self.opened: dict[str, Any] | None = None

    def _message(self, kind: str, params: Mapping[str, Any]) -> str:
        self.seq += 1
        return json.dumps(
            {
                "version": "2",
                "id": self.session_id,
                "type": kind,
                "seq": self.seq,
                "serverseq": self.serverseq,
                "position": format_duration(self.samples),
                "parameters": dict(params),
            }
        )

    def receive(self, text: str) -> dict[str, Any]:
        """A server message: tracks ``serverseq`` and the ``opened`` media; returns it."""
        msg: dict[str, Any] = json.loads(text)
        self.serverseq = int(msg["seq"])
        if msg.get("type") == "opened":
            chosen = msg["parameters"].get("media") or []
            self.opened = chosen[0] if chosen else None
        return msg

    def open(self) -> str:
        """The open message."""
        params: dict[str, Any] = {
            "organizationId": self.organization_id,
            "conversationId": self.conversation_id,
            "participant": self.participant,
            "media": self.offered,
        }
        if self.custom_config:
            params["customConfig"] = self.custom_config
        if self.language:
            params["language"] = self.language
        return self._message("open", params)

    def audio(self, pcm_by_channel: Mapping[str, bytes]) -> bytes:
        """One binary frame in the opened format from ``{"external": pcm, ...}`` (16-bit LE
        8 kHz); channels missing from the mapping are silence."""
        if self.opened is None:
            raise ValueError("no media opened yet")
        names: list[str] = self.opened["channels"]
        longest = max((len(p) for p in pcm_by_channel.values()), default=0)
        parts = [pcm_by_channel.get(n, b"").ljust(longest, b"\0") for n in names]
        pcm = interleave(parts)
        self.samples += longest // 2
        return ulaw_encode(pcm) if self.opened["format"] == "PCMU" else pcm

    def frames(self, pcm_by_channel: Mapping[str, bytes], frame_ms: int = 20) -> list[bytes]:
        """:meth:`audio` for each ``frame_ms`` slice of whole recordings."""
        step = SAMPLE_RATE * frame_ms // 1000 * 2
        longest = max((len(p) for p in pcm_by_channel.values()), default=0)
        return [
            self.audio({n: p[i : i + step] for n, p in pcm_by_channel.items()})
            for i in range(0, longest, step)
        ]

    def ping(self, rtt_ms: float | None = None) -> str:
        """A ping (with the last measured round trip, if any)."""
        params = {} if rtt_ms is None else {"rtt": f"PT{rtt_ms / 1000:.6f}S"}
        return self._message("ping", params)

    def paused(self) -> str:
        """The client paused."""
        return self._message("paused", {})

    def resumed(self, discarded_samples: int = 0) -> str:
        """The client resumed; ``discarded_samples`` of audio were dropped while paused."""
        start = format_duration(self.samples)
        self.samples += discarded_samples
        return self._message(
            "resumed", {"start": start, "discarded": format_duration(discarded_samples)}
        )

    def discarded(self, discarded_samples: int) -> str:
        """The client dropped ``discarded_samples`` of audio."""
        start = format_duration(self.samples)
        self.samples += discarded_samples
        return self._message(
            "discarded", {"start": start, "discarded": format_duration(discarded_samples)}
        )

    def update(self, language: str) -> str:
        """The conversation's language changed."""
        return self._message("update", {"language": language})

    def error(self, code: int, message: str) -> str:
        """The client reports an error."""
        return self._message("error", {"code": code, "message": message})

    def close(self, reason: str = "end") -> str:
        """The close message."""
        return self._message("close", {"reason": reason})
