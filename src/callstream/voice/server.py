"""The voice connector's edge: SIP over UDP and TCP, RTP sockets, timers, and the recorders.

Everything protocol-shaped happens in sans-I/O cores; this module moves bytes between
them and sockets:

    datagram / TCP bytes -> sip.parse_message / StreamParser -> ServerTransactions
      -> RecordingUas (replies, PrepareCall / CallStarted / CallUpdated / CallEnded)
      -> CallRecorder (legs -> streams, events, SDRs)

A :class:`VoiceServer` runs inside ``callstream serve`` (legs go to the store service in
process) or alone (``callstream voice-connector --kvs-endpoint URL``: legs go out over
PutMedia); the :class:`~callstream.flows.store.CallStore` it is given decides.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from callstream.events.types import Event
from callstream.flows.store import CallEvents, CallStore
from callstream.voice.calls import Call
from callstream.voice.errors import SipError
from callstream.voice.recorder import CallRecorder
from callstream.voice.sdr import LegRecord, write_sdr
from callstream.voice.sip import (
    Request,
    Response,
    StreamParser,
    is_keepalive,
    parse_message,
    serialize,
)
from callstream.voice.sipheaders import response_address
from callstream.voice.transactions import ServerTransactions
from callstream.voice.uas import (
    Action,
    CallEnded,
    CallStarted,
    CallUpdated,
    ConnectorLookup,
    PrepareCall,
    RecordingUas,
    Reply,
    SendRequest,
    UasConfig,
)

__all__ = ["PortPool", "VoiceConfig", "VoiceServer"]

log = logging.getLogger("callstream.voice")

POLL_SLICE = 50
"""Calls polled for RTP before SIP and other work get a turn on the event loop."""
SHED_S = 3.0
"""How long new calls are refused once the server is found overloaded (then it checks
again)."""
LOAD_PROBE_S = 0.1
LOAD_PROBES = 10
"""The event-loop lag probes the overload check looks back over."""


@dataclass(slots=True)
class VoiceConfig:
    """``callstream serve`` / ``callstream voice-connector`` SIP and RTP settings."""

    sip_host: str = "127.0.0.1"
    sip_port: int = 5060
    advertise_ip: str | None = None
    """Address for SDP and Contact (default: ``sip_host``, or this host's address when
    listening on all interfaces)."""
    rtp_ports: tuple[int, int] = (20000, 29999)
    rtp_timeout_s: float = 60.0
    rtp_batch_ms: int = 100
    """RTP is read and written to the legs' streams this often (latency vs CPU)."""
    max_calls: int = 1000
    overload_late_ms: int = 0
    """Overload control (0: off; else at least 20): when the event loop runs this much
    late most of the time (most of the last :data:`LOAD_PROBES` lag probes), new INVITEs
    get ``503`` with ``Retry-After`` until :data:`SHED_S` after the last late majority, so
    the calls in progress keep their audio."""
    default_connector: str | None = None
    account_id: str = "123456789012"
    region: str = "us-east-1"
    sdr_dir: Path | None = None


class PortPool:
    """RTP ports from a range: even numbers (RTCP would take the odd one above), bound as
    they are handed out so the SDP answer never names a port someone else holds."""

    def __init__(self, host: str, low: int, high: int) -> None:
        if not 1024 <= low <= high <= 65535:
            raise ValueError("the RTP port range must lie within 1024-65535")
        self.host = host
        self.low = low + (low % 2)
        self.high = high
        self._next = self.low
        self.sockets: dict[int, socket.socket] = {}

    @property
    def capacity(self) -> int:
        return (self.high - self.low) // 2 + 1

    def open(self, count: int) -> list[int] | None:
        got: list[int] = []
        tries = 0
        while len(got) < count and tries < self.capacity:
            port = self._next
            self._next = self._next + 2 if self._next + 2 <= self.high else self.low
            tries += 1
            if port in self.sockets:
                continue
            sock = socket.socket(
                socket.AF_INET6 if ":" in self.host else socket.AF_INET, socket.SOCK_DGRAM
            )
            try:
                sock.bind((self.host, port))
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 18)
            except OSError:
                sock.close()
                continue
            sock.setblocking(False)
            self.sockets[port] = sock
            got.append(port)
        if len(got) < count:
            self.close(got)
            return None
        return got

    def take(self, port: int) -> socket.socket | None:
        """Hand the socket of ``port`` over to its leg (whose transport closes it)."""
        return self.sockets.pop(port, None)

    def close(self, ports: Sequence[int]) -> None:
        """Release ports not handed over (a call refused or cancelled before it started)."""
        for port in ports:
            sock = self.sockets.pop(port, None)
            if sock is not None:
                sock.close()

    def close_all(self) -> None:
        self.close(list(self.sockets))


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, server: VoiceServer) -> None:
        self.server = server
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        self.server.datagram(data, (str(addr[0]), int(addr[1])))

    def error_received(self, exc: Exception) -> None:
        log.debug("SIP UDP socket: %s", exc)


class _TcpKey:
    """A TCP connection as a transport key (responses go back on it)."""

    __slots__ = ("peer", "writer")

    def __init__(self, writer: asyncio.StreamWriter, peer: tuple[str, int]) -> None:
        self.writer = writer
        self.peer = peer


UDP = "udp"


class VoiceServer:
    """The SIP recording server and its calls (see the module docstring)."""

    def __init__(
        self,
        store: CallStore,
        connectors: ConnectorLookup,
        config: VoiceConfig | None = None,
        *,
        report: Callable[[str], None] | None = None,
    ) -> None:
        self.config = config or VoiceConfig()
        self.store = store
        self.connectors = connectors
        cfg = self.config
        advertise = cfg.advertise_ip or _default_advertise(cfg.sip_host)
        self.ports = PortPool(
            cfg.sip_host if cfg.sip_host not in ("", "::") else "0.0.0.0", *cfg.rtp_ports
        )
        self.uas_config = UasConfig(
            advertise_ip=advertise,
            sip_port=cfg.sip_port,
            max_calls=cfg.max_calls,
            default_connector=cfg.default_connector,
        )
        self.uas = RecordingUas(self.uas_config, connectors, self.ports)
        self.transactions = ServerTransactions()
        self.events = CallEvents(store, report or (lambda m: log.warning("%s", m)))
        self.recorders: dict[int, CallRecorder] = {}
        self._udp: _Udp | None = None
        self._tcp: asyncio.Server | None = None
        self._timer: asyncio.Task[None] | None = None
        self._rtp: asyncio.Task[None] | None = None
        self._load: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._bad_logged = 0.0

    # --- life cycle --------------------------------------------------------------------
    @property
    def sip_port(self) -> int:
        return self.uas_config.sip_port

    async def start(self) -> None:
        """Listen for SIP on UDP and TCP (the same port)."""
        loop = asyncio.get_running_loop()
        cfg = self.config
        for attempt in range(20):
            transport, protocol = await loop.create_datagram_endpoint(
                lambda: _Udp(self), local_addr=(cfg.sip_host, cfg.sip_port)
            )
            port = transport.get_extra_info("sockname")[1]
            try:
                self._tcp = await asyncio.start_server(self._tcp_client, cfg.sip_host, port)
            except OSError:
                transport.close()
                # a port the kernel picked for UDP may be taken for TCP: pick another
                if cfg.sip_port != 0 or attempt == 19:
                    raise
                continue
            break
        self._udp = protocol
        self.uas_config.sip_port = port
        self._timer = asyncio.create_task(self._timers(), name="callstream-sip-timers")
        self._rtp = asyncio.create_task(self._poll_rtp(), name="callstream-rtp")
        if cfg.overload_late_ms > 0:
            self._load = asyncio.create_task(self._watch_load(), name="callstream-load")
        log.info("SIP on %s:%d (UDP, TCP), RTP %d-%d", cfg.sip_host, port, *cfg.rtp_ports)

    async def stop(self) -> None:
        """End every call (BYE to the SRC, legs stored), then stop listening."""
        now = time.monotonic()
        for call in self.uas.calls:
            self._act(self.uas.hangup(call, "server shutting down", now, reliable=True), now)
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        await self.events.drain()
        for task in (self._timer, self._rtp, self._load):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._udp is not None and self._udp.transport is not None:
            self._udp.transport.close()
        if self._tcp is not None:
            self._tcp.close()
            with contextlib.suppress(Exception):
                await self._tcp.wait_closed()
        self.ports.close_all()

    # --- SIP in ------------------------------------------------------------------------
    def datagram(self, data: bytes, source: tuple[str, int]) -> None:
        if is_keepalive(data):
            return
        try:
            message = parse_message(data)
        except SipError as exc:
            self._bad_message(data, source, exc, UDP)
            return
        self._message(message, source, UDP, reliable=False)

    async def _tcp_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        key = _TcpKey(writer, (str(peer[0]), int(peer[1])))
        parser = StreamParser()
        try:
            while data := await reader.read(65536):
                for item in parser.feed(data):
                    if isinstance(item, (Request, Response)):
                        self._message(item, key.peer, key, reliable=True)
                    else:
                        writer.write(b"\r\n")  # RFC 5626 pong
                if parser.error is not None:  # a stream cannot resynchronise: close it
                    self._bad_message(data, key.peer, parser.error, key)
                    break
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    def _bad_message(
        self, data: bytes, source: tuple[str, int], exc: SipError, key: object
    ) -> None:
        now = time.monotonic()
        if now - self._bad_logged > 1.0:  # one line per second at most under a flood
            self._bad_logged = now
            log.warning("bad SIP message from %s:%d: %s %s", *source, exc.status, exc.reason)
        reply = error_reply(data, exc)
        if reply is None:
            return
        if isinstance(key, _TcpKey):
            if not key.writer.is_closing():
                key.writer.write(reply)
        elif self._udp is not None and self._udp.transport is not None:
            self._udp.transport.sendto(reply, source)

    def _message(
        self, message: Request | Response, source: tuple[str, int], key: object, *, reliable: bool
    ) -> None:
        now = time.monotonic()
        if isinstance(message, Response):
            self.uas.response_received(message)
            return
        received = self.transactions.receive(
            message, source=source, reliable=reliable, transport_key=key, now=now
        )
        for out in received.outgoing:
            self._send(out.message, out.destination, out.transport_key)
        if not received.for_tu:
            return
        actions = self.uas.handle(
            received.request, source=source, transport_key=key, reliable=reliable, now=now
        )
        self._act(actions, now)

    # --- actions -----------------------------------------------------------------------
    def _act(self, actions: list[Action], now: float) -> None:
        for action in actions:
            if isinstance(action, Reply):
                for out in self.transactions.respond(action.request, action.response, now=now):
                    self._send(out.message, out.destination, out.transport_key)
            elif isinstance(action, SendRequest):
                self._send(action.request, action.destination, action.transport_key)
            elif isinstance(action, PrepareCall):
                self._spawn(self._prepare(action.call))
            elif isinstance(action, CallStarted):
                recorder = self.recorders.get(id(action.call))
                if recorder is not None:
                    recorder.start(self.ports.take)
            elif isinstance(action, CallUpdated):
                recorder = self.recorders.get(id(action.call))
                if recorder is not None:
                    recorder.updated()
                    recorder.publish_updated(action.headers)
            elif isinstance(action, CallEnded):
                recorder = self.recorders.get(id(action.call))
                if recorder is not None and recorder.prepared:  # else _prepare finishes it
                    del self.recorders[id(action.call)]
                    self._spawn(self._finish(recorder))
        self._wake.set()

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _prepare(self, call: Call) -> None:
        recorder = CallRecorder(call, self.store, self.events)
        self.recorders[id(call)] = recorder
        try:
            await recorder.prepare()
        except Exception as exc:
            log.warning("call %s: creating its streams failed: %s", call.call_id, exc)
            self.recorders.pop(id(call), None)
            recorder.publish_failed(f"Internal failure: {exc}")
            self._act(self.uas.reject(call, 500, "Stream Creation Failed"), time.monotonic())
            self._spawn(self._finish(recorder, sdr=False))
            return
        recorder.prepared = True
        if call.state != "early":  # CANCELled while the streams were being made
            self.recorders.pop(id(call), None)
            self._spawn(self._finish(recorder, sdr=False))
            return
        self._act(self.uas.answer(call, time.monotonic()), time.monotonic())

    async def _finish(self, recorder: CallRecorder, *, sdr: bool = True) -> None:
        results = await recorder.end()
        call = recorder.call
        log.info(
            "call %s ended (%s): %s",
            call.call_id,
            call.ended_reason,
            "; ".join(r.summary() for r, _ in results),
        )
        if not sdr or self.config.sdr_dir is None or recorder.t0_ms is None:
            return
        legs = [
            LegRecord(
                stream_arn=r.stream_arn,
                is_caller=r.leg.is_caller,
                start_ms=r.start_ms or recorder.t0_epoch_ms,
                end_ms=r.end_ms or recorder.t0_epoch_ms,
                ok=ok,
                message="Streaming succeeded" if ok else f"Streaming failed: {r.failed}",
            )
            for r, ok in results
        ]
        try:
            await asyncio.to_thread(
                write_sdr,
                self.config.sdr_dir,
                voice_connector_id=call.voice_connector_id,
                transaction_id=call.transaction_id,
                call_id=call.call_id,
                call_start_ms=recorder.t0_epoch_ms,
                legs=legs,
                account_id=self.config.account_id,
                region=self.config.region,
            )
        except OSError as exc:
            log.warning("call %s: writing its SDR failed: %s", call.call_id, exc)

    # --- SIP out -----------------------------------------------------------------------
    def _send(self, message: Request | Response, destination: tuple[str, int], key: object) -> None:
        data = serialize(message)
        if isinstance(key, _TcpKey):
            if not key.writer.is_closing():
                key.writer.write(data)
            return
        if self._udp is not None and self._udp.transport is not None:
            if isinstance(message, Response):
                destination = response_address(message.top_via, destination)
            self._udp.transport.sendto(data, destination)

    # --- RTP -------------------------------------------------------------------------
    async def _poll_rtp(self) -> None:
        """Every ``rtp_batch_ms``: read all legs' waiting RTP and write it (see
        :meth:`LegRecorder.poll`). A late tick reads more at once; none is skipped."""
        loop = asyncio.get_running_loop()
        tick = self.config.rtp_batch_ms / 1000
        due = loop.time()
        while True:
            for n, recorder in enumerate(list(self.recorders.values()), start=1):
                try:
                    recorder.poll(loop.time() * 1000.0)
                except Exception:  # one broken call must not stop the others' audio
                    log.exception("call %s: reading RTP failed", recorder.call.call_id)
                if n % POLL_SLICE == 0:
                    await asyncio.sleep(0)  # let SIP in between slices of calls
            due = max(due + tick, loop.time())
            await asyncio.sleep(due - loop.time())

    async def _watch_load(self) -> None:
        """Overload control: the event loop's lag, probed every :data:`LOAD_PROBE_S`; when
        most of the last :data:`LOAD_PROBES` probes come ``overload_late_ms`` late, the
        server cannot keep up and new calls are refused for :data:`SHED_S`."""
        loop = asyncio.get_running_loop()
        limit = self.config.overload_late_ms / 1000
        late: deque[bool] = deque(maxlen=LOAD_PROBES)
        while True:
            asked = loop.time()
            await asyncio.sleep(LOAD_PROBE_S)
            lag = loop.time() - asked - LOAD_PROBE_S
            late.append(lag >= limit)
            if sum(late) > LOAD_PROBES // 2:
                now = time.monotonic()
                if not self.uas.shedding(now):
                    log.warning(
                        "voice: overloaded (the event loop runs %.2f s late): new calls get "
                        "503 for %.0f s",
                        lag,
                        SHED_S,
                    )
                self.uas.shed_new_calls(now + SHED_S)

    # --- timers ------------------------------------------------------------------------
    async def _timers(self) -> None:
        while True:
            now = time.monotonic()
            deadlines = [
                d
                for d in (self.transactions.next_deadline(), self.uas.next_deadline())
                if d is not None
            ]
            wait = min([1.0] + [max(0.0, d - now) for d in deadlines])
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)
            now = time.monotonic()
            for item in self.transactions.poll(now):
                self._transaction_item(item, now)
            self._act(self.uas.poll(now), now)
            self._rtp_timeouts(now)

    def _transaction_item(self, item: Any, now: float) -> None:
        from callstream.voice.transactions import AckTimeout, Outgoing

        if isinstance(item, Outgoing):
            self._send(item.message, item.destination, item.transport_key)
        elif isinstance(item, AckTimeout):
            self._act(self.uas.ack_timeout(item.call_id, item.cseq, now), now)

    def _rtp_timeouts(self, now: float) -> None:
        limit = self.config.rtp_timeout_s
        if limit <= 0:
            return
        loop_ms = asyncio.get_running_loop().time() * 1000
        for recorder in list(self.recorders.values()):
            call = recorder.call
            if call.state != "confirmed":
                continue
            if any(leg.direction == "inactive" for leg in call.legs):
                continue  # on hold: a pause is silence, not the end
            last = recorder.last_rtp_ms
            since = (loop_ms - last) / 1000 if last is not None else now - call.started_at
            if since >= limit:
                log.info("call %s: no RTP for %.0f s, ending it", call.call_id, since)
                self._act(self.uas.hangup(call, "RTP timeout", now, reliable=False), now)


_ECHOED = ("via", "v", "from", "f", "to", "t", "call-id", "i", "cseq")


def error_reply(data: bytes, exc: SipError) -> bytes | None:
    """The 4xx/5xx for a request that did not parse, when it still carries what a response
    needs (Via, From, To, Call-ID, CSeq, as lines); None for anything else (a response, an
    ACK, garbage), which gets no answer. It goes back to the sender's address."""
    head = data[:8192].split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
    lines = head.decode("utf-8", "replace").replace("\r\n", "\n").split("\n")
    start = lines[0].split(" ")
    if len(start) != 3 or not start[2].startswith("SIP/") or start[0].upper() == "ACK":
        return None
    if not start[0].isalpha() or len(start[0]) > 32:
        return None
    echoed: list[str] = []
    for line in lines[1:129]:
        name, sep, value = line.partition(":")
        if sep and name.strip().lower() in _ECHOED and "\r" not in value:
            echoed.append(f"{name.strip()}:{value}")
    names = {line.split(":", 1)[0].strip().lower() for line in echoed}
    if not ({"via", "v"} & names and {"call-id", "i"} & names and "cseq" in names):
        return None
    reason = "".join(ch for ch in exc.reason if ch.isprintable())[:100] or "Bad Request"
    status = exc.status if 400 <= exc.status < 600 else 400
    text = f"SIP/2.0 {status} {reason}\r\n" + "".join(f"{h}\r\n" for h in echoed)
    return (text + "Content-Length: 0\r\n\r\n").encode("utf-8", "replace")


def _default_advertise(host: str) -> str:
    if host not in ("", "0.0.0.0", "::"):
        return host
    with contextlib.suppress(OSError):
        probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            probe.connect(("192.0.2.1", 9))  # no packet is sent; picks the outgoing address
            return str(probe.getsockname()[0])
        finally:
            probe.close()
    return "127.0.0.1"


def bus_publisher(bus: Any) -> Callable[[str, Mapping[str, Any]], object]:
    """``CallStore.publish`` for a local event bus."""

    def publish(event_type: str, detail: Mapping[str, Any]) -> object:
        return bus.publish(Event.of(event_type, **detail))

    return publish
