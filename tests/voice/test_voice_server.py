"""The voice connector inside ``callstream serve``: real SIP over real sockets, RTP in, one
stream per leg out, read back through boto3; Chime's streaming events and SDRs."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import stat
import subprocess
import sys
import time
import urllib.parse
import wave
from collections.abc import Iterator
from pathlib import Path

import pytest
from botocore.credentials import Credentials
from voice_helpers import (
    ACCESS_KEY,
    SECRET_KEY,
    SENDER_STALL_S,
    VoiceLab,
    assert_leg_audio,
    leg_fragments,
    leg_pcm,
    sdr_lines,
    start_lab,
    tone,
)

from callstream.cli import signed_request
from callstream.media.g711 import ulaw_decode, ulaw_encode
from callstream.voice.client import CallResult, SiprecCallError, place_call
from callstream.voice.sdr import LegRecord, write_sdr
from polling import wait_for


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VoiceLab]:
    lab = start_lab(tmp_path_factory.mktemp("voice"))
    try:
        yield lab
    finally:
        lab.server.stop()


def g711_roundtrip(pcm: bytes) -> bytes:
    return ulaw_decode(ulaw_encode(pcm)).astype("<i2").tobytes()


def test_siprec_call_becomes_two_leg_streams_with_events_and_sdr(lab: VoiceLab) -> None:
    caller, agent = tone(2.0, 440, seed=1), tone(2.0, 660, seed=2)
    uri = f"sip:rec@{lab.connector_id}.voiceconnector.example.com"
    result = asyncio.run(place_call(lab.sip, [caller, agent], request_uri=uri))
    assert result.bye_status == 200
    assert result.packets_sent == [100, 100]

    ours = lab.wait_events("ENDED", 2, call_id=result.call_id)
    started = [
        e
        for e in lab.events()
        if e["StreamingStatus"] == "STARTED" and e["CallId"] == result.call_id
    ]
    assert len(started) == 2
    assert len(ours) == 2
    assert {e["IsCaller"] for e in ours} == {True, False}
    for event in ours:
        assert event["VoiceConnectorId"] == lab.connector_id
        assert event["MediaType"] == "audio/L16"
        assert (
            event["StreamARN"].split("/")[1].startswith(f"ChimeVoiceConnector-{lab.connector_id}-")
        )
        assert event["EndTime"] >= event["StartTime"]
        assert event["InviteHeaders"]["call-id"] == result.call_id
        leg = 0 if event["IsCaller"] else 1
        expected = caller if event["IsCaller"] else agent
        data = lab.get_media(event["StreamARN"])
        fragments = leg_fragments(data)
        assert fragments[0].fragment_number == event["StartFragmentNumber"]
        for fragment in fragments:
            assert fragment.tags["TransactionId"] == event["TransactionId"]
            assert fragment.tags["VoiceConnectorId"] == lab.connector_id
            assert fragment.tags["CallId"] == result.call_id
        # loss-free loopback: the stream is the G.711-decoded RTP, sample for sample
        assert_leg_audio(leg_pcm(data), g711_roundtrip(expected), result.send_times[leg])
        info = lab.kv.describe_stream(StreamARN=event["StreamARN"])["StreamInfo"]
        assert info["DataRetentionInHours"] == 24

    records = [r for r in sdr_lines(lab.data_dir) if r["CallId"] == result.call_id]
    assert len(records) == 2
    assert {r["StreamArn"] for r in records} == {e["StreamARN"] for e in ours}
    assert all(r["Status"] == "Completed" and r["SchemaVersion"] == "1.0" for r in records)


def test_lost_packets_become_silence_of_their_length_and_are_logged(
    lab: VoiceLab, caplog: pytest.LogCaptureFixture
) -> None:
    """RTP lost on the way (sequence numbers and timestamps skip them) becomes silence of
    exactly their length in the leg stream, and the call's end log counts them."""
    caller, agent = tone(1.2, 520, seed=11), tone(1.2, 610, seed=12)
    lose = {10, 11, 40}
    caplog.set_level(logging.INFO, logger="callstream.voice")
    result = asyncio.run(place_call(lab.sip, [caller, agent], lose=lose))
    assert result.packets_sent == [57, 57]
    ended = lab.wait_events("ENDED", 2, call_id=result.call_id)
    wait_for(lambda: any(result.call_id in r.getMessage() for r in caplog.records))
    line = next(r.getMessage() for r in caplog.records if result.call_id in r.getMessage())
    sent = [n for n in range(60) if n not in lose]
    lateness = max(
        t - result.send_times[0][0] - n * 0.02
        for n, t in zip(sent, result.send_times[0], strict=True)
    )
    on_time = lateness <= SENDER_STALL_S  # else the jitter buffer resynced (assert_leg_audio)
    if on_time:
        assert line.count("(3 lost)") == 2, line
    for event in ended:
        sent_pcm = g711_roundtrip(caller if event["IsCaller"] else agent)
        pcm = leg_pcm(lab.get_media(event["StreamARN"]))
        if on_time:
            expected = bytearray(sent_pcm)
            for n in lose:
                expected[n * 320 : (n + 1) * 320] = bytes(320)
            assert pcm == bytes(expected)
        else:  # every packet that was sent, in order, with only silence in between
            kept = b"".join(sent_pcm[n * 320 : (n + 1) * 320] for n in sent)
            assert_leg_audio(pcm, kept, result.send_times[0])


def test_an_overloaded_server_refuses_new_calls_then_takes_them_again(tmp_path: Path) -> None:
    """With overload control on: while the server's event loop runs late (here: blocked
    again and again, as a saturated CPU would), new INVITEs get 503 with Retry-After; once
    it keeps up, calls are taken again."""
    import threading

    lab = start_lab(tmp_path, overload_late_ms=100)
    voice = lab.server.state.voice
    assert voice is not None

    async def stall() -> None:
        time.sleep(0.25)  # the loop does nothing else meanwhile

    stop = threading.Event()

    def keep_stalling() -> None:
        while not stop.is_set():
            lab.server.run(stall())
            stop.wait(0.02)

    stalling = threading.Thread(target=keep_stalling, daemon=True)
    try:
        stalling.start()
        wait_for(lambda: voice.uas.shedding(time.monotonic()), 30, "never found overloaded")
        with pytest.raises(SiprecCallError) as refused:
            asyncio.run(place_call(lab.sip, [tone(0.2, 400)], realtime=False))
        assert refused.value.status == 503
        stop.set()
        stalling.join(10)
        wait_for(lambda: not voice.uas.shedding(time.monotonic()), 30, "still refusing calls")
        result = asyncio.run(place_call(lab.sip, [tone(0.3, 400)]))
        assert result.bye_status == 200
        assert len(lab.wait_events("ENDED", 1, call_id=result.call_id)) == 1
    finally:
        stop.set()
        lab.server.stop()


def test_unknown_host_goes_to_the_only_connector_and_nbr_is_recorded(lab: VoiceLab) -> None:
    leg = tone(0.4, 300, seed=3)
    result = asyncio.run(place_call(lab.sip, [leg, leg], nbr=True))
    assert result.bye_status == 200
    ended = lab.wait_events("ENDED", 2, call_id=result.call_id)
    assert len(ended) == 2


def test_streaming_disabled_refuses_the_invite(tmp_path: Path) -> None:
    lab = start_lab(tmp_path, retention=-1)  # no streaming configuration
    try:
        with pytest.raises(SiprecCallError) as refused:
            asyncio.run(place_call(lab.sip, [tone(0.2, 400)]))
        assert refused.value.status == 403
        lab.chime.put_voice_connector_streaming_configuration(
            VoiceConnectorId=lab.connector_id,
            StreamingConfiguration={"DataRetentionInHours": 6, "Disabled": False},
        )
        result = asyncio.run(place_call(lab.sip, [tone(0.3, 400)], realtime=False))
        ended = lab.wait_events("ENDED", 1, call_id=result.call_id)
        info = lab.kv.describe_stream(StreamARN=ended[0]["StreamARN"])["StreamInfo"]
        assert info["DataRetentionInHours"] == 6
        assert result.bye_status == 200
        lab.chime.put_voice_connector_streaming_configuration(
            VoiceConnectorId=lab.connector_id,
            StreamingConfiguration={"DataRetentionInHours": 6, "Disabled": True},
        )
        with pytest.raises(SiprecCallError) as refused:
            asyncio.run(place_call(lab.sip, [tone(0.2, 400)]))
        assert refused.value.status == 403
    finally:
        lab.server.stop()


def _exchange(lab: VoiceLab, data: bytes) -> bytes:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(5)
    try:
        sock.sendto(data, lab.sip)
        return sock.recv(65535)
    finally:
        sock.close()


def _request(method: str, *, extra: str = "", n: int = 1) -> bytes:
    return (
        f"{method} sip:rec@127.0.0.1 SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 127.0.0.1:5999;rport;branch=z9hG4bK-" + f"{method.lower()}-{n}\r\n"
        "From: <sip:probe@127.0.0.1>;tag=p1\r\n"
        "To: <sip:rec@127.0.0.1>\r\n"
        f"Call-ID: probe-{method}@127.0.0.1\r\n"
        f"CSeq: 1 {method}\r\n"
        "Max-Forwards: 70\r\n" + extra + "Content-Length: 0\r\n\r\n"
    ).encode()


def test_options_unknown_methods_and_garbage(lab: VoiceLab) -> None:
    assert _exchange(lab, _request("OPTIONS")).startswith(b"SIP/2.0 200")
    assert _exchange(lab, _request("FROBNICATE")).startswith(b"SIP/2.0 501")
    assert _exchange(lab, _request("BYE")).startswith(b"SIP/2.0 481")
    # garbage is dropped without an answer, and the server keeps answering
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        for i in range(200):
            sock.sendto(bytes([i % 256]) * (i + 1), lab.sip)
    finally:
        sock.close()
    assert _exchange(lab, _request("OPTIONS", n=2)).startswith(b"SIP/2.0 200")


def test_malformed_invite_gets_its_4xx(lab: VoiceLab) -> None:
    bad = _request("INVITE", extra="Content-Length: 99999999\r\n", n=7).replace(
        b"Content-Length: 0\r\n", b""
    )
    reply = _exchange(lab, bad)
    assert reply.startswith(b"SIP/2.0 413 ")
    assert b"Call-ID: probe-INVITE@127.0.0.1" in reply


def test_a_leg_read_the_parser_library_way_and_with_get_audio(
    lab: VoiceLab, tmp_path: Path
) -> None:
    """GetMedia after the STARTED event's fragment number (the KVS selector is exclusive,
    as the Chime and Connect samples use it), stopping where the TransactionId changes;
    then the whole leg with ``callstream get-audio --stream``."""
    caller = tone(3.0, 500, seed=4)
    result = asyncio.run(place_call(lab.sip, [caller, tone(3.0, 700, seed=5)]))
    started = lab.wait_events("STARTED", 2, call_id=result.call_id)
    leg = next(e for e in started if e["IsCaller"])
    lab.wait_events("ENDED", 2, call_id=result.call_id)
    whole = leg_fragments(lab.get_media(leg["StreamARN"]))
    assert whole[0].fragment_number == leg["StartFragmentNumber"]
    resp = lab.media.get_media(
        StreamARN=leg["StreamARN"],
        StartSelector={
            "StartSelectorType": "FRAGMENT_NUMBER",
            "AfterFragmentNumber": leg["StartFragmentNumber"],
        },
    )
    after = leg_fragments(resp["Payload"].read())
    assert [f.fragment_number for f in after] == [f.fragment_number for f in whole[1:]]
    assert all(f.tags.get("TransactionId") == leg["TransactionId"] for f in after)
    pcm = b"".join(bytes(fr.data) for f in whole for fr in f.frames)
    assert_leg_audio(pcm, g711_roundtrip(caller), result.send_times[0])

    out = tmp_path / "leg.wav"
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    done = subprocess.run(
        [sys.executable, "-m", "callstream.cli", "get-audio", "--stream", leg["StreamARN"],
         "--endpoint-url", lab.server.url, "--start", "earliest", "--out", str(out)],
        capture_output=True, text=True, timeout=120, env=env, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    with wave.open(str(out)) as w:
        assert (w.getframerate(), w.getnchannels()) == (8000, 1)
        assert w.readframes(w.getnframes()) == pcm


def test_events_in_eventbridge_form(lab: VoiceLab) -> None:
    result = asyncio.run(place_call(lab.sip, [tone(0.3, 350)], realtime=False))
    lab.wait_events("ENDED", 1, call_id=result.call_id)
    query = urllib.parse.urlencode(
        {"detail-type": "Chime VoiceConnector Streaming Status", "format": "eventbridge"},
        quote_via=urllib.parse.quote,
    )
    status, body = signed_request(
        "GET",
        f"{lab.server.url}/callstream/events?{query}",
        region="us-east-1",
        credentials=Credentials(ACCESS_KEY, SECRET_KEY),
    )
    assert status == 200
    events = [e for e in json.loads(body)["Events"] if e["detail"]["callId"] == result.call_id]
    assert [e["detail"]["streamingStatus"] for e in events] == ["STARTED", "ENDED"]
    started = events[0]
    assert started["source"] == "aws.chime"
    assert started["detail-type"] == "Chime VoiceConnector Streaming Status"
    detail = started["detail"]
    for key in (
        "streamArn",
        "startFragmentNumber",
        "startTime",
        "isCaller",
        "transactionId",
        "voiceConnectorId",
        "mediaType",
        "inviteHeaders",
        "sdp",
        "version",
    ):
        assert key in detail, key  # fmt: skip


def test_a_flood_of_garbage_and_invites_does_not_disturb_a_call(lab: VoiceLab) -> None:
    caller, agent = tone(2.0, 450, seed=7), tone(2.0, 550, seed=8)

    async def flood() -> None:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0)
        )
        try:
            for i in range(100):
                for j in range(20):
                    transport.sendto(bytes([(i + j) % 256]) * (50 + j), lab.sip)
                transport.sendto(_request("INVITE", n=1000 + i), lab.sip)  # no body: 488
                await asyncio.sleep(0.01)
        finally:
            transport.close()

    async def both() -> object:
        call = asyncio.create_task(place_call(lab.sip, [caller, agent]))
        await flood()
        return await call

    result = asyncio.run(both())
    ended = lab.wait_events("ENDED", 2, call_id=result.call_id)  # type: ignore[attr-defined]
    for event in ended:
        expected = caller if event["IsCaller"] else agent
        sent = result.send_times[0 if event["IsCaller"] else 1]  # type: ignore[attr-defined]
        assert_leg_audio(leg_pcm(lab.get_media(event["StreamARN"])), g711_roundtrip(expected), sent)


def test_standalone_voice_connector_writes_legs_over_putmedia(
    lab: VoiceLab, tmp_path: Path
) -> None:
    """``callstream voice-connector --kvs-endpoint``: the same recording server, its legs
    going to another node with PutMedia (HttpCallStore), its events to that node's API."""
    from botocore.credentials import Credentials as Creds

    from callstream.flows.store import HttpCallStore
    from callstream.voice.connectors import StreamingConfiguration, open_registry
    from callstream.voice.server import VoiceConfig, VoiceServer

    registry = open_registry(tmp_path, region="us-east-1", account_id="123456789012")
    vc = registry.create("edge", require_encryption=False)
    registry.put_streaming(
        vc.voice_connector_id, StreamingConfiguration(data_retention_in_hours=2, disabled=False)
    )
    caller = tone(1.5, 480, seed=9)

    async def main() -> CallResult:
        store = HttpCallStore(lab.server.url, credentials=Creds(ACCESS_KEY, SECRET_KEY))
        await store.prepare()
        server = VoiceServer(
            store,
            registry,
            VoiceConfig(sip_port=0, rtp_ports=(40000, 40999), sdr_dir=tmp_path),
        )
        await server.start()
        try:
            result = await place_call(("127.0.0.1", server.sip_port), [caller, bytes(len(caller))])
        finally:
            await server.stop()
            await store.close()
        return result

    try:
        result = asyncio.run(main())
    finally:
        registry.close()
    ended = lab.wait_events("ENDED", 2, call_id=result.call_id)
    leg = next(e for e in ended if e["IsCaller"])
    assert leg["VoiceConnectorId"] == vc.voice_connector_id
    info = lab.kv.describe_stream(StreamARN=leg["StreamARN"])["StreamInfo"]
    assert info["DataRetentionInHours"] == 2
    pcm = leg_pcm(lab.get_media(leg["StreamARN"]))
    assert_leg_audio(pcm, g711_roundtrip(caller), result.send_times[0])
    assert len(list(sdr_lines(tmp_path))) == 2


def test_rtp_timeout_ends_the_call_with_a_bye(tmp_path: Path) -> None:
    from callstream.voice.client import siprec_body
    from callstream.voice.sip import Request, parse_message, serialize
    from callstream.voice.sipheaders import Headers

    lab = start_lab(tmp_path, rtp_timeout_s=1.0)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(10)
    try:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        ctype, body = siprec_body(local_ip="127.0.0.1", ports=[7100, 7102], codec="PCMU")
        h = Headers()
        h.add("Via", f"SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-rtpto;rport")
        h.add("From", "<sip:src@127.0.0.1>;tag=a1")
        h.add("To", "<sip:rec@127.0.0.1>")
        h.add("Call-ID", "rtp-timeout@test")
        h.add("CSeq", "1 INVITE")
        h.add("Contact", f"<sip:src@127.0.0.1:{port}>")
        h.add("Max-Forwards", "70")
        h.add("Content-Type", ctype)
        sock.sendto(serialize(Request("INVITE", "sip:rec@127.0.0.1", h, body)), lab.sip)
        while True:
            answer = parse_message(sock.recv(65535))
            if getattr(answer, "status", 0) >= 200:
                break
        assert answer.status == 200  # type: ignore[union-attr]
        ack = Headers(list(h))
        ack.set("To", f"<sip:rec@127.0.0.1>;tag={answer.to_tag}")
        ack.set("CSeq", "1 ACK")
        ack.set("Via", f"SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-ack;rport")
        ack.remove("Content-Type")
        sock.sendto(serialize(Request("ACK", "sip:rec@127.0.0.1", ack, b"")), lab.sip)
        # no RTP at all: after --rtp-timeout the server hangs up
        while True:
            message = parse_message(sock.recv(65535))
            if isinstance(message, Request) and message.method == "BYE":
                break
        assert message.call_id == "rtp-timeout@test"
        assert "RTP timeout" in (message.headers.get("Reason") or "")
    finally:
        sock.close()
        lab.server.stop()


def test_cli_voice_connectors_and_calls(lab: VoiceLab, tmp_path: Path) -> None:
    result = asyncio.run(place_call(lab.sip, [tone(0.3, 320)], realtime=False))
    lab.wait_events("ENDED", 1, call_id=result.call_id)
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_DEFAULT_REGION": "us-east-1",
    }

    def cli(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "callstream.cli", *args],
            capture_output=True, text=True, timeout=120, env=env, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        return done.stdout

    rows = [json.loads(line) for line in cli("voice-legs", "--endpoint-url", lab.server.url, "--json")
            .splitlines()]  # fmt: skip
    leg = next(r for r in rows if r.get("CallId") == result.call_id)
    assert leg["Status"] == "ENDED" and leg["StreamARN"].startswith("arn:aws:kinesisvideo:")
    listed = [json.loads(line) for line in cli("voice-connectors", "--data-dir", str(lab.data_dir))
              .splitlines()]  # fmt: skip
    assert [c["VoiceConnectorId"] for c in listed] == [lab.connector_id]
    swapped = json.loads(
        cli("voice-connectors", "swap-roles", lab.connector_id, "on", "--data-dir",
            str(lab.data_dir))
    )  # fmt: skip
    assert swapped["SwapRoles"] is True
    try:
        second = asyncio.run(place_call(lab.sip, [tone(0.3, 320), tone(0.3, 640)]))
        ended = lab.wait_events("ENDED", 2, call_id=second.call_id)
        first_leg = next(e for e in ended if e["Sdp"]["mediaIndex"] == 0)
        assert first_leg["IsCaller"] is False  # roles swapped for this connector
    finally:
        cli("voice-connectors", "swap-roles", lab.connector_id, "off", "--data-dir",
            str(lab.data_dir))  # fmt: skip


def test_sip_over_tcp(lab: VoiceLab) -> None:
    """The same port speaks SIP over TCP: OPTIONS answered on the connection, CRLF
    keep-alive ponged, a malformed message answered and the connection closed."""
    with socket.create_connection(lab.sip, timeout=10) as conn:
        conn.sendall(_request("OPTIONS", n=30))
        data = b""
        while b"\r\n\r\n" not in data:
            data += conn.recv(65535)
        assert data.startswith(b"SIP/2.0 200")
        conn.sendall(b"\r\n\r\n")
        assert conn.recv(16).startswith(b"\r\n")
        bad = _request("OPTIONS", n=31).replace(b"Content-Length: 0\r\n", b"")
        conn.sendall(bad)  # no Content-Length: not allowed on a stream
        reply = b""
        while chunk := conn.recv(65535):
            reply += chunk
        assert reply.startswith(b"SIP/2.0 400")


def test_a_call_whose_streams_cannot_be_made_is_refused_with_failed(tmp_path: Path) -> None:
    lab = start_lab(tmp_path, max_streams=1)  # room for one leg of a two-leg call
    try:
        with pytest.raises(SiprecCallError) as refused:
            asyncio.run(place_call(lab.sip, [tone(0.2, 400), tone(0.2, 500)]))
        assert refused.value.status == 500
        failed = lab.wait_events("FAILED", 1)
        assert failed[0]["FailureReason"].startswith("Internal failure")
        assert failed[0]["VoiceConnectorId"] == lab.connector_id
    finally:
        lab.server.stop()


def test_an_sdr_is_written_whole_with_the_mode_open_gives(tmp_path: Path) -> None:
    start = 1_700_000_000_000
    legs = [
        LegRecord(
            "arn:aws:kinesisvideo:us-east-1:1:stream/a/1", True, start, start + 3500, True, ""
        ),
        LegRecord(
            "arn:aws:kinesisvideo:us-east-1:1:stream/b/1", False, start, start + 900, False, "x"
        ),
    ]

    def write(n: int) -> Path:
        return write_sdr(
            tmp_path,
            voice_connector_id="vc1",
            transaction_id="t1",
            call_id="c1",
            call_start_ms=start,
            legs=legs[:n],
            account_id="123456789012",
            region="us-east-1",
        )

    old_umask = os.umask(0o022)
    try:
        path = write(2)
        assert [r["IsCaller"] for r in sdr_lines(tmp_path)] == [True, False]
        assert write(1) == path
    finally:
        os.umask(old_umask)
    assert [r["StreamArn"] for r in sdr_lines(tmp_path)] == [legs[0].stream_arn]
    assert path.read_text().count("\n") == 1
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert os.listdir(path.parent) == [path.name]
