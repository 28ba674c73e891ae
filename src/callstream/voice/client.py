"""A SIPREC recording client (an SRC, as an SBC would be): places a recording session with
two audio legs and sends their RTP, to test a recording server without an SBC.

``callstream siprec-call`` uses it, and so do the tests and the load benchmark::

    result = await place_call(("127.0.0.1", 5060), [caller_pcm, agent_pcm])

Each leg's 8 kHz 16-bit PCM is encoded (µ-law by default), sent as 20 ms RTP packets in
real time (or as fast as asked), then the session is ended with a BYE. The INVITE is a
SIPREC one (``multipart/mixed``: SDP with one ``a=sendonly`` m-line per leg labelled 1 and
2, plus RFC 7865 ``application/rs-metadata+xml`` naming the caller and the callee), or a
Cisco NBR one (plain SDP, ``X-Voice-Connector-Record-Only: true``).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import uuid
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import cast

from callstream.media.g711 import alaw_encode, ulaw_encode
from callstream.voice.errors import SipError
from callstream.voice.rtp import build_rtp
from callstream.voice.sdp import parse_sdp
from callstream.voice.sip import Request, Response, parse_message, serialize
from callstream.voice.sipheaders import Headers, new_branch, new_call_id, new_tag

__all__ = ["CallResult", "SiprecCallError", "place_call", "siprec_body"]

BOUNDARY = "callstream-siprec-boundary"
PACKET_SAMPLES = 160  # 20 ms at 8 kHz


class SiprecCallError(RuntimeError):
    """The server refused or did not answer the call."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass(slots=True)
class CallResult:
    """What happened to a placed call."""

    call_id: str
    answer: Response
    ports: list[int]
    packets_sent: list[int] = field(default_factory=list)
    send_times: list[list[float]] = field(default_factory=list)
    """Per leg, per packet: ``time.time()`` when it was sent (the benchmark's clock)."""
    bye_status: int | None = None


def siprec_body(
    *,
    local_ip: str,
    ports: Sequence[int],
    codec: str,
    caller: str = "sip:+15551230001@caller.example",
    callee: str = "sip:+15559870002@agent.example",
    nbr: bool = False,
) -> tuple[str, bytes]:
    """(Content-Type, body) of a recording offer for ``len(ports)`` legs."""
    pt = 0 if codec == "PCMU" else 8
    lines = [
        "v=0",
        f"o=callstream-src {random.randrange(1, 1 << 30)} 1 IN IP4 {local_ip}",
        "s=-",
        f"c=IN IP4 {local_ip}",
        "t=0 0",
    ]
    for index, port in enumerate(ports, start=1):
        lines += [
            f"m=audio {port} RTP/AVP {pt} 101",
            f"a=rtpmap:{pt} {codec}/8000",
            "a=rtpmap:101 telephone-event/8000",
            "a=ptime:20",
            "a=sendonly",
            f"a=label:{index}",
        ]
    sdp = ("\r\n".join(lines) + "\r\n").encode()
    if nbr:
        return "application/sdp", sdp
    session = uuid.uuid4().hex
    parts = [uuid.uuid4().hex for _ in range(2)]
    streams = [uuid.uuid4().hex for _ in ports]
    aors = [caller, callee]
    xml = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<recording xmlns="urn:ietf:params:xml:ns:recording:1">',
        "<datamode>complete</datamode>",
        f'<session session_id="{session}"><sipSessionID>{session}</sipSessionID></session>',
    ]
    for pid, aor in zip(parts, aors, strict=True):
        xml.append(f'<participant participant_id="{pid}"><nameID aor="{aor}"/></participant>')
    for index, sid in enumerate(streams, start=1):
        xml.append(
            f'<stream stream_id="{sid}" session_id="{session}"><label>{index}</label></stream>'
        )
    for pid, sid in zip(parts, streams, strict=False):
        xml.append(
            f'<participantstreamassoc participant_id="{pid}"><send>{sid}</send></participantstreamassoc>'
        )
    xml.append("</recording>")
    body = (
        f"--{BOUNDARY}\r\nContent-Type: application/sdp\r\n\r\n".encode()
        + sdp
        + f"\r\n--{BOUNDARY}\r\nContent-Type: application/rs-metadata+xml\r\n"
        "Content-Disposition: recording-session\r\n\r\n".encode()
        + "\r\n".join(xml).encode()
        + f"\r\n--{BOUNDARY}--\r\n".encode()
    )
    return f"multipart/mixed;boundary={BOUNDARY}", body


class _SipSocket(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.queue: asyncio.Queue[Request | Response] = asyncio.Queue()
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: object) -> None:
        with contextlib.suppress(SipError):
            self.queue.put_nowait(parse_message(data))


def _encoder(codec: str) -> Callable[[bytes], bytes]:
    return ulaw_encode if codec == "PCMU" else alaw_encode


async def _transact(
    sock: _SipSocket, server: tuple[str, int], request: Request, *, timeout: float = 8.0
) -> Response:
    """Send ``request`` (retransmitting over UDP) until a final response comes."""
    assert sock.transport is not None
    data = serialize(request)
    interval = 0.5
    deadline = time.monotonic() + timeout
    sock.transport.sendto(data, server)
    next_send = time.monotonic() + interval
    provisional = False
    while True:
        now = time.monotonic()
        if now >= deadline:
            raise SiprecCallError(f"no final response to {request.method} within {timeout:g} s")
        wait = min(deadline, next_send) - now if not provisional else deadline - now
        try:
            message = await asyncio.wait_for(sock.queue.get(), max(0.01, wait))
        except TimeoutError:
            if not provisional:
                sock.transport.sendto(data, server)
                interval = min(interval * 2, 4.0)
                next_send = time.monotonic() + interval
            continue
        if not isinstance(message, Response) or message.call_id != request.call_id:
            continue
        if message.cseq[1].upper() != request.method.upper():
            continue
        if message.status < 200:
            provisional = True
            continue
        return message


async def place_call(
    server: tuple[str, int],
    legs: Sequence[bytes],
    *,
    request_uri: str | None = None,
    codec: str = "PCMU",
    local_ip: str = "127.0.0.1",
    realtime: bool = True,
    nbr: bool = False,
    extra_headers: Sequence[tuple[str, str]] = (),
    lose: Collection[int] = (),
) -> CallResult:
    """Place a recording session sending ``legs`` (16-bit LE PCM at 8 kHz, one per leg).

    ``lose`` are packet numbers (0 = each leg's first) not sent on any leg: network loss,
    as the recorder sees it (the sequence numbers and timestamps skip them)."""
    loop = asyncio.get_running_loop()
    transport, sock = await loop.create_datagram_endpoint(_SipSocket, local_addr=(local_ip, 0))
    rtp_sockets = []
    try:
        sip_port = transport.get_extra_info("sockname")[1]
        for _ in legs:
            rtp_t, _p = await loop.create_datagram_endpoint(
                asyncio.DatagramProtocol, local_addr=(local_ip, 0)
            )
            rtp_sockets.append(rtp_t)
        local_ports = [t.get_extra_info("sockname")[1] for t in rtp_sockets]
        content_type, body = siprec_body(local_ip=local_ip, ports=local_ports, codec=codec, nbr=nbr)
        uri = request_uri or f"sip:recorder@{server[0]}:{server[1]}"
        call_id = new_call_id()
        from_tag = new_tag()
        cseq = 1

        def request(
            method: str,
            number: int,
            to_tag: str | None,
            payload: bytes = b"",
            ctype: str | None = None,
        ) -> Request:
            h = Headers()
            h.add("Via", f"SIP/2.0/UDP {local_ip}:{sip_port};branch={new_branch()};rport")
            h.add("Max-Forwards", "70")
            h.add("From", f"<sip:src@{local_ip}:{sip_port}>;tag={from_tag}")
            h.add("To", f"<{uri}>" + (f";tag={to_tag}" if to_tag else ""))
            h.add("Call-ID", call_id)
            h.add("CSeq", f"{number} {method}")
            h.add("Contact", f"<sip:src@{local_ip}:{sip_port}>;+sip.src")
            if method == "INVITE":
                h.add("Supported", "timer")
                if not nbr:
                    h.add("Require", "siprec")
                else:
                    h.add("X-Voice-Connector-Record-Only", "true")
                for name, value in extra_headers:
                    h.add(name, value)
            if ctype:
                h.add("Content-Type", ctype)
            return Request(method, uri, h, payload)

        answer = await _transact(sock, server, request("INVITE", cseq, None, body, content_type))
        if answer.status != 200:
            raise SiprecCallError(f"INVITE refused: {answer.status} {answer.reason}", answer.status)
        to_tag = answer.to_tag
        assert sock.transport is not None
        ack = request("ACK", cseq, to_tag)
        sock.transport.sendto(serialize(ack), server)
        answer_sdp = parse_sdp(answer.body)
        ports = [m.port for m in answer_sdp.media]
        result = CallResult(call_id=call_id, answer=answer, ports=ports)
        await _send_media(result, answer_sdp, legs, rtp_sockets, codec, realtime, lose)
        cseq += 1
        bye = await _transact(sock, server, request("BYE", cseq, to_tag))
        result.bye_status = bye.status
        return result
    finally:
        for t in rtp_sockets:
            t.close()
        transport.close()


async def _send_media(
    result: CallResult,
    answer_sdp: object,
    legs: Sequence[bytes],
    sockets: Sequence[asyncio.DatagramTransport],
    codec: str,
    realtime: bool,
    lose: Collection[int] = (),
) -> None:
    from callstream.voice.sdp import SessionDescription

    assert isinstance(answer_sdp, SessionDescription)
    encode = _encoder(codec)
    pt = 0 if codec == "PCMU" else 8
    targets = []
    for m in answer_sdp.media:
        targets.append((answer_sdp.address_of(m) or "127.0.0.1", m.port))
    payloads = [encode(pcm) for pcm in legs]
    counts = [len(p) // PACKET_SAMPLES for p in payloads]
    result.packets_sent = [0] * len(legs)
    result.send_times = [[] for _ in legs]
    ssrcs = [random.randrange(1 << 32) for _ in legs]
    seq0 = [random.randrange(1 << 16) for _ in legs]
    ts0 = [random.randrange(1 << 32) for _ in legs]
    start = time.monotonic()
    for n in range(max(counts, default=0)):
        for i, sock in enumerate(sockets):
            if n >= counts[i] or targets[i][1] == 0 or n in lose:
                continue
            packet = build_rtp(
                payload_type=pt,
                sequence=(seq0[i] + n) & 0xFFFF,
                timestamp=(ts0[i] + n * PACKET_SAMPLES) & 0xFFFFFFFF,
                ssrc=ssrcs[i],
                payload=payloads[i][n * PACKET_SAMPLES : (n + 1) * PACKET_SAMPLES],
                marker=n == 0,
            )
            sock.sendto(packet, targets[i])
            result.packets_sent[i] += 1
            result.send_times[i].append(time.time())
        if realtime:
            delay = start + (n + 1) * PACKET_SAMPLES / 8000 - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        elif n % 50 == 49:
            await asyncio.sleep(0.001)
