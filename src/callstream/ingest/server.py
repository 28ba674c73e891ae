"""The ingest gateways inside ``callstream serve``: WebSocket routes and the AudioSocket port.

Paths (WebSocket, on the server's own port, mounted as a sub-application so the KVS
SigV4 check does not apply; each protocol authenticates as its vendor defines):

=======================  ============================  ======================================
path / port              protocol                      authentication
=======================  ============================  ======================================
``/ingest/twilio``       Twilio Media Streams          ``X-Twilio-Signature`` (auth token)
``/ingest/audiohook``    Genesys AudioHook v2          ``X-API-KEY`` + RFC 9421 signature
``/ingest/ws``           plain L16 / µ-law WebSocket   shared token: ``Authorization: Bearer``,
                         (LCA, jambonz, mod_audio_fork) Basic password, or ``?token=``
``--audiosocket-port``   Asterisk AudioSocket (TCP)    none on the wire: loopback bind and a
                                                       peer address allow-list
=======================  ============================  ======================================

Refusals happen before the upgrade: 503 (with ``Retry-After``) when
:attr:`IngestConfig.max_calls` connections are open, 401 without credentials or with
wrong ones, 403 for a protocol whose credential is not configured. AudioSocket
connections over the bound or from an address not allowed are closed at once.

Each connection runs one protocol core (the sans-I/O state machines of
:mod:`callstream.ingest.twilio`, ``audiohook``, ``websocket``, ``audiosocket``) and one
:class:`~callstream.ingest.call.CallSink`. What the core returns is applied in order:
:class:`Reply` is sent, :class:`Close` closes, :class:`ProtocolError` is logged (one
line, no traceback) and ends the connection, the rest goes to the sink. A peer that
sends nothing for :attr:`IngestConfig.idle_timeout_s` (except while paused) has its call
ended (close 1000 "idle"). A disconnect is how many peers end a call: it is not an
error. Messages over the protocol's size limit close the socket with 1009.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import logging
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from aiohttp import WSMsgType, web

from callstream.ingest.call import CallSink, IngestTarget, SinkSettings
from callstream.ingest.config import IngestConfig
from callstream.ingest.events import CallEnded, Close, IngestEvent, ProtocolError, Reply

if TYPE_CHECKING:
    from callstream.api.app import ServerState

__all__ = [
    "AUDIOHOOK_PATH",
    "INGEST_PREFIX",
    "TWILIO_PATH",
    "WEBSOCKET_PATH",
    "Core",
    "Gateway",
    "IngestServer",
    "mount_ingest",
]

log = logging.getLogger("callstream.ingest")

INGEST_PREFIX = "/ingest"
TWILIO_PATH = f"{INGEST_PREFIX}/twilio"
AUDIOHOOK_PATH = f"{INGEST_PREFIX}/audiohook"
WEBSOCKET_PATH = f"{INGEST_PREFIX}/ws"
PAUSE_TICK_S = 0.25
"""While a call is paused its silence is written this often (live readers keep moving)."""
INGEST_SERVER = web.AppKey("callstream.ingest.server", object)


class Core(Protocol):
    """A protocol core as the edge drives it (each returns the events to apply)."""

    def receive_text(self, text: str) -> list[IngestEvent]: ...

    def receive_bytes(self, data: bytes) -> list[IngestEvent]: ...

    def receive_close(self) -> list[IngestEvent]: ...


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why an upgrade request is refused: HTTP status and a short reason."""

    status: int
    reason: str


@dataclass(frozen=True, slots=True)
class Gateway:
    """One WebSocket protocol: its core and its authentication."""

    source: str
    make_core: Callable[[web.Request, IngestConfig], Core]
    authenticate: Callable[[web.Request, IngestConfig], Refusal | None]
    subprotocols: tuple[str, ...] = ()


# --- authentication --------------------------------------------------------------------------


def _public_urls(request: web.Request, config: IngestConfig) -> list[str]:
    """The URLs the peer may have signed: the public URL's, else the request's, as
    ``wss://`` (what Twilio connects to) and ``ws://``."""
    target = request.raw_path
    if config.public_url:
        base = config.public_url.rstrip("/")
        scheme, _, rest = base.partition("://")
        hosts = [rest]
        secure = scheme in ("https", "wss")
    else:
        hosts = [request.host]
        secure = request.secure
        forwarded = request.headers.get("X-Forwarded-Host")
        if forwarded:
            hosts.insert(0, forwarded.split(",")[0].strip())
    schemes = ("wss", "ws") if secure or config.public_url is None else ("ws", "wss")
    return [f"{scheme}://{host}{target}" for host in hosts for scheme in schemes]


def twilio_auth(request: web.Request, config: IngestConfig) -> Refusal | None:
    """``X-Twilio-Signature`` over the URL Twilio connected to."""
    from callstream.ingest.signatures import check_twilio_signature

    token = config.twilio_auth_token
    if not token:
        return Refusal(403, "Twilio ingest is not configured (--twilio-auth-token)")
    signature = request.headers.get("X-Twilio-Signature")
    reason = "missing X-Twilio-Signature"
    for url in _public_urls(request, config):
        result = check_twilio_signature(token, url, signature)
        if result.ok:
            return None
        reason = result.reason
    return Refusal(401, reason)


def audiohook_auth(request: web.Request, config: IngestConfig) -> Refusal | None:
    """AudioHook's ``X-API-KEY`` and its RFC 9421 signature."""
    from callstream.ingest.signatures import check_audiohook_request, decode_client_secret

    if not config.audiohook_keys:
        return Refusal(403, "AudioHook ingest is not configured (--audiohook-api-key)")
    secrets = {key: decode_client_secret(secret) for key, secret in config.audiohook_keys.items()}
    result = check_audiohook_request(
        request.method,
        request.raw_path,
        list(request.headers.items()),
        secrets,
        now=time.time(),
    )
    return None if result.ok else Refusal(401, result.reason)


def token_auth(request: web.Request, config: IngestConfig) -> Refusal | None:
    """The shared token: ``Authorization: Bearer``, HTTP Basic's password (jambonz
    ``wsAuth``, mod_audio_fork's HTTP auth) or ``?token=``."""
    from callstream.ingest.signatures import check_shared_token

    if not config.token:
        return Refusal(403, "the plain WebSocket ingest is not configured (--ingest-token)")
    headers = list(request.headers.items())
    auth = request.headers.get("Authorization", "")
    scheme, _, value = auth.partition(" ")
    if scheme.lower() == "basic":
        try:
            _, _, password = base64.b64decode(value.strip()).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            password = ""
        headers = [(k, v) for k, v in headers if k.lower() != "authorization"]
        headers.append(("Authorization", f"Bearer {password}"))
    result = check_shared_token(headers, dict(request.query), [config.token])
    return None if result.ok else Refusal(401, result.reason)


# --- cores -----------------------------------------------------------------------------------


def _twilio_core(request: web.Request, config: IngestConfig) -> Core:
    from callstream.ingest.twilio import TwilioStream

    return TwilioStream()


def _audiohook_core(request: web.Request, config: IngestConfig) -> Core:
    from callstream.ingest.audiohook import AudioHookSession

    return AudioHookSession(
        session_id=request.headers.get("Audiohook-Session-Id"),
        organization_id=request.headers.get("Audiohook-Organization-Id"),
    )


def _websocket_core(request: web.Request, config: IngestConfig) -> Core:
    """The plain socket; ``?rate=``, ``?channels=`` and ``?encoding=`` supply what a start
    message leaves out (mod_audio_fork sets rate and mix in its API command)."""
    from callstream.ingest.websocket import PlainWebSocket

    query = request.query
    kwargs: dict[str, Any] = {}
    with contextlib.suppress(ValueError):
        if "rate" in query:
            kwargs["default_sample_rate"] = int(query["rate"])
        if "channels" in query:
            kwargs["default_channels"] = int(query["channels"])
    encoding = query.get("encoding", "").upper()
    if encoding in ("L16", "PCMU"):
        kwargs["default_encoding"] = encoding
    return PlainWebSocket(**kwargs)


def gateways() -> dict[str, Gateway]:
    """The WebSocket gateways by path."""
    from callstream.ingest.websocket import SUBPROTOCOLS

    return {
        TWILIO_PATH: Gateway("twilio", _twilio_core, twilio_auth),
        AUDIOHOOK_PATH: Gateway("audiohook", _audiohook_core, audiohook_auth),
        WEBSOCKET_PATH: Gateway("websocket", _websocket_core, token_auth, tuple(SUBPROTOCOLS)),
    }


# --- the server ------------------------------------------------------------------------------


@dataclass(slots=True, eq=False)
class _Watch:
    """A connection the watchdog looks after."""

    sink: CallSink
    source: str
    close: Callable[[], object]
    last: float
    """Loop time of the last message."""
    idle: bool = False


class IngestServer:
    """The gateways' shared state: the call bound, open connections, the TCP listener."""

    def __init__(self, config: IngestConfig, target: IngestTarget) -> None:
        self.config = config
        self.target = target
        self.active = 0
        self.sinks: set[CallSink] = set()
        self.sockets: set[web.WebSocketResponse] = set()
        self.writers: set[asyncio.StreamWriter] = set()
        self.tcp: asyncio.Server | None = None
        self.audiosocket_port: int | None = None
        """The bound AudioSocket port (None: not listening)."""
        self.refused = 0
        self.calls = 0
        self.stopping = False
        self.watches: set[_Watch] = set()
        self._watchdog: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    def settings(self, source: str) -> SinkSettings:
        config = self.config
        return SinkSettings(
            shape=config.shape,
            swap_roles=source in config.swap_roles,
            stream_prefix=config.stream_prefix,
            retention_hours=config.retention_hours,
        )

    def admit(self) -> bool:
        """Take a connection place; False when :attr:`IngestConfig.max_calls` are taken."""
        if self.stopping or self.active >= self.config.max_calls:
            self.refused += 1
            return False
        self.active += 1
        self.calls += 1
        return True

    def release(self) -> None:
        self.active -= 1

    # --- WebSocket ----------------------------------------------------------------------
    async def handle_ws(self, request: web.Request, gateway: Gateway) -> web.StreamResponse:
        """One WebSocket connection: refusals before the upgrade, then the call."""
        config = self.config
        refusal = gateway.authenticate(request, config)
        if refusal is not None:
            log.info(
                "ingest %s from %s refused: %s", gateway.source, request.remote, refusal.reason
            )
            # the reason is for the log; a peer with bad credentials learns nothing more
            text = "unauthorized" if refusal.status == 401 else refusal.reason
            return web.Response(status=refusal.status, text=f"{text}\n")
        if not self.admit():
            log.warning("ingest %s from %s refused: %d calls open", gateway.source,
                        request.remote, self.active)  # fmt: skip
            return web.Response(
                status=503, text="too many ingest calls\n", headers={"Retry-After": "5"}
            )
        try:
            core = gateway.make_core(request, config)
            ws = web.WebSocketResponse(
                max_msg_size=config.max_message_bytes.get(gateway.source, 256 * 1024),
                protocols=gateway.subprotocols,
                autoping=True,
            )
            await ws.prepare(request)
            self.sockets.add(ws)
            try:
                await self._run_ws(ws, core, gateway.source, request.remote or "?")
            finally:
                self.sockets.discard(ws)
            return ws
        finally:
            self.release()

    async def _run_ws(self, ws: web.WebSocketResponse, core: Core, source: str, peer: str) -> None:
        def close_idle() -> None:
            self._spawn(ws.close(code=1000, message=b"idle"))

        async def send(data: str | bytes) -> None:
            with contextlib.suppress(ConnectionError, RuntimeError):
                if isinstance(data, str):
                    await ws.send_str(data)
                else:
                    await ws.send_bytes(data)

        watch = self._open_call(source, close_idle)
        sink = watch.sink
        loop = asyncio.get_running_loop()
        close: Close | None = None
        reason = "disconnected"
        try:
            while close is None:
                msg = await ws.receive()
                watch.last = loop.time()
                if msg.type == WSMsgType.TEXT:
                    events = core.receive_text(msg.data)
                elif msg.type == WSMsgType.BINARY:
                    events = core.receive_bytes(msg.data)
                elif msg.type == WSMsgType.ERROR:
                    exc = ws.exception()
                    log.info("ingest %s call %s: %s", source, sink.call_id, exc)
                    await _handle(sink, _peer_gone(core.receive_close(), watch), source)
                    reason = "error"
                    break
                else:  # CLOSE / CLOSING / CLOSED: the peer is gone (or idled and was closed)
                    await _handle(sink, _peer_gone(core.receive_close(), watch), source)
                    break
                close, failed = await self._apply(events, sink, source, send)
                if failed is not None:
                    reason = "protocol-error"
                if sink.failed is not None and close is None:
                    log.warning("ingest %s call %s: %s", source, sink.call_id, sink.failed)
                    close = Close(1011, "storage failed")
            if close is not None and not ws.closed:
                with contextlib.suppress(ConnectionError, RuntimeError):
                    await ws.close(code=close.code, message=close.reason.encode()[:120])
        except (ConnectionError, asyncio.CancelledError):
            reason = "disconnected"
            raise
        finally:
            await self._end_call(watch, peer, reason)

    # --- a connection's call (both transports), idle peers and pauses -------------------
    def _open_call(self, source: str, close: Callable[[], object]) -> _Watch:
        """The sink of a new connection's call, watched (``close`` closes the connection
        when it idles): one watchdog task for all of them, not a timer per message."""
        loop = asyncio.get_running_loop()
        sink = CallSink(self.target, self.settings(source))
        self.sinks.add(sink)
        watch = _Watch(sink, source, close, loop.time())
        self.watches.add(watch)
        if self._watchdog is None or self._watchdog.done():
            self._watchdog = loop.create_task(self._watch_forever(), name="ingest-watchdog")
        return watch

    async def _apply(
        self,
        events: list[IngestEvent],
        sink: CallSink,
        source: str,
        send: Callable[[str | bytes], Awaitable[None]],
    ) -> tuple[Close | None, ProtocolError | None]:
        """A core's events in order: replies are sent, a protocol error is logged, the rest
        goes to the sink. Returns the close to do (the core's; 1011 when the sink failed on
        them; 1002 after a protocol error) and the protocol error."""
        close: Close | None = None
        failed: ProtocolError | None = None
        for event in events:
            if isinstance(event, Reply):
                await send(event.data)
            elif isinstance(event, Close):
                close = event
            elif isinstance(event, ProtocolError):
                failed = event
                log.info("ingest %s call %s: protocol error: %s", source, sink.call_id,
                         event.message)  # fmt: skip
        if not await _handle(sink, events, source):
            close = Close(1011, "internal error")
        if failed is not None and close is None:
            close = Close(1002, "protocol error")
        return close, failed

    async def _end_call(self, watch: _Watch, peer: str, reason: str) -> None:
        """The connection is done: its call ends with ``reason`` (``idle`` when the
        watchdog closed it) unless the call ended itself, with one log line if it began."""
        sink = watch.sink
        self.watches.discard(watch)
        self.sinks.discard(sink)
        if watch.idle:
            reason = "idle"
        await sink.end(reason if not sink.ended else sink.end_reason or reason)
        if sink.started is not None:
            log.info("ingest %s call %s from %s ended (%s)", watch.source, sink.call_id, peer,
                     sink.end_reason)  # fmt: skip

    async def _watch_forever(self) -> None:
        loop = asyncio.get_running_loop()
        while self.watches:
            await asyncio.sleep(PAUSE_TICK_S)
            now = loop.time()
            for watch in list(self.watches):
                timeline = watch.sink.timeline
                if timeline is not None and timeline.paused_at is not None:
                    watch.sink.tick()  # the pause's silence, written as it passes
                    watch.last = now
                elif not watch.idle and now - watch.last >= self.config.idle_timeout_s:
                    watch.idle = True
                    log.info("ingest %s call %s: nothing for %.0f s, ending it", watch.source,
                             watch.sink.call_id, self.config.idle_timeout_s)  # fmt: skip
                    watch.close()

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.debug("ingest: closing a connection: %s", task.exception())

    # --- AudioSocket (TCP) --------------------------------------------------------------
    async def start_audiosocket(self) -> None:
        """Listen for AudioSocket when a port is configured."""
        config = self.config
        if config.audiosocket_port is None:
            return
        self.tcp = await asyncio.start_server(
            self._audiosocket, config.audiosocket_host, config.audiosocket_port
        )
        self.audiosocket_port = self.tcp.sockets[0].getsockname()[1]
        log.info("ingest: AudioSocket on %s:%d", config.audiosocket_host, self.audiosocket_port)

    async def _audiosocket(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        peer = writer.get_extra_info("peername")
        address = str(peer[0]) if peer else "?"
        allow = self.config.audiosocket_allow
        if allow and address not in allow:
            log.info("ingest audiosocket from %s refused: address not allowed", address)
            writer.close()
            return
        if not self.admit():
            log.warning("ingest audiosocket from %s refused: %d calls open", address, self.active)
            writer.close()
            return
        self.writers.add(writer)
        try:
            await self._run_tcp(reader, writer, address)
        finally:
            self.writers.discard(writer)
            self.release()
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _run_tcp(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: str
    ) -> None:
        from callstream.ingest.audiosocket import AudioSocketConnection

        async def send(data: str | bytes) -> None:
            writer.write(data if isinstance(data, bytes) else data.encode())

        core = AudioSocketConnection()
        watch = self._open_call("audiosocket", writer.close)
        sink = watch.sink
        loop = asyncio.get_running_loop()
        reason = "disconnected"
        try:
            while True:
                try:
                    data = await reader.read(65536)
                except ConnectionError:
                    data = b""
                watch.last = loop.time()
                if not data:
                    await _handle(sink, _peer_gone(core.receive_eof(), watch), "audiosocket")
                    break
                events = core.receive_bytes(data)
                close, failed = await self._apply(events, sink, "audiosocket", send)
                if failed is not None:
                    reason = "protocol-error"
                if sink.failed is not None:
                    log.warning("ingest audiosocket call %s: %s", sink.call_id, sink.failed)
                    break
                if close is not None or sink.ended:
                    break
        finally:
            await self._end_call(watch, peer, reason)

    # --- shutdown -----------------------------------------------------------------------
    async def stop(self) -> None:
        """Refuse new connections, close open ones (their calls end and are stored)."""
        self.stopping = True
        if self.tcp is not None:
            self.tcp.close()
        for ws in list(self.sockets):
            with contextlib.suppress(Exception):
                await ws.close(code=1001, message=b"server stopping")
        for writer in list(self.writers):
            writer.close()
        if self._watchdog is not None:
            self._watchdog.cancel()
        for _ in range(100):  # the connections' own tasks end their calls
            if not self.sinks:
                break
            await asyncio.sleep(0.05)
        for sink in list(self.sinks):
            await sink.end("server stopping")


def _peer_gone(events: list[IngestEvent], watch: _Watch) -> list[IngestEvent]:
    """A core's events for a connection that closed: when the watchdog closed it, the
    call the core ends there ended for idling, whatever the core calls a close."""
    if not watch.idle:
        return events
    return [CallEnded("idle") if isinstance(e, CallEnded) else e for e in events]


async def _handle(sink: CallSink, events: list[IngestEvent], source: str) -> bool:
    """The call's part of ``events`` to the sink; False (one log line) when the store
    failed it (the connection is then closed with 1011)."""
    try:
        await sink.handle([e for e in events if not isinstance(e, Reply | Close | ProtocolError)])
    except Exception as exc:
        log.warning("ingest %s call %s: %s: %s", source, sink.call_id, type(exc).__name__, exc)
        return False
    return True


def mount_ingest(app: web.Application, state: ServerState) -> None:
    """Add the ingest gateways to the server's application when ``state.config.ingest``
    asks for them (a sub-application under ``/ingest``, and the AudioSocket listener,
    started and stopped with the app)."""
    config: IngestConfig | None = getattr(state.config, "ingest", None)
    if config is None:
        return
    from callstream.voice.server import bus_publisher

    server = IngestServer(config, IngestTarget(state.store, bus_publisher(state.events)))
    sub = web.Application()
    sub[INGEST_SERVER] = server
    for path, gateway in gateways().items():

        async def handler(request: web.Request, gateway: Gateway = gateway) -> web.StreamResponse:
            return await server.handle_ws(request, gateway)

        sub.router.add_get(path.removeprefix(INGEST_PREFIX), handler)

    async def start(_: web.Application) -> None:
        await server.start_audiosocket()
        config.bound_audiosocket_port = server.audiosocket_port
        if server.audiosocket_port is not None:
            print(
                f"callstream ingest: AudioSocket on {config.audiosocket_host}:"
                f"{server.audiosocket_port}",
                file=sys.stderr,
                flush=True,
            )

    async def stop(_: web.Application) -> None:
        await server.stop()

    sub.on_startup.append(start)
    sub.on_shutdown.append(stop)
    app.add_subapp(INGEST_PREFIX, sub)
