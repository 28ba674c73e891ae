"""``callstream replay``: play a WAV into an ingest gateway as the vendor's client would.

A mono WAV is the caller alone; a stereo WAV is caller (channel 0) and agent (channel 1).
Audio leaves in 20 ms frames in real time (``speed`` > 1 plays faster, for tests), built
by each protocol core's client-side encoders, so what goes on the wire is what the
protocol module accepts:

* ``twilio``: ``connected``, ``start`` (``callSid`` = the call id, ``customParameters``
  from the metadata), one ``media`` message per 20 ms and track (``inbound`` = caller,
  ``outbound`` = agent, base64 µ-law, ``timestamp`` in ms), ``stop``; the upgrade request
  signed with ``X-Twilio-Signature`` when an auth token is given;
* ``audiohook``: the upgrade signed with the API key and client secret, ``open``, binary
  PCMU frames once ``opened`` arrives (``external`` = caller, ``internal`` = agent), ``ping``
  now and then, ``close`` and the wait for ``closed``;
* ``websocket``: the JSON start message, interleaved L16 (or µ-law) binary frames, the end
  message; the token as ``Authorization: Bearer``;
* ``audiosocket``: raw TCP as Asterisk's ``res_audiosocket`` sends: the UUID message, one
  320-byte slin message per 20 ms, the hangup message (mono: the caller only).

:func:`replay` is the whole client (asyncio; aiohttp for the WebSockets).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import aiohttp

__all__ = ["PATHS", "ReplayOptions", "ReplayResult", "read_channels", "replay"]

Protocol = Literal["twilio", "audiohook", "websocket", "audiosocket"]
PATHS = {"twilio": "/ingest/twilio", "audiohook": "/ingest/audiohook", "websocket": "/ingest/ws"}
RATE = 8000
FRAME_MS = 20
PING_EVERY = 250
"""AudioHook: a ping every this many frames (5 s), as Genesys pings."""
AUDIOHOOK_ORGANIZATION = "00000000-0000-4000-8000-00000000c0de"


@dataclass(slots=True)
class ReplayOptions:
    """Where and how to play."""

    protocol: Protocol
    url: str | None = None
    """The WebSocket URL (default ``ws://<host>:<port><PATHS[protocol]>``)."""
    host: str = "127.0.0.1"
    port: int = 8080
    call_id: str | None = None
    """Twilio callSid, AudioHook conversationId, the plain socket's callId, the AudioSocket
    UUID (default: a new one in the protocol's style)."""
    speed: float = 1.0
    twilio_auth_token: str | None = None
    audiohook_api_key: str | None = None
    audiohook_secret: str | None = None
    token: str | None = None
    encoding: Literal["L16", "PCMU"] = "L16"
    """The plain socket's encoding."""
    metadata: dict[str, str] = field(default_factory=dict)
    end: Literal["message", "close", "none"] = "message"
    """How the call ends: the protocol's end message, just closing the connection, or
    neither (the connection is held open until the server closes it: an idle peer)."""
    pause: tuple[float, float] | None = None
    """AudioHook: ``(at_s, for_s)`` send ``paused`` at ``at_s`` of the audio, then nothing
    for ``for_s`` seconds (divided by ``speed``), then ``resumed``."""
    hold_s: float = 60.0
    """With ``end="none"``: give up waiting for the server's close after this long."""


@dataclass(slots=True)
class ReplayResult:
    """What happened on the wire."""

    call_id: str
    frames: int = 0
    """Audio messages sent."""
    replies: list[str | bytes] = field(default_factory=list)
    close_code: int | None = None
    """The WebSocket close code the server sent or answered with (None for TCP)."""
    closed_by_server: bool = False


def read_channels(path: str) -> list[bytes]:
    """A WAV's channels as 8 kHz 16-bit LE PCM each (resampled if needed); mono or stereo."""
    from callstream.client.producer import _channel, _load

    audio = _load(path, RATE)
    if audio.channels not in (1, 2):
        raise ValueError(f"expected a mono or stereo WAV, got {audio.channels} channels")
    return [_channel(audio, i) for i in range(audio.channels)]


def _frames(channels: Sequence[bytes], rate: int = RATE) -> list[list[bytes]]:
    """Per 20 ms step, each channel's piece (the shorter channel padded with silence)."""
    step = rate * FRAME_MS // 1000 * 2
    longest = max(len(c) for c in channels)
    out = []
    for off in range(0, longest, step):
        parts = []
        for pcm in channels:
            piece = pcm[off : off + step]
            parts.append(piece + bytes(min(step, longest - off) - len(piece)))
        out.append(parts)
    return out


class _Pacer:
    """Release step ``i`` at ``i * 20 ms / speed`` after the first."""

    def __init__(self, speed: float) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.speed = speed
        self.loop = asyncio.get_running_loop()
        self.t0 = self.loop.time()

    async def wait(self, index: int) -> None:
        delay = self.t0 + index * FRAME_MS / 1000 / self.speed - self.loop.time()
        if delay > 0:
            await asyncio.sleep(delay)

    def shift(self, seconds: float) -> None:
        self.t0 += seconds


async def replay(channels: Sequence[bytes], options: ReplayOptions) -> ReplayResult:
    """Play ``channels`` (caller, then agent if given; 8 kHz 16-bit LE) into the gateway."""
    if not channels or len(channels) > 2:
        raise ValueError("replay plays one (caller) or two (caller, agent) channels")
    if options.protocol == "audiosocket":
        return await _audiosocket(channels, options)
    if options.protocol not in PATHS:
        raise ValueError(f"unknown protocol {options.protocol!r}")
    return await _websocket(channels, options)


def _default_call_id(protocol: str) -> str:
    if protocol == "twilio":
        return "CA" + uuid.uuid4().hex
    return str(uuid.uuid4())


# --- WebSockets -------------------------------------------------------------------------------


async def _websocket(channels: Sequence[bytes], options: ReplayOptions) -> ReplayResult:
    protocol = options.protocol
    url = options.url or f"ws://{options.host}:{options.port}{PATHS[protocol]}"
    call_id = options.call_id or _default_call_id(protocol)
    result = ReplayResult(call_id)
    session_id = str(uuid.uuid4())
    headers: dict[str, str] = {}
    if protocol == "twilio" and options.twilio_auth_token:
        from callstream.ingest.signatures import twilio_signature

        headers["X-Twilio-Signature"] = twilio_signature(options.twilio_auth_token, url)
    elif protocol == "audiohook":
        headers.update(_audiohook_headers(url, options, session_id))
    elif options.token:
        headers["Authorization"] = f"Bearer {options.token}"
    async with aiohttp.ClientSession() as session:
        try:
            ws = await session.ws_connect(url, headers=headers, autoping=True, max_msg_size=0)
        except aiohttp.WSServerHandshakeError as exc:
            raise ConnectionRefusedError(f"{url}: HTTP {exc.status} {exc.message}") from None
        async with ws:
            if protocol == "twilio":
                await _play_twilio(ws, channels, options, result)
            elif protocol == "audiohook":
                await _play_audiohook(ws, channels, options, result, session_id)
            else:
                await _play_plain(ws, channels, options, result)
            if options.end == "close":
                await ws.close()
            else:
                await _drain(ws, result, options.hold_s if options.end == "none" else 10.0)
            result.close_code = ws.close_code
    return result


async def _drain(ws: aiohttp.ClientWebSocketResponse, result: ReplayResult, timeout: float) -> None:
    """Read until the server closes (or ``timeout``), keeping what it sends."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout):
            async for msg in ws:
                if msg.type in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                    result.replies.append(msg.data)
    if ws.closed:
        result.closed_by_server = True
    else:
        await ws.close()


Sender = Callable[[str | bytes], Awaitable[None]]


def _sender(ws: aiohttp.ClientWebSocketResponse) -> Sender:
    async def send(data: str | bytes) -> None:
        if isinstance(data, str):
            await ws.send_str(data)
        else:
            await ws.send_bytes(data)

    return send


async def _play_twilio(
    ws: aiohttp.ClientWebSocketResponse,
    channels: Sequence[bytes],
    options: ReplayOptions,
    result: ReplayResult,
) -> None:
    from callstream.ingest.twilio import TwilioClient

    tracks = ("inbound", "outbound")[: len(channels)]
    client = TwilioClient(result.call_id, tracks=tracks, custom_parameters=options.metadata)
    send = _sender(ws)
    await send(client.connected())
    await send(client.start())
    pacer = _Pacer(options.speed)
    for index, parts in enumerate(_frames(channels)):
        await pacer.wait(index)
        for track, pcm in zip(tracks, parts, strict=True):
            await send(client.media(track, pcm, index * FRAME_MS))
            result.frames += 1
    if options.end == "message":
        await send(client.stop())


async def _play_plain(
    ws: aiohttp.ClientWebSocketResponse,
    channels: Sequence[bytes],
    options: ReplayOptions,
    result: ReplayResult,
) -> None:
    from callstream.ingest.websocket import end_message, frames, start_message

    roles: tuple[Any, ...] = ("caller", "agent")[: len(channels)]
    send = _sender(ws)
    await send(
        start_message(
            result.call_id, encoding=options.encoding, roles=roles, metadata=options.metadata
        )
    )
    pacer = _Pacer(options.speed)
    for index, parts in enumerate(_frames(channels)):
        await pacer.wait(index)
        (data,) = frames(parts, encoding=options.encoding, frame_ms=FRAME_MS)
        await send(data)
        result.frames += 1
    if options.end == "message":
        await send(end_message(result.call_id))


def _audiohook_headers(url: str, options: ReplayOptions, session_id: str) -> Mapping[str, str]:
    """The upgrade request's AudioHook headers, signed when an API key is given."""
    import time
    from urllib.parse import urlsplit

    from callstream.ingest.signatures import decode_client_secret, sign_audiohook_request

    headers = {
        "Audiohook-Organization-Id": AUDIOHOOK_ORGANIZATION,
        "Audiohook-Session-Id": session_id,
        "Audiohook-Correlation-Id": str(uuid.uuid4()),
    }
    if not options.audiohook_api_key:
        return headers
    parts = urlsplit(url)
    signed = sign_audiohook_request(
        parts.path + (f"?{parts.query}" if parts.query else ""),
        parts.netloc,
        organization_id=AUDIOHOOK_ORGANIZATION,
        session_id=session_id,
        correlation_id=headers["Audiohook-Correlation-Id"],
        api_key=options.audiohook_api_key,
        client_secret=decode_client_secret(options.audiohook_secret or ""),
        created=int(time.time()),
    )
    signed.pop("Host", None)  # aiohttp sends the same Host itself
    return signed


async def _play_audiohook(
    ws: aiohttp.ClientWebSocketResponse,
    channels: Sequence[bytes],
    options: ReplayOptions,
    result: ReplayResult,
    session_id: str,
) -> None:
    from callstream.ingest.audiohook import AudioHookClient

    names = ("external", "internal")[: len(channels)]
    client = AudioHookClient(
        session_id=session_id,
        organization_id=AUDIOHOOK_ORGANIZATION,
        conversation_id=result.call_id,
        media=[{"type": "audio", "format": "PCMU", "channels": list(names), "rate": RATE}],
        custom_config=options.metadata,
    )
    send = _sender(ws)
    await send(client.open())
    while client.opened is None:  # audio may flow once the server says "opened"
        msg = await ws.receive(timeout=10)
        if msg.type != aiohttp.WSMsgType.TEXT:
            raise ConnectionError(f"no 'opened' from the server ({msg.type.name})")
        result.replies.append(msg.data)
        client.receive(msg.data)
    reader = asyncio.create_task(_server_messages(ws, client, result))
    try:
        pacer = _Pacer(options.speed)
        steps = _frames(channels)
        pause_at = len(steps) + 1
        if options.pause is not None:
            pause_at = int(options.pause[0] * 1000 / FRAME_MS)
        for index, parts in enumerate(steps):
            if index == pause_at and options.pause is not None:
                await send(client.paused())
                await asyncio.sleep(options.pause[1] / options.speed)
                pacer.shift(options.pause[1] / options.speed)
                await send(client.resumed())
            await pacer.wait(index)
            await send(client.audio(dict(zip(names, parts, strict=True))))
            result.frames += 1
            if index and index % PING_EVERY == 0:
                await send(client.ping())
        if options.end == "message":
            await send(client.close())
    finally:
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader


async def _server_messages(
    ws: aiohttp.ClientWebSocketResponse, client: Any, result: ReplayResult
) -> None:
    """Keep the AudioHook client's ``serverseq`` current while audio flows (pongs...)."""
    async for msg in ws:
        if msg.type == aiohttp.WSMsgType.TEXT:
            result.replies.append(msg.data)
            client.receive(msg.data)


# --- AudioSocket (TCP) ------------------------------------------------------------------------


async def _audiosocket(channels: Sequence[bytes], options: ReplayOptions) -> ReplayResult:
    from callstream.ingest.audiosocket import audio_frame, hangup_frame, uuid_frame

    call_id = options.call_id or str(uuid.uuid4())
    result = ReplayResult(call_id)
    reader, writer = await asyncio.open_connection(options.host, options.port)
    try:
        writer.write(uuid_frame(call_id))
        pacer = _Pacer(options.speed)
        for index, parts in enumerate(_frames(channels[:1])):
            await pacer.wait(index)
            writer.write(audio_frame(parts[0]))
            result.frames += 1
            await writer.drain()
        if options.end == "message":
            writer.write(hangup_frame())
            await writer.drain()
        if options.end != "close":
            timeout = options.hold_s if options.end == "none" else 10.0
            with contextlib.suppress(TimeoutError, ConnectionError):
                async with asyncio.timeout(timeout):
                    while data := await reader.read(65536):
                        result.replies.append(data)
                    result.closed_by_server = True
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    return result
