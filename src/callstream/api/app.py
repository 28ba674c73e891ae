"""The KVS-compatible HTTP server: one aiohttp application serving every API on one port.

All KVS APIs are rest-json ``POST``s to fixed paths (kvs-wire §1.2, §2, §3). This module
owns what every request shares: the operation table, SigV4 verification, request IDs and
the error wire format. The handlers live in ``control.py`` (streams), ``media.py``
(PutMedia / GetMedia) and ``archived.py`` (ListFragments, GetMediaForFragmentList, GetClip).
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web

from callstream.api.connections import ConnectionGuard
from callstream.api.errors import KvsError, error_response_parts
from callstream.events.bus import EventBus
from callstream.events.webhooks import Webhook
from callstream.flows.instances import InstanceRegistry
from callstream.store.base import NodeState, StoreError, StreamRecord
from callstream.store.contacts import ContactStore
from callstream.store.service import MediaStore
from callstream.store.uploads import StoreConfig
from callstream.voice.connectors import VoiceConnectorRegistry
from callstream.web.config import UiConfig

if TYPE_CHECKING:
    from callstream.analytics.callstore import CallStore
    from callstream.analytics.service import AnalyticsConfig, CallAnalyticsService
    from callstream.ingest.config import IngestConfig
    from callstream.voice.server import VoiceConfig, VoiceServer

__all__ = ["Handler", "ServerConfig", "ServerState", "build_app", "json_response", "read_json"]

log = logging.getLogger("callstream.api")

Handler = Callable[[web.Request, "ServerState"], Awaitable[web.StreamResponse]]


@dataclass(slots=True)
class ServerConfig:
    """Server settings (``callstream serve`` flags)."""

    region: str = "us-east-1"
    account_id: str = "123456789012"
    max_readers_per_stream: int = 3  # concurrent GetMedia per stream
    max_fragment_list_readers_per_stream: int = 5  # concurrent GetMediaForFragmentList
    live_idle_timeout_s: float = 3.0
    putmedia_idle_ack_s: float = 3.0
    putmedia_idle_close_s: float = 30.0
    reap_interval_s: float = 60.0
    memory_trim_interval_s: float = 30.0  # collect cycles, give freed heap back; 0: never
    persist_threads: int = 2  # writer threads storing completed fragments
    credentials: dict[str, str] | None = None  # access key -> secret; None disables auth
    public_url: str | None = None  # GetDataEndpoint answer; default: the request's base URL
    max_body_bytes: int = 1024 * 1024  # a JSON request body (CTRs: MAX_CONTACT_BODY_BYTES)
    body_timeout_s: float = 30.0  # a JSON request body must arrive within this
    header_timeout_s: float = 10.0  # a new connection must send its request headers within
    idle_timeout_s: float = 30.0  # an idle keep-alive connection is closed after this
    max_client_connections: int = 0  # per client address; 0: a quarter of the fd limit
    store: str = "embedded"  # the store backend: "embedded" or nats://host:4222[,host2...]
    store_replicas: int | None = None  # NATS: copies of each stream (None: 3 in a cluster)
    store_prefix: str | None = None  # NATS: names of this deployment (None: "callstream")
    voice: VoiceConfig | None = None  # the SIP recording server (None: off)
    analytics: AnalyticsConfig | None = None  # the live call transcriber (None: off)
    webhooks: tuple[Webhook, ...] = ()  # call events POSTed to these (cursors in <data>/webhooks)
    ui: UiConfig | None = field(default_factory=UiConfig)  # the web UI at /ui (None: off)
    ingest: IngestConfig | None = None  # Twilio/AudioHook/AudioSocket/WebSocket gateways


def store_config(config: ServerConfig) -> StoreConfig:
    """The store service's settings from the server's."""
    return StoreConfig(
        idle_ack_s=config.putmedia_idle_ack_s,
        idle_close_s=config.putmedia_idle_close_s,
        live_idle_s=config.live_idle_timeout_s,
        max_readers=config.max_readers_per_stream,
        max_list_readers=config.max_fragment_list_readers_per_stream,
        reap_interval_s=config.reap_interval_s,
    )


@dataclass(slots=True)
class ServerState:
    """What handlers share."""

    config: ServerConfig
    store: MediaStore
    contacts: ContactStore
    events: EventBus  # the call-event bus (journal in <data_dir>/events)
    voice_connectors: VoiceConnectorRegistry  # <data_dir>/voice-connectors.sqlite3
    connect: InstanceRegistry  # Connect instances and flows: <data_dir>/connect.sqlite3
    routes: dict[str, Handler] = field(default_factory=dict)
    guard: ConnectionGuard | None = None  # set by the server that listens
    voice: VoiceServer | None = None  # the SIP recording server, while the app runs
    calls: CallStore | None = None  # analysed calls (<data_dir>/analytics)
    analytics: CallAnalyticsService | None = None  # the live call transcriber, while running

    @property
    def data_dir(self) -> Path:
        """The node's data directory (the event journal's parent)."""
        return self.events.journal.directory.parent

    async def run(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run a blocking call (the contact records' SQLite) off the event loop."""
        return await asyncio.to_thread(fn, *args, **kwargs)

    def store_config(self) -> StoreConfig:
        return store_config(self.config)

    def endpoint(self, request: web.Request) -> str:
        """This server's base URL as clients reach it."""
        if self.config.public_url:
            return self.config.public_url.rstrip("/")
        host = request.host
        if ":" not in host.rsplit("]", 1)[-1] and request.transport is not None:
            # The KVS C producer sends Host without the port; answer with the real one.
            sockname = request.transport.get_extra_info("sockname")
            port = sockname[1] if sockname else None
            default = 443 if request.scheme == "https" else 80
            if port and port != default:
                host = f"{host}:{port}"
        return f"{request.scheme}://{host}"

    async def stream(self, body: dict[str, Any]) -> StreamRecord:
        """The stream a request names by ``StreamName`` or ``StreamARN`` (404 if absent)."""
        name = body.get("StreamName")
        arn = body.get("StreamARN")
        if not name and not arn:
            raise KvsError("InvalidArgumentException", "StreamName or StreamARN is required.")
        if name is not None and not isinstance(name, str):
            raise KvsError("InvalidArgumentException", "StreamName must be a string.")
        if arn is not None and not isinstance(arn, str):
            raise KvsError("InvalidArgumentException", "StreamARN must be a string.")
        return await self.store.stream(name=name, arn=arn)


REQUEST_ID = web.RequestKey("callstream.request_id", str)
VERIFIED_BODY = web.RequestKey("callstream.body", bytes)
BODY_SHA256 = web.RequestKey("callstream.body_sha256", str)
STREAMING = web.RequestKey("callstream.streaming", web.StreamResponse)
"""The streamed response a handler prepared (set before ``prepare``)."""
"""Body hash a streaming client declared in its signature (checked by the handler)."""
STATE = web.AppKey("callstream.state", ServerState)


async def start_streaming(request: web.Request, content_type: str) -> web.StreamResponse:
    """Send the 200 of a chunked, streamed response (PutMedia acks, media payloads). After
    this no error response can follow; the middleware cuts the connection instead."""
    response = web.StreamResponse(status=200)
    response.content_type = content_type
    response.headers["x-amzn-RequestId"] = request[REQUEST_ID]
    response.enable_chunked_encoding()
    request[STREAMING] = response
    await response.prepare(request)
    return response


def json_response(payload: dict[str, Any], status: int = 200) -> web.Response:
    """A rest-json success response."""
    return web.Response(
        status=status,
        body=json.dumps(payload, separators=(",", ":")).encode(),
        content_type="application/json",
    )


async def read_json(request: web.Request) -> dict[str, Any]:
    """The request body as a JSON object (read, within its limits, before the handler)."""
    raw: bytes = request[VERIFIED_BODY]
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        raise KvsError("SerializationException", "The request body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise KvsError("SerializationException", "The request body must be a JSON object.")
    return body


async def read_body(request: web.Request, limit: int, timeout_s: float) -> bytes:
    """The whole request body, refused past ``limit`` bytes (by its Content-Length before
    reading anything) or when it does not arrive within ``timeout_s``."""
    too_large = KvsError(
        "RequestEntityTooLargeException",
        f"The request body is larger than this operation accepts ({limit} bytes).",
    )
    length = request.content_length
    if length is not None and length > limit:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(timeout_s):
            while chunk := await request.content.readany():
                size += len(chunk)
                if size > limit:
                    raise too_large
                chunks.append(chunk)
    except TimeoutError:
        raise KvsError(
            "RequestTimeoutException",
            f"The request body did not arrive within {timeout_s:g} seconds.",
        ) from None
    return b"".join(chunks)


CLOSE_AFTER = frozenset({"RequestTimeoutException"})
"""Errors after which the connection is closed at once (the body is not worth waiting
for). After others, aiohttp reads and discards what is left of the body for a while, so
that the client, still sending, gets the answer."""


async def _answer_and_close(request: web.Request, response: web.Response) -> web.Response:
    response.force_close()
    await response.prepare(request)
    await response.write_eof()
    if request.protocol is not None:
        request.protocol.force_close()
    return response


def _error_response(err: KvsError, request_id: str) -> web.Response:
    status, headers, body = error_response_parts(err, request_id)
    return web.Response(status=status, headers=headers, body=body)


STREAMING_PATHS = frozenset({"/putMedia"})
"""Operations whose body is a long-lived stream: authenticated before the body is read."""


def build_app(
    state: ServerState,
    *,
    subapps: Mapping[str, web.Application] | None = None,
    redirects: Mapping[str, str] | None = None,
) -> web.Application:
    """The aiohttp application serving the KVS API and callstream's own (``state.routes``,
    exact paths, SigV4 on every one), with ``subapps`` mounted under their prefixes. A
    sub-application (the web UI, a websocket ingest) brings its own authentication:
    requests routed to it skip the KVS middleware's SigV4. ``redirects`` send a GET of
    an exact path elsewhere (``/`` to the web UI) without authentication."""
    redirect_to = dict(redirects or {})
    from callstream.api import archived, calls, chime, connect, contacts, control, events, media

    routes: dict[str, Handler] = {}
    routes.update(control.ROUTES)
    routes.update(media.ROUTES)
    routes.update(archived.ROUTES)
    routes.update(contacts.ROUTES)
    routes.update(events.ROUTES)
    routes.update(calls.ROUTES)
    state.routes = routes

    @web.middleware
    async def kvs_middleware(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if state.guard is not None:
            state.guard.request_started(request.transport)
        if len(request.match_info.apps) > 1:  # a sub-application: its own rules
            return await handler(request)
        if request.method in ("GET", "HEAD") and request.path in redirect_to:
            return web.Response(status=302, headers={"Location": redirect_to[request.path]})
        request_id = str(uuid.uuid4())
        request[REQUEST_ID] = request_id
        try:
            await _admit(request, state)
            response = await handler(request)
        except (web.HTTPException, asyncio.CancelledError):
            raise
        except ConnectionError:
            # The client went away (a GetMedia reader that stops reading, an upload cut
            # off): expected, and nothing can be answered.
            log.debug("%s: the client disconnected", request.path)
            streaming_gone: web.StreamResponse | None = request.get(STREAMING)
            return streaming_gone if streaming_gone is not None else web.Response(status=499)
        except Exception as exc:
            streaming: web.StreamResponse | None = request.get(STREAMING)
            if streaming is not None and streaming.prepared:
                # The 200 and part of the body are out: no second response can follow.
                # Cut the connection so the client sees a truncated body, not a clean end.
                log.warning("%s failed mid-stream: %s", request.path, exc)
                if request.transport is not None:
                    request.transport.close()
                return streaming
            if isinstance(exc, KvsError):
                if exc.code in CLOSE_AFTER:
                    return await _answer_and_close(request, _error_response(exc, request_id))
                return _error_response(exc, request_id)
            if isinstance(exc, StoreError):
                return _error_response(KvsError(exc.code, exc.message), request_id)
            log.exception("internal error")
            return _error_response(KvsError("InternalFailure", "Internal failure."), request_id)
        if not response.prepared:
            response.headers["x-amzn-RequestId"] = request_id
        return response

    app = web.Application(middlewares=[kvs_middleware], client_max_size=64 * 1024 * 1024)
    for path, handler in routes.items():  # exact paths; others are unknown operations
        app.router.add_post(path, _bind(handler, state))
    get_routes = {**contacts.GET_ROUTES, **events.GET_ROUTES, **calls.GET_ROUTES}
    for path, get_handler in get_routes.items():
        app.router.add_get(path, _bind(get_handler, state))
    for method, path, chime_handler in chime.ROUTES:  # chime-sdk-voice: rest-json, path params
        app.router.add_route(method, path, _bind(chime_handler, state))
    for method, path, connect_handler in connect.ROUTES:  # Amazon Connect: rest-json
        app.router.add_route(method, path, _bind(connect_handler, state))
    app[STATE] = state
    for prefix, subapp in (subapps or {}).items():
        app.add_subapp(prefix, subapp)
    if state.config.ingest is not None:
        from callstream.ingest.server import mount_ingest

        mount_ingest(app, state)  # /ingest/* and the AudioSocket port

    async def store(app: web.Application) -> Any:
        await state.store.start()
        yield
        await state.store.close()

    async def cluster(app: web.Application) -> Any:
        """A backend that other nodes share (NATS) keeps this node's events and voice
        connectors the same as theirs."""
        node = NodeState(state.events, state.voice_connectors, state.data_dir)
        membership = state.store.backend.join(node)
        if membership is None:
            yield
            return
        await membership.start()
        yield
        await membership.close()

    async def descriptor_watch(app: web.Application) -> Any:
        task = asyncio.create_task(state.guard.watch()) if state.guard is not None else None
        yield
        if task is not None:
            task.cancel()

    async def end_uploads(app: web.Application) -> None:
        """Before connections are torn down: end every upload the way a newer one would,
        so the fragments each one completed are stored and acked."""
        await state.store.stop_uploads()

    async def voice_server(app: web.Application) -> Any:
        voice_config = state.config.voice
        if voice_config is None:
            yield
            return
        from callstream.flows.store import LocalCallStore
        from callstream.voice.server import VoiceServer, bus_publisher

        voice = VoiceServer(
            LocalCallStore(state.store, publish=bus_publisher(state.events)),
            state.voice_connectors,
            voice_config,
        )
        await voice.start()
        state.voice = voice
        yield
        await stop_voice(app)

    async def stop_voice(app: web.Application) -> None:
        """Before uploads are ended: hang up calls, so their legs end cleanly."""
        voice, state.voice = state.voice, None
        if voice is not None:
            await voice.stop()

    async def call_analytics(app: web.Application) -> Any:
        config = state.config.analytics
        if config is None or not config.enabled or state.calls is None:
            yield
            return
        from callstream.analytics.service import CallAnalyticsService

        service = CallAnalyticsService(state.store, state.events, state.calls, config)
        await service.start()
        state.analytics = service
        yield
        state.analytics = None
        await service.stop()

    app.on_shutdown.append(stop_voice)
    app.on_shutdown.append(connect.stop_contacts)  # hang up contacts the server placed
    app.on_shutdown.append(end_uploads)
    app.on_shutdown.append(events.end_streams)  # SSE responses end before the server waits
    app.cleanup_ctx.append(events.lifecycle)  # first in, last out: the bus outlives the rest
    app.cleanup_ctx.append(store)
    app.cleanup_ctx.append(cluster)
    app.cleanup_ctx.append(descriptor_watch)
    app.cleanup_ctx.append(call_analytics)
    app.cleanup_ctx.append(voice_server)
    return app


def _bind(
    handler: Handler, state: ServerState
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def bound(request: web.Request) -> web.StreamResponse:
        return await handler(request, state)

    return bound


async def _admit(request: web.Request, state: ServerState) -> None:
    """Authenticate the request and read its body, in the order that keeps a request
    without valid credentials from costing more than its headers.

    1. SigV4 parameters checked from the headers alone: missing or malformed
       authentication, an unknown access key, a wrong scope or a stale date are refused
       before a byte of the body is read.
    2. Streamed uploads (PutMedia) are verified from the headers (the producer SDKs sign
       the empty payload or declare the body's hash, which the handler then checks).
    3. Every other body is read whole, at most ``limit_for(path)`` bytes within
       ``body_timeout_s``, and the signature verified over its SHA-256 (a declared hash
       is checked before the body is read).
    """
    from callstream.api import chime, connect, sigv4

    path = request.path
    connect_path = connect.is_connect_path(path)  # Amazon Connect, signed as "connect"
    chime_path = not connect_path and chime.is_chime_path(path)  # chime-sdk-voice: "chime"
    creds = state.config.credentials
    pending = None
    if creds is not None:
        raw_path, _, query = request.raw_path.partition("?")
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.raw_headers]
        pending = sigv4.check_headers(
            request.method,
            raw_path,
            query,
            headers,
            credentials=creds.get,
            service=sigv4.CHIME_SERVICE
            if chime_path
            else connect.SIGNING_NAME
            if connect_path
            else sigv4.DEFAULT_SERVICE,
        )
        if path in STREAMING_PATHS:
            result = pending.verify_streamed()
            if result.body_sha256_expected:
                request[BODY_SHA256] = result.body_sha256_expected
            return
        pending.require_signed_body()
        if pending.declares_body_hash:
            pending.verify_declared()
    elif path in STREAMING_PATHS:
        return
    if chime_path or connect_path:
        if request.match_info.http_exception is not None:  # no such method + path
            raise KvsError(
                "UnknownOperationException", f"Unknown operation {request.method} {path}."
            )
    elif request.method == "POST" and path not in state.routes:
        raise KvsError("UnknownOperationException", f"Unknown operation {path}.")
    body = b""
    if request.body_exists:
        limit = BODY_LIMITS.get(path, state.config.max_body_bytes)
        body = await read_body(request, limit, state.config.body_timeout_s)
    if pending is not None:
        pending.verify_body(body)
    request[VERIFIED_BODY] = body


MAX_CONTACT_BODY_BYTES = 2 * 1024 * 1024
"""A contact record is at most 1 MiB of compact JSON; its request may be laid out."""
BODY_LIMITS: dict[str, int] = {
    "/callstream/contacts": MAX_CONTACT_BODY_BYTES,
    "/callstream/connect/calls": 64 * 1024 * 1024,  # a call to a number carries its audio
}
"""Request-body limits that differ from ``ServerConfig.max_body_bytes``."""
