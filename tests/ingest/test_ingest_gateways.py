"""The ingest gateways end to end: a real server (in process, real sockets), the replay
client speaking each protocol as its vendor documents it, and what the store holds read
back with boto3 GetMedia: the PCM sent, sample for sample, on the right track or leg,
with the call's tags and events. Refusals, bad input, the call bound and idle peers."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import struct
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest
from ingest_helpers import StreamAudio, parse_payload, tone

from callstream.api.app import ServerConfig
from callstream.api.server import ServerThread
from callstream.client.aws import boto_client
from callstream.ingest.audiosocket import audio_frame, hangup_frame, uuid_frame
from callstream.ingest.config import IngestConfig
from callstream.ingest.replay import ReplayOptions, ReplayResult, replay
from callstream.ingest.websocket import end_message, start_message
from callstream.media.g711 import ulaw_decode, ulaw_encode

KEY, SECRET = "ingest-key", "ingest-secret"
TWILIO_TOKEN = "twilio-auth-token"
HOOK_KEY, HOOK_SECRET = "hook-key", "aG9vay1zZWNyZXQtYnl0ZXM="
TOKEN = "plain-token"
IDLE_S = 1.0


def ingest_config(**changes: Any) -> IngestConfig:
    config = IngestConfig(
        twilio_auth_token=TWILIO_TOKEN,
        audiohook_keys={HOOK_KEY: HOOK_SECRET},
        token=TOKEN,
        audiosocket_port=0,
        idle_timeout_s=IDLE_S,
    )
    for name, value in changes.items():
        setattr(config, name, value)
    return config


def start_server(tmp: Path, ingest: IngestConfig) -> ServerThread:
    config = ServerConfig(
        credentials={KEY: SECRET}, live_idle_timeout_s=0.5, ui=None, ingest=ingest
    )
    return ServerThread(tmp, config=config).start()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    srv = start_server(tmp_path_factory.mktemp("ingest"), ingest_config())
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def chime_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    """Chime-shaped calls; only Twilio configured (AudioHook is refused with 403)."""
    ingest = ingest_config(shape="chime", audiohook_keys={}, token=None, max_calls=1)
    srv = start_server(tmp_path_factory.mktemp("ingest-chime"), ingest)
    yield srv
    srv.stop()


def options(server: ServerThread, protocol: str, **changes: Any) -> ReplayOptions:
    ingest = server.config.ingest
    assert ingest is not None
    port = ingest.bound_audiosocket_port if protocol == "audiosocket" else server.port
    opts = ReplayOptions(
        protocol,  # type: ignore[arg-type]
        port=port or 0,
        speed=8.0,
        twilio_auth_token=TWILIO_TOKEN,
        audiohook_api_key=HOOK_KEY,
        audiohook_secret=HOOK_SECRET,
        token=TOKEN,
    )
    for name, value in changes.items():
        setattr(opts, name, value)
    return opts


def play(channels: list[bytes], opts: ReplayOptions) -> ReplayResult:
    return asyncio.run(replay(channels, opts))


# --- reading back -----------------------------------------------------------------------------


def kvs(server: ServerThread, service: str = "kinesisvideo") -> Any:
    from botocore.credentials import Credentials

    return boto_client(service, server.url, "us-east-1", Credentials(KEY, SECRET))


def bus(server: ServerThread) -> list[dict[str, Any]]:
    server.state.events.flush(5)
    page = server.state.events.query(after=0, limit=10000)
    return [{"EventType": e.type, **e.fields} for e in page.events]


def streams_of(server: ServerThread, call_id: str) -> list[tuple[dict[str, Any], dict[str, str]]]:
    """The streams tagged with ``call_id`` (info, tags), oldest first."""
    kv = kvs(server)
    found = []
    for info in kv.list_streams(MaxResults=10000)["StreamInfoList"]:
        tags = kv.list_tags_for_stream(StreamARN=info["StreamARN"])["Tags"]
        if tags.get("callstream:call-id") == call_id:
            found.append((info, tags))
    return sorted(found, key=lambda item: item[0]["CreationTime"])


def wait_events(
    server: ServerThread, arns: set[str], kinds: set[str], timeout: float = 30
) -> list[dict[str, Any]]:
    """Bus events about ``arns``, once every kind in ``kinds`` was seen for each."""
    deadline = time.monotonic() + timeout
    while True:
        events = [e for e in bus(server) if e.get("StreamARN") in arns]
        seen = {(e["EventType"], e.get("StreamingStatus"), e["StreamARN"]) for e in events}
        if all(any(s[2] == arn and k in (s[0], s[1]) for s in seen) for arn in arns for k in kinds):
            return events
        assert time.monotonic() < deadline, (kinds, events)
        time.sleep(0.1)


def get_media(server: ServerThread, arn: str, start_fragment: str) -> StreamAudio:
    """The stream (one per call or leg) from its start with boto3 GetMedia; its first
    fragment must be the one the STARTED event announced."""
    media = kvs(server, "kinesis-video-media")
    payload = media.get_media(StreamARN=arn, StartSelector={"StartSelectorType": "EARLIEST"})
    audio = parse_payload(payload["Payload"].read())
    assert audio.numbers[0] == start_fragment
    return audio


def wait_call(server: ServerThread, call_id: str, legs: int = 1, timeout: float = 30) -> list[Any]:
    deadline = time.monotonic() + timeout
    while len(found := streams_of(server, call_id)) < legs:
        assert time.monotonic() < deadline, f"no stream for {call_id}"
        time.sleep(0.1)
    return found


def closed_by_peer(sock: socket.socket) -> bool:
    """The server closed the connection (an orderly close, or a reset when it closed with
    our bytes unread)."""
    try:
        return sock.recv(10) == b""
    except ConnectionResetError:
        return True


def via_ulaw(pcm: bytes) -> bytes:
    return np.asarray(ulaw_decode(ulaw_encode(pcm)), "<i2").tobytes()


# --- each protocol, Connect-shaped ------------------------------------------------------------

CASES = {
    # protocol: (stereo?, the PCM the protocol carries)
    "twilio": (True, via_ulaw),
    "audiohook": (True, via_ulaw),
    "websocket": (True, lambda pcm: pcm),
    "audiosocket": (False, lambda pcm: pcm),
}


@pytest.mark.parametrize("protocol", list(CASES))
def test_each_protocol_lands_sample_exact_on_the_right_track(
    server: ServerThread, protocol: str
) -> None:
    stereo, carried = CASES[protocol]
    caller, agent = tone(2.5, 300, 1), tone(2.5, 650, 2)
    channels = [caller, agent] if stereo else [caller]
    call_id = str(uuid.uuid4()) if protocol != "twilio" else "CA" + uuid.uuid4().hex
    meta = {"campaign": "spring", "agentId": "a-7"} if protocol != "audiosocket" else {}
    result = play(channels, options(server, protocol, call_id=call_id, metadata=meta))
    assert result.frames == (250 if stereo and protocol == "twilio" else 125)
    assert result.close_code in (None, 1000)

    [(info, tags)] = wait_call(server, call_id)
    arn = info["StreamARN"]
    events = wait_events(server, {arn}, {"MediaStreamingStarted", "MediaStreamingStopped"})
    started = next(e for e in events if e["EventType"] == "MediaStreamingStarted")
    stopped = next(e for e in events if e["EventType"] == "MediaStreamingStopped")
    assert tags["callstream:source"] == protocol
    assert tags["callstream:shape"] == "connect"
    assert tags["callstream:contact-id"] == started["ContactId"]
    for name, value in meta.items():
        assert any(k.startswith("callstream:meta") and v == value for k, v in tags.items()), name
    assert started["Tracks"] == ["AUDIO_FROM_CUSTOMER", "AUDIO_TO_CUSTOMER"]

    # GetMedia: the call's audio from the announced fragment on, caller on FROM_CUSTOMER
    audio = get_media(server, arn, started["StartFragmentNumber"])
    assert audio.numbers[0] == started["StartFragmentNumber"]
    assert audio.numbers[-1] == stopped["StopFragmentNumber"]
    assert audio.pcm["AUDIO_FROM_CUSTOMER"] == carried(caller)
    expect_agent = carried(agent) if stereo else bytes(len(caller))
    assert audio.pcm["AUDIO_TO_CUSTOMER"] == expect_agent
    assert audio.tags[0]["ContactId"] == started["ContactId"]
    assert audio.tags[0]["callstream:call-id"] == call_id


# --- Chime-shaped -----------------------------------------------------------------------------


def test_chime_shape_writes_a_leg_per_role_with_is_caller(chime_server: ServerThread) -> None:
    caller, agent = tone(1.5, 300, 3), tone(1.5, 650, 4)
    call_id = "CA" + uuid.uuid4().hex
    play([caller, agent], options(chime_server, "twilio", call_id=call_id))
    legs = wait_call(chime_server, call_id, legs=2)
    arns = {info["StreamARN"] for info, _ in legs}
    events = wait_events(chime_server, arns, {"STARTED", "ENDED"})
    status = [e for e in events if e["EventType"] == "VoiceConnectorStreamingStatus"]
    by_arn = {e["StreamARN"]: e for e in status if e["StreamingStatus"] == "STARTED"}
    assert {e["TransactionId"] for e in status} == {legs[0][1]["callstream:transaction-id"]}
    assert all(e["CallId"] == call_id for e in status)
    for info, tags in legs:
        started = by_arn[info["StreamARN"]]
        is_caller = tags["callstream:role"] == "caller"
        assert started["IsCaller"] is is_caller
        audio = get_media(chime_server, info["StreamARN"], started["StartFragmentNumber"])
        assert audio.pcm["AUDIO"] == via_ulaw(caller if is_caller else agent)
        assert audio.tags[0]["CallId"] == call_id


# --- refusals ---------------------------------------------------------------------------------


async def _upgrade(url: str, headers: dict[str, str] | None = None) -> int:
    async with aiohttp.ClientSession() as session:
        try:
            async with session.ws_connect(url, headers=headers or {}):
                return 101
        except aiohttp.WSServerHandshakeError as exc:
            return exc.status


def upgrade(url: str, headers: dict[str, str] | None = None) -> int:
    return asyncio.run(_upgrade(url, headers))


def test_wrong_or_missing_credentials_are_refused_before_the_upgrade(
    server: ServerThread, chime_server: ServerThread
) -> None:
    base = f"ws://127.0.0.1:{server.port}/ingest"
    assert upgrade(f"{base}/twilio") == 401
    assert upgrade(f"{base}/twilio", {"X-Twilio-Signature": "bm9wZQ=="}) == 401
    assert upgrade(f"{base}/audiohook", {"X-API-KEY": HOOK_KEY}) == 401
    assert upgrade(f"{base}/ws") == 401
    assert upgrade(f"{base}/ws", {"Authorization": "Bearer wrong"}) == 401
    assert upgrade(f"{base}/ws?token={TOKEN}") == 101
    with pytest.raises(ConnectionRefusedError, match="401"):
        play([tone(0.2)], options(server, "twilio", twilio_auth_token="wrong"))
    with pytest.raises(ConnectionRefusedError, match="401"):
        play([tone(0.2)], options(server, "audiohook", audiohook_secret="d3Jvbmc="))
    # a protocol whose credential is not configured refuses everyone
    other = f"ws://127.0.0.1:{chime_server.port}/ingest"
    assert upgrade(f"{other}/audiohook") == 403
    assert upgrade(f"{other}/ws?token={TOKEN}") == 403
    # the KVS API's SigV4 does not apply to the gateways, and still applies elsewhere
    assert upgrade(f"{base}/nowhere") == 404


def test_audiosocket_refuses_addresses_not_allowed(tmp_path: Path) -> None:
    srv = start_server(tmp_path, ingest_config(audiosocket_allow=frozenset({"192.0.2.1"})))
    try:
        port = srv.config.ingest.bound_audiosocket_port  # type: ignore[union-attr]
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(b"\x01\x00\x10" + uuid.uuid4().bytes)
            assert closed_by_peer(sock)  # closed at once
    finally:
        srv.stop()
    assert not [e for e in bus(srv) if e["EventType"] == "StreamCreated"]


# --- bad input --------------------------------------------------------------------------------


async def _send_raw(url: str, messages: list[str | bytes], headers: dict[str, str]) -> int | None:
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(url, headers=headers, max_msg_size=0) as ws:
            for message in messages:
                if isinstance(message, str):
                    await ws.send_str(message)
                else:
                    await ws.send_bytes(message)
            async with asyncio.timeout(10):
                async for _ in ws:
                    pass
            return ws.close_code


def test_bad_input_closes_cleanly_and_the_server_keeps_serving(
    server: ServerThread, caplog: pytest.LogCaptureFixture
) -> None:
    from callstream.ingest.signatures import twilio_signature

    url = f"ws://127.0.0.1:{server.port}/ingest/twilio"
    signed = {"X-Twilio-Signature": twilio_signature(TWILIO_TOKEN, url)}
    assert asyncio.run(_send_raw(url, ["{not json"], signed)) == 1007
    assert asyncio.run(_send_raw(url, [b"\x00\x01"], signed)) == 1003
    # larger than the Twilio limit (64 KiB): 1009 from the WebSocket layer
    assert asyncio.run(_send_raw(url, ["x" * 70_000], signed)) == 1009
    plain = f"ws://127.0.0.1:{server.port}/ingest/ws?token={TOKEN}"
    assert asyncio.run(_send_raw(plain, [b"\x00" * 320], {})) == 1002  # audio before start
    # AudioSocket: audio before the UUID, then a frame length past the limit
    port = server.config.ingest.bound_audiosocket_port  # type: ignore[union-attr]
    for garbage in (b"\x10\x01\x40" + bytes(320), b"\x01\x00\x10" + bytes(16) + b"\x10\xff\xff"):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(garbage)
            assert closed_by_peer(sock)
    # a call through each still works afterwards
    for protocol in ("twilio", "audiosocket"):
        result = play([tone(0.4)], options(server, protocol))
        assert result.close_code in (None, 1000)
        wait_call(server, result.call_id)
    assert not [r for r in caplog.records if r.exc_info], "no tracebacks"


def _end_reason(caplog: pytest.LogCaptureFixture, source: str, call_id: str) -> str:
    """The reason in the gateway's "call ... ended (reason)" line for ``call_id``."""
    prefix = f"ingest {source} call {call_id} from 127.0.0.1 ended ("
    deadline = time.monotonic() + 30
    while not (lines := [m for r in caplog.records if (m := r.getMessage()).startswith(prefix)]):
        assert time.monotonic() < deadline, f"no end line for {call_id}"
        time.sleep(0.05)
    assert len(lines) == 1, lines
    return lines[0].removeprefix(prefix).removesuffix(")")


def test_each_connection_ends_its_call_once_with_its_reason(
    server: ServerThread, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="callstream.ingest")
    plain = f"ws://127.0.0.1:{server.port}/ingest/ws?token={TOKEN}"
    ids = [f"reason-{uuid.uuid4().hex[:8]}" for _ in range(3)]
    starts = [start_message(i, roles=("caller",)) for i in ids]
    audio = bytes(320)
    assert asyncio.run(_send_raw(plain, [starts[0], audio, b"\x00"], {})) == 1007  # odd size
    assert asyncio.run(_send_raw(plain, [starts[1], audio, end_message(ids[1])], {})) == 1000

    async def idle_websocket() -> int | None:
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(plain) as ws:
                await ws.send_str(starts[2])
                await ws.send_bytes(audio)
                async with asyncio.timeout(30):
                    async for _ in ws:
                        pass
                return ws.close_code

    assert asyncio.run(idle_websocket()) == 1000
    assert _end_reason(caplog, "websocket", ids[0]) == "protocol-error"
    assert _end_reason(caplog, "websocket", ids[1]) == "end message"
    assert _end_reason(caplog, "websocket", ids[2]) == "idle"  # closed by the watchdog

    port = server.config.ingest.bound_audiosocket_port  # type: ignore[union-attr]
    calls = [uuid.uuid4() for _ in range(3)]
    streams = [
        uuid_frame(calls[0]) + audio_frame(audio) + uuid_frame(calls[0]),  # a second UUID
        uuid_frame(calls[1]) + audio_frame(audio) + hangup_frame(),
        uuid_frame(calls[2]) + audio_frame(audio),  # then nothing
    ]
    for stream in streams:
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            sock.sendall(stream)
            assert closed_by_peer(sock)
    assert _end_reason(caplog, "audiosocket", str(calls[0])) == "protocol-error"
    assert _end_reason(caplog, "audiosocket", str(calls[1])) == "hangup"
    assert _end_reason(caplog, "audiosocket", str(calls[2])) == "idle"


# --- the call bound, idle peers, pause --------------------------------------------------------


def test_over_max_calls_a_websocket_gets_503_and_audiosocket_is_closed(
    chime_server: ServerThread,
) -> None:
    """``chime_server`` takes one call at a time: while a Twilio call holds it (an idle
    peer, ended by the idle timeout), the second is refused."""
    from callstream.ingest.signatures import twilio_signature

    url = f"ws://127.0.0.1:{chime_server.port}/ingest/twilio"
    signed = {"X-Twilio-Signature": twilio_signature(TWILIO_TOKEN, url)}
    port = chime_server.config.ingest.bound_audiosocket_port  # type: ignore[union-attr]

    async def scenario() -> tuple[int, bytes, ReplayResult]:
        first = asyncio.create_task(
            replay([tone(0.2)], options(chime_server, "twilio", end="none", hold_s=30))
        )
        while not chime_server.state.store.uploads:  # the first call is in
            await asyncio.sleep(0.02)
        status = await _upgrade(url, signed)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"\x01\x00\x10" + uuid.uuid4().bytes)
        try:
            closed = await asyncio.wait_for(reader.read(10), 10)
        except ConnectionResetError:
            closed = b""
        writer.close()
        return status, closed, await first

    status, closed, first = asyncio.run(scenario())
    assert status == 503 and closed == b""
    # the idle peer's call was ended by the server (a normal close) and stored
    assert first.closed_by_server and first.close_code == 1000
    legs = wait_call(chime_server, first.call_id)
    wait_events(chime_server, {info["StreamARN"] for info, _ in legs}, {"ENDED"})


def test_an_idle_peer_ends_its_call(server: ServerThread) -> None:
    caller = tone(0.6, 300, 5)
    result = play([caller], options(server, "websocket", end="none", hold_s=30))
    assert result.closed_by_server and result.close_code == 1000
    [(info, _)] = wait_call(server, result.call_id)
    events = wait_events(server, {info["StreamARN"]}, {"MediaStreamingStopped"})
    started = next(e for e in events if e["EventType"] == "MediaStreamingStarted")
    audio = get_media(server, info["StreamARN"], started["StartFragmentNumber"])
    assert audio.pcm["AUDIO_FROM_CUSTOMER"] == caller


def test_audiohook_pause_is_recorded_as_silence(server: ServerThread) -> None:
    caller, agent = tone(1.0, 300, 6), tone(1.0, 650, 7)
    result = play([caller, agent], options(server, "audiohook", speed=1.0, pause=(0.4, 0.6)))
    [(info, _)] = wait_call(server, result.call_id)
    events = wait_events(server, {info["StreamARN"]}, {"MediaStreamingStopped"})
    started = next(e for e in events if e["EventType"] == "MediaStreamingStarted")
    audio = get_media(server, info["StreamARN"], started["StartFragmentNumber"])
    got = audio.pcm["AUDIO_FROM_CUSTOMER"]
    head, tail = via_ulaw(caller)[: 2 * 3200], via_ulaw(caller)[2 * 3200 :]
    assert got.startswith(head) and got.endswith(tail)
    silence = got[len(head) : len(got) - len(tail)]
    assert silence == bytes(len(silence))
    assert len(silence) // 2 >= 0.5 * 8000  # about the 0.6 s the pause lasted


def test_asterisk_audiosocket_as_res_audiosocket_sends(server: ServerThread) -> None:
    """A raw socket doing what ``res_audiosocket.c`` does: the UUID message, one 320-byte
    slin message every 20 ms, the hangup message, then the socket closes."""
    port = server.config.ingest.bound_audiosocket_port  # type: ignore[union-attr]
    call = uuid.uuid4()
    pcm = tone(1.0, 440, 8)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(struct.pack("!BH", 0x01, 16) + call.bytes)
        t0 = time.monotonic()
        for i, off in enumerate(range(0, len(pcm), 320)):
            delay = t0 + i * 0.02 - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            sock.sendall(struct.pack("!BH", 0x10, 320) + pcm[off : off + 320])
        sock.sendall(struct.pack("!BH", 0x00, 0))
        assert closed_by_peer(sock)  # the server closes after the hangup
    [(info, tags)] = wait_call(server, str(call))
    assert tags["callstream:source"] == "audiosocket"
    events = wait_events(server, {info["StreamARN"]}, {"MediaStreamingStopped"})
    started = next(e for e in events if e["EventType"] == "MediaStreamingStarted")
    audio = get_media(server, info["StreamARN"], started["StartFragmentNumber"])
    assert audio.pcm["AUDIO_FROM_CUSTOMER"] == pcm
    assert json.loads(json.dumps(started))["Tracks"][0] == "AUDIO_FROM_CUSTOMER"


def test_a_peer_that_drops_the_connection_ends_its_call_without_tracebacks(
    server: ServerThread, caplog: pytest.LogCaptureFixture
) -> None:
    """Twilio's socket cut mid-call (no ``stop``, no close frame): the audio that arrived
    is stored and the call ends as any other."""
    from callstream.ingest.signatures import twilio_signature
    from callstream.ingest.twilio import TwilioClient

    url = f"ws://127.0.0.1:{server.port}/ingest/twilio"
    call_id = "CA" + uuid.uuid4().hex
    pcm = tone(1.0, 300, 9)

    async def scenario() -> None:
        client = TwilioClient(call_id, tracks=("inbound",))
        headers = {"X-Twilio-Signature": twilio_signature(TWILIO_TOKEN, url)}
        async with aiohttp.ClientSession() as session:
            ws = await session.ws_connect(url, headers=headers)
            await ws.send_str(client.connected())
            await ws.send_str(client.start())
            for k, off in enumerate(range(0, len(pcm), 320)):
                await ws.send_str(client.media("inbound", pcm[off : off + 320], k * 20))
            transport = ws._response.connection.transport  # type: ignore[union-attr]
            transport.abort()  # a reset, not a close

    asyncio.run(scenario())
    [(info, _)] = wait_call(server, call_id)
    events = wait_events(server, {info["StreamARN"]}, {"MediaStreamingStopped"})
    started = next(e for e in events if e["EventType"] == "MediaStreamingStarted")
    audio = get_media(server, info["StreamARN"], started["StartFragmentNumber"])
    assert audio.pcm["AUDIO_FROM_CUSTOMER"] == via_ulaw(pcm)
    assert not [r for r in caplog.records if r.exc_info or r.levelname == "ERROR"]


def test_stopping_the_server_ends_open_calls_and_stores_them(tmp_path: Path) -> None:
    srv = start_server(tmp_path, ingest_config(idle_timeout_s=60))
    pcm = tone(0.6, 300, 10)
    holder: dict[str, ReplayResult] = {}

    async def call() -> None:
        holder["result"] = await replay([pcm], options(srv, "websocket", end="none", hold_s=30))

    import threading

    thread = threading.Thread(target=lambda: asyncio.run(call()))
    thread.start()
    deadline = time.monotonic() + 30
    while not [e for e in bus(srv) if e["EventType"] == "MediaStreamingStarted"]:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(0.3)  # the rest of the audio arrives
    srv.stop()
    thread.join(30)
    assert holder["result"].closed_by_server and holder["result"].close_code == 1001
    # the call's events are on the bus's journal; a server on the same data dir reads them
    again = start_server(tmp_path, ingest_config())
    try:
        kinds = [e["EventType"] for e in bus(again)]
        assert "MediaStreamingStopped" in kinds
        [(info, _)] = streams_of(again, holder["result"].call_id)
        started = next(e for e in bus(again) if e["EventType"] == "MediaStreamingStarted")
        audio = get_media(again, info["StreamARN"], started["StartFragmentNumber"])
        assert audio.pcm["AUDIO_FROM_CUSTOMER"] == pcm
    finally:
        again.stop()
