"""The load generator of ``bench_voice.py``: SIPREC calls, one central RTP pacer, live
GetMedia readers that check every sample (asyncio; the caller picks the loop).

* :class:`SipUa` places SIPREC calls over one UDP socket (INVITE with the multipart
  SDP + rs-metadata body of :func:`callstream.voice.client.siprec_body`, ACK, BYE;
  retransmits as RFC 3261 timer A does, answers the server's own requests with 200).
* :class:`Pacer` sends every leg's RTP from one socket: each leg gets one 20 ms PCMU
  packet per period, legs spread over :data:`SLOTS` phases of the period, on an absolute
  schedule (a late pacer catches up instead of stretching time). Leg ``i``'s packet ``k``
  carries audio-pool packet ``(i * POOL_STEP + k) % POOL``: random µ-law bytes, distinct
  per leg and per packet, none decoding to silence, so a stored 20 ms unit is either that
  packet's decoded PCM or a sign of loss. Each send's ``time.monotonic_ns()`` is kept.
* :func:`poll_events` pages through ``GET /callstream/events`` (SigV4-signed) for the
  legs' ``VoiceConnectorStreamingStatus`` events; a STARTED event starts the leg's live
  reader (:func:`read_leg`: GetMedia ``EARLIEST`` on the event's ``StreamARN``: each leg
  has its own stream), ENDED marks the leg stored.
* A reader scans the GetMedia bytes for SimpleBlocks (:class:`BlockScanner`, no full MKV
  parse) and feeds their PCM to :meth:`Leg.take`, which finds each packet's decoded
  payload in turn (see there) and records its latency when it was sent inside the
  measured window.
* :class:`BaselineReader` is the reader of the plain-UDP baseline (``voice_baseline.py``
  forwards each datagram with its leg index): the same checks on the raw payloads.
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import json
import random
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

import aiohttp
import numpy as np
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from callstream.voice.client import siprec_body
from callstream.voice.codecs import decode_pcmu
from callstream.voice.errors import SipError
from callstream.voice.sdp import parse_sdp
from callstream.voice.sip import Request, Response, parse_message, response_to, serialize
from callstream.voice.sipheaders import Headers, new_branch, new_call_id, new_tag

PT_PCMU = 0
PACKET_SAMPLES = 160
UNIT = 2 * PACKET_SAMPLES  # bytes of 16-bit PCM per 20 ms packet
PERIOD_NS = 20_000_000
SLOTS = 5
POOL = 4099
POOL_STEP = 5
LOOKAHEAD = 64
"""How far past a missing packet the reader looks for the next stored one."""
MAX_UNMATCHED = 16000 * 2
ZERO_UNIT = bytes(UNIT)
HOST = "127.0.0.1"


def _pool() -> tuple[list[bytes], list[bytes]]:
    rng = np.random.default_rng(20240607)
    raw = rng.integers(0, 256, size=(POOL, PACKET_SAMPLES), dtype=np.uint8)
    ulaw = [bytes(row) for row in raw]
    return ulaw, [decode_pcmu(p) for p in ulaw]


POOL_ULAW, POOL_PCM = _pool()


@dataclass
class Window:
    """The measured window (monotonic ns); latencies of packets sent inside it count."""

    start_ns: int = 1 << 62
    end_ns: int = 1 << 62
    latency_ns: array.array = field(default_factory=lambda: array.array("q"))


@dataclass(eq=False)
class Leg:
    """One leg: what was sent, and what its reader received."""

    index: int
    call: int
    media_index: int
    target: tuple[str, int] | None = None
    ssrc: int = 0
    seq0: int = 0
    ts0: int = 0
    send_ns: array.array = field(default_factory=lambda: array.array("q"))
    stream_arn: str | None = None
    reader: asyncio.Task[None] | None = None
    reader_error: str | None = None
    ended: bool = False
    pending: bytearray = field(default_factory=bytearray)
    received: int = 0
    """Bytes of PCM (the reader's, or 320 per datagram forwarded by the baseline)."""
    next: int = 0
    """The next packet expected in the stored stream."""
    matched: int = 0
    lost: int = 0
    gaps: int = 0
    """Places after the first packet where the stream has extra samples (resyncs)."""
    extra_bytes: int = 0

    def __post_init__(self) -> None:
        rnd = random.Random(self.index)
        self.ssrc = rnd.randrange(1 << 32)
        self.seq0 = rnd.randrange(1 << 16)
        self.ts0 = rnd.randrange(1 << 32)

    @property
    def sent(self) -> int:
        return len(self.send_ns)

    def pool_index(self, k: int) -> int:
        return (self.index * POOL_STEP + k) % POOL

    def packet(self, k: int) -> bytes:
        """RTP packet ``k`` of this leg."""
        header = struct.pack(
            "!BBHII",
            0x80,
            PT_PCMU | (0x80 if k == 0 else 0),
            (self.seq0 + k) & 0xFFFF,
            (self.ts0 + k * PACKET_SAMPLES) & 0xFFFFFFFF,
            self.ssrc,
        )
        return header + POOL_ULAW[self.pool_index(k)]

    def take(self, pcm: bytes, now_ns: int, window: Window) -> None:
        """Stored PCM of this leg, as its reader received it at ``now_ns``.

        Walks the stream packet by packet: the next unit should be packet ``next``'s
        decoded payload; otherwise the bytes before the next packet found (silence, a
        resync's shift, a trimmed packet) count as extra, and packets skipped over as
        lost. A packet is delivered when its whole unit has arrived."""
        self.received += len(pcm)
        buf = self.pending
        buf += pcm
        pos = 0
        send_ns = self.send_ns
        while len(buf) - pos >= UNIT:
            e = self.next
            if e >= len(send_ns):  # after the last packet: the call's end, padded
                break
            want = POOL_PCM[self.pool_index(e)]
            if buf[pos : pos + UNIT] == want:
                found, at = e, pos
            else:
                found, at = -1, -1
                for j in range(e, min(e + LOOKAHEAD, len(send_ns))):
                    o = buf.find(POOL_PCM[self.pool_index(j)], pos)
                    if o >= 0 and (at < 0 or o < at):
                        found, at = j, o
                if found < 0:
                    if len(buf) - pos > MAX_UNMATCHED:  # nothing of ours in 2 s of audio
                        self.extra_bytes += len(buf) - pos - UNIT
                        pos = len(buf) - UNIT
                    break
                if self.matched and at > pos:
                    self.gaps += 1
                self.extra_bytes += at - pos
                self.lost += found - e
            pos = at + UNIT
            self.next = found + 1
            self.matched += 1
            t = send_ns[found]
            if window.start_ns <= t < window.end_ns:
                window.latency_ns.append(now_ns - t)
        if pos:
            del buf[:pos]

    def finish(self) -> None:
        """The stream ended: what is left over is extra; packets never seen are lost."""
        self.extra_bytes += len(self.pending)
        self.pending.clear()
        self.lost += max(0, self.sent - self.next)
        self.next = max(self.next, self.sent)

    @property
    def samples(self) -> int:
        return self.received >> 1

    @property
    def extra_samples(self) -> int:
        """Samples stored that carry no packet's audio (silence before, between, after)."""
        if self.samples == 0:
            return 0
        return self.samples - self.matched * PACKET_SAMPLES

    def delivered(self) -> int:
        """Packets the reader is past (stored or skipped as lost)."""
        return self.next


# --- RTP out ------------------------------------------------------------------------------------


class Pacer:
    """Sends one packet per leg per 20 ms from one socket (see the module docstring)."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((HOST, 0))
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 22)
        self.sock.setblocking(False)
        self.port = int(self.sock.getsockname()[1])
        self.slots: list[list[Leg]] = [[] for _ in range(SLOTS)]
        self.send_errors = 0
        self.max_late_ns = 0
        self.late_ticks = 0
        self._stop = False

    def add(self, leg: Leg) -> None:
        self.slots[leg.index % SLOTS].append(leg)

    def remove(self, leg: Leg) -> None:
        with contextlib.suppress(ValueError):
            self.slots[leg.index % SLOTS].remove(leg)

    def stop(self) -> None:
        self._stop = True

    async def run(self) -> None:
        step = PERIOD_NS // SLOTS
        t0 = time.monotonic_ns()
        tick = 0
        sendto = self.sock.sendto
        clock = time.monotonic_ns
        while not self._stop:
            due = t0 + tick * step
            now = clock()
            if due > now:
                await asyncio.sleep((due - now) / 1e9)
            else:
                late = now - due
                if late > step:
                    self.late_ticks += 1
                self.max_late_ns = max(self.max_late_ns, late)
                if tick % SLOTS == 0:
                    await asyncio.sleep(0)  # let readers run even when late
            for leg in self.slots[tick % SLOTS]:
                if leg.target is None:
                    continue
                try:
                    sendto(leg.packet(leg.sent), leg.target)
                except (BlockingIOError, InterruptedError):
                    self.send_errors += 1
                    continue
                leg.send_ns.append(clock())
            tick += 1

    def close(self) -> None:
        self.sock.close()


# --- SIP ----------------------------------------------------------------------------------------


class SipUa(asyncio.DatagramProtocol):
    """The SRC's SIP over one UDP socket, for every call."""

    def __init__(self, server: tuple[str, int]) -> None:
        self.server = server
        self.transport: asyncio.DatagramTransport | None = None
        self.waiting: dict[tuple[str, str], asyncio.Future[Response]] = {}
        self.provisional: set[tuple[str, str]] = set()
        self.server_byes: set[str] = set()

    @property
    def port(self) -> int:
        assert self.transport is not None
        return int(self.transport.get_extra_info("sockname")[1])

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        try:
            msg = parse_message(data)
        except SipError:
            return
        if isinstance(msg, Response):
            key = (msg.call_id, msg.cseq[1].upper())
            if msg.status < 200:
                self.provisional.add(key)
                return
            fut = self.waiting.get(key)
            if fut is not None and not fut.done():
                fut.set_result(msg)
            return
        if msg.method != "ACK" and self.transport is not None:
            self.transport.sendto(serialize(response_to(msg, 200)), addr)
        if msg.method == "BYE":
            self.server_byes.add(msg.call_id)

    async def transact(self, request: Request, timeout: float = 16.0) -> Response:
        """Send ``request`` (timer A retransmissions until a provisional) until its final
        response."""
        assert self.transport is not None
        key = (request.call_id, request.method.upper())
        fut: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
        self.waiting[key] = fut
        data = serialize(request)
        interval = 0.5
        deadline = time.monotonic() + timeout
        try:
            while True:
                self.transport.sendto(data, self.server)
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no final response to {request.method}")
                with contextlib.suppress(TimeoutError):
                    return await asyncio.wait_for(asyncio.shield(fut), min(interval, left))
                # after a provisional the server has it: wait for the final response
                interval = left if key in self.provisional else min(interval * 2, 4.0)
        finally:
            self.waiting.pop(key, None)
            self.provisional.discard(key)


@dataclass(eq=False)
class SipCall:
    """One SIPREC session of two legs."""

    number: int
    legs: list[Leg]
    call_id: str = field(default_factory=new_call_id)
    from_tag: str = field(default_factory=new_tag)
    to_tag: str | None = None
    error: str | None = None
    answered: bool = False
    bye_status: int | None = None

    def request(
        self, ua: SipUa, method: str, cseq: int, body: bytes = b"", ctype: str | None = None
    ) -> Request:
        host, port = ua.server
        uri = f"sip:recorder@{host}:{port}"
        h = Headers()
        h.add("Via", f"SIP/2.0/UDP {HOST}:{ua.port};branch={new_branch()};rport")
        h.add("Max-Forwards", "70")
        h.add("From", f"<sip:src@{HOST}:{ua.port}>;tag={self.from_tag}")
        h.add("To", f"<{uri}>" + (f";tag={self.to_tag}" if self.to_tag else ""))
        h.add("Call-ID", self.call_id)
        h.add("CSeq", f"{cseq} {method}")
        h.add("Contact", f"<sip:src@{HOST}:{ua.port}>;+sip.src")
        if method == "INVITE":
            h.add("Require", "siprec")
        if ctype:
            h.add("Content-Type", ctype)
        return Request(method, uri, h, body)

    async def invite(self, ua: SipUa, rtp_port: int) -> None:
        ctype, body = siprec_body(
            local_ip=HOST,
            ports=[rtp_port, rtp_port + 2],
            codec="PCMU",
            caller=f"sip:+1555{self.number:07d}@caller.example",
            callee=f"sip:+1666{self.number:07d}@agent.example",
        )
        answer = await ua.transact(self.request(ua, "INVITE", 1, body, ctype))
        if answer.status != 200:
            raise RuntimeError(f"INVITE {answer.status} {answer.reason}")
        self.to_tag = answer.to_tag
        assert ua.transport is not None
        ua.transport.sendto(serialize(self.request(ua, "ACK", 1)), ua.server)
        sdp = parse_sdp(answer.body)
        for leg, m in zip(self.legs, sdp.media, strict=False):
            leg.target = (sdp.address_of(m) or HOST, m.port)
        self.answered = True

    async def bye(self, ua: SipUa) -> None:
        if self.call_id in ua.server_byes:
            return
        response = await ua.transact(self.request(ua, "BYE", 2))
        self.bye_status = response.status


# --- HTTP ---------------------------------------------------------------------------------------


class Signer:
    """SigV4 headers (service ``kinesisvideo``) for the bench's HTTP calls."""

    def __init__(self, access_key: str, secret_key: str, region: str) -> None:
        self.auth = SigV4Auth(Credentials(access_key, secret_key), "kinesisvideo", region)

    def headers(self, method: str, url: str, body: bytes = b"") -> dict[str, str]:
        hdrs = {"Content-Type": "application/json"} if body else {}
        req = AWSRequest(method=method, url=url, data=body, headers=hdrs)
        self.auth.add_auth(req)
        return dict(req.headers.items())


def new_session() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0, force_close=True),
        timeout=aiohttp.ClientTimeout(total=None, sock_read=None, sock_connect=30),
        auto_decompress=False,
    )


class BlockScanner:
    """The payloads of the SimpleBlocks (and Blocks) in a byte stream of MKV, by walking
    element headers only: Segment, Cluster and BlockGroup are entered, everything else is
    skipped. Single-byte track numbers, no lacing (what callstream writes)."""

    ENTER = frozenset({0x18538067, 0x1F43B675, 0xA0})
    BLOCKS = frozenset({0xA3, 0xA1})

    def __init__(self) -> None:
        self.buf = bytearray()
        self.skip = 0

    def feed(self, data: bytes) -> list[bytes]:
        out: list[bytes] = []
        buf = self.buf
        buf += data
        n = len(buf)
        pos = min(self.skip, n)
        self.skip -= pos
        enter, blocks = self.ENTER, self.BLOCKS
        while pos < n:
            b = buf[pos]
            idlen = 9 - b.bit_length()
            if not 1 <= idlen <= 4:
                raise ValueError(f"bad EBML ID byte {b:#x}")
            q = pos + idlen
            if q >= n:
                break
            s0 = buf[q]
            if s0 == 0:
                raise ValueError("bad EBML size")
            slen = 9 - s0.bit_length()
            body = q + slen
            if body > n:
                break
            eid = int.from_bytes(buf[pos:q], "big")
            if eid in enter:
                pos = body
                continue
            size = int.from_bytes(buf[q:body], "big") & ((1 << (7 * slen)) - 1)
            end = body + size
            if eid in blocks:
                if end > n:
                    break
                out.append(bytes(buf[body + 4 : end]))
                pos = end
            elif end <= n:
                pos = end
            else:
                self.skip = end - n
                pos = n
        del buf[:pos]
        return out


async def read_leg(
    sess: aiohttp.ClientSession, base: str, signer: Signer, leg: Leg, window: Window
) -> None:
    """The leg's live reader: GetMedia EARLIEST until the stream's live edge goes quiet."""
    body = json.dumps(
        {"StreamARN": leg.stream_arn, "StartSelector": {"StartSelectorType": "EARLIEST"}}
    ).encode()
    url = base + "/getMedia"
    try:
        async with sess.post(url, data=body, headers=signer.headers("POST", url, body)) as resp:
            if resp.status != 200:
                leg.reader_error = f"GetMedia {resp.status}: {(await resp.read())[:200]!r}"
                return
            scanner = BlockScanner()
            clock = time.monotonic_ns
            async for chunk in resp.content.iter_any():
                now = clock()
                for pcm in scanner.feed(chunk):
                    leg.take(pcm, now, window)
    except (aiohttp.ClientError, ConnectionError, ValueError) as err:
        leg.reader_error = f"GetMedia: {type(err).__name__}: {err}"


@dataclass
class EventLog:
    """What :func:`poll_events` saw."""

    started: int = 0
    ended: int = 0
    failed: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


async def poll_events(
    sess: aiohttp.ClientSession,
    base: str,
    signer: Signer,
    legs: dict[tuple[str, int], Leg],
    on_started: Callable[[Leg], None],
    log: EventLog,
    stop: asyncio.Event,
) -> None:
    """Follow the leg events until ``stop`` is set (then one last page)."""
    cursor = 0
    while True:
        final = stop.is_set()
        url = (
            f"{base}/callstream/events?type=VoiceConnectorStreamingStatus"
            f"&cursor={cursor}&limit=1000"
        )
        try:
            async with sess.get(url, headers=signer.headers("GET", url)) as resp:
                data = await resp.json(content_type=None)
                if resp.status != 200:
                    raise RuntimeError(f"events {resp.status}: {data}")
        except (aiohttp.ClientError, RuntimeError, ValueError) as err:
            log.errors.append(str(err)[:200])
            await asyncio.sleep(0.5)
            continue
        for event in data["Events"]:
            status = event.get("StreamingStatus")
            if status == "FAILED":
                log.failed.append(str(event.get("FailureReason")))
                continue
            sdp = event.get("Sdp") or {}
            leg = legs.get((event.get("CallId", ""), int(sdp.get("mediaIndex", -1))))
            if leg is None:
                continue
            if status == "STARTED" and leg.stream_arn is None:
                log.started += 1
                leg.stream_arn = event["StreamARN"]
                on_started(leg)
            elif status == "ENDED":
                log.ended += 1
                leg.ended = True
        cursor = data["NextCursor"]
        if final and not data["HasMore"]:
            return
        if not data["HasMore"]:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.2)


# --- the baseline's reader ----------------------------------------------------------------------


class BaselineReader(asyncio.DatagramProtocol):
    """Datagrams forwarded by ``voice_baseline.py``: 4-byte leg index + the RTP packet."""

    def __init__(self, legs: list[Leg], window: Window) -> None:
        self.legs = legs
        self.window = window
        self.foreign = 0

    def datagram_received(self, data: bytes, addr: Any) -> None:
        now = time.monotonic_ns()
        index = int.from_bytes(data[:4], "big")
        if index >= len(self.legs) or len(data) < 16:
            self.foreign += 1
            return
        leg = self.legs[index]
        k = (int.from_bytes(data[6:8], "big") - leg.seq0) & 0xFFFF
        leg.received += 2 * PACKET_SAMPLES
        if k < leg.sent and data[16:] == POOL_ULAW[leg.pool_index(k)]:
            leg.matched += 1
            leg.next = max(leg.next, k + 1)
            t = leg.send_ns[k]
            w = self.window
            if w.start_ns <= t < w.end_ns:
                w.latency_ns.append(now - t)
