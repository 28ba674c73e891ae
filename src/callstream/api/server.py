"""Running the server: ``callstream serve``, and a background-thread server for embedding
and tests."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import resource
import signal
import ssl
import threading
from collections.abc import Coroutine, Mapping
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import web

from callstream.analytics.callstore import CallStore
from callstream.api.app import ServerConfig, ServerState, build_app, store_config
from callstream.api.connections import ConnectionGuard, GuardedSite, Limits, ServerLog
from callstream.api.memory import hygiene_forever, malloc_trim, tune_collector
from callstream.events.bus import EventBus
from callstream.flows.instances import open_instances
from callstream.store.backends import open_backend
from callstream.store.contacts import ContactStore
from callstream.store.service import MediaStore
from callstream.voice.connectors import open_registry

T = TypeVar("T")

__all__ = ["DEFAULT_ACCESS_KEY_ID", "DEFAULT_SECRET_ACCESS_KEY", "ServerThread", "serve"]

log = logging.getLogger("callstream.server")

DEFAULT_ACCESS_KEY_ID = "test"
DEFAULT_SECRET_ACCESS_KEY = "test"
"""Development key pair accepted when no credentials are configured (signatures are
still verified); set ``CALLSTREAM_ACCESS_KEY_ID`` / ``CALLSTREAM_SECRET_ACCESS_KEY``."""


def raise_fd_limit(target: int = 65536) -> int:
    """Raise the soft descriptor limit towards the hard one (each live stream holds two
    sockets and a fragment file; a 1024 default would cap a server at a few hundred).
    Returns the soft limit in effect."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = target if hard == resource.RLIM_INFINITY else min(target, hard)
    if soft != resource.RLIM_INFINITY and soft < want:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def stop_on_signals() -> asyncio.Event:
    """An event that SIGINT or SIGTERM sets (on a loop that takes signal handlers): what a
    foreground server waits for before shutting down cleanly."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    return stop


def make_state(data_dir: Path, config: ServerConfig, *, max_streams: int = 10000) -> ServerState:
    """Open the store ``config.store`` names (the embedded one by default) in ``data_dir``
    and wrap it for the API layer (the store starts with the app)."""
    backend = open_backend(
        config.store,
        data_dir,
        region=config.region,
        account_id=config.account_id,
        max_streams=max_streams,
        writer_threads=config.persist_threads,
        nats_replicas=config.store_replicas,
        nats_prefix=config.store_prefix,
        nats_advertise_url=config.public_url,
    )
    # A backend in a cluster keeps nothing here, so the directory may not exist yet.
    Path(data_dir).mkdir(parents=True, exist_ok=True, mode=0o700)
    contacts = ContactStore(Path(data_dir) / "contacts.sqlite3")
    events = EventBus(Path(data_dir) / "events")
    store = MediaStore(backend, config=store_config(config), events=events)
    if config.voice is not None:
        voice = config.voice
        voice.sdr_dir = voice.sdr_dir or Path(data_dir)
        voice.account_id, voice.region = config.account_id, config.region
    voice_connectors = open_registry(
        Path(data_dir), region=config.region, account_id=config.account_id
    )
    return ServerState(
        config=config,
        store=store,
        contacts=contacts,
        events=events,
        voice_connectors=voice_connectors,
        connect=open_instances(Path(data_dir), region=config.region, account_id=config.account_id),
        calls=CallStore(Path(data_dir) / "analytics"),
    )


async def _start(
    state: ServerState,
    host: str,
    port: int,
    ssl_context: ssl.SSLContext | None = None,
    subapps: Mapping[str, web.Application] | None = None,
) -> tuple[web.AppRunner, int]:
    cfg = state.config
    guard = ConnectionGuard(
        Limits(header_timeout_s=cfg.header_timeout_s, max_per_client=cfg.max_client_connections)
    )
    guard.install_exception_handler(asyncio.get_running_loop())
    state.guard = guard
    mounted = dict(subapps or {})
    redirects: dict[str, str] = {}
    if cfg.ui is not None:
        from callstream.web.app import UI_PREFIX, build_web_app

        mounted.setdefault(UI_PREFIX, build_web_app(state, listen_host=host))
        redirects = {"/": f"{UI_PREFIX}/"}
    runner = web.AppRunner(
        build_app(state, subapps=mounted, redirects=redirects),
        access_log=None,
        handle_signals=False,
        keepalive_timeout=cfg.idle_timeout_s,
        logger=ServerLog(),
    )
    await runner.setup()
    site = GuardedSite(runner, guard, host, port, reuse_address=True, ssl_context=ssl_context)
    await site.start()
    return runner, site.port


def serve(
    data_dir: Path,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    config: ServerConfig | None = None,
    max_streams: int = 10000,
    ready: threading.Event | None = None,
    ssl_context: ssl.SSLContext | None = None,
    subapps: Mapping[str, web.Application] | None = None,
) -> None:
    """Run until SIGINT/SIGTERM; the store is closed cleanly on the way out. With
    ``ssl_context`` the port speaks https; ``subapps`` are mounted beside the API."""
    config = config or ServerConfig()
    raise_fd_limit()
    state = make_state(data_dir, config, max_streams=max_streams)

    async def main() -> None:
        runner, bound = await _start(state, host, port, ssl_context, subapps)
        scheme = "https" if ssl_context is not None else "http"
        print(
            f"callstream serving KVS APIs on {scheme}://{host}:{bound} (data: {data_dir})",
            flush=True,
        )
        if config.ui is not None:
            shown = f"[{host}]" if ":" in host else host
            print(f"callstream web UI: {scheme}://{shown}:{bound}/ui/", flush=True)
        stop = stop_on_signals()
        tune_collector()
        hygiene = None
        if config.memory_trim_interval_s > 0:
            hygiene = asyncio.create_task(
                hygiene_forever(malloc_trim(), config.memory_trim_interval_s)
            )
        if ready is not None:
            ready.set()
        try:
            await stop.wait()
        finally:
            if hygiene is not None:
                hygiene.cancel()
            await runner.cleanup()

    try:
        asyncio.run(main())
    finally:
        state.contacts.close()
        state.voice_connectors.close()
        state.connect.close()
        if state.calls is not None:
            state.calls.close()


class ServerThread:
    """A server on a background thread (port 0 picks a free port); for tests and embedding."""

    def __init__(
        self,
        data_dir: Path,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        config: ServerConfig | None = None,
        max_streams: int = 10000,
        ssl_context: ssl.SSLContext | None = None,
        subapps: Mapping[str, web.Application] | None = None,
    ) -> None:
        self.host = host
        self.ssl_context = ssl_context
        self.subapps = subapps
        self.config = config or ServerConfig()
        self.state = make_state(data_dir, self.config, max_streams=max_streams)
        self.port = port
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self._started = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="callstream-server", daemon=True)

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:40123`` (https with a TLS context)."""
        scheme = "https" if self.ssl_context is not None else "http"
        return f"{scheme}://{self.host}:{self.port}"

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._runner, self.port = self._loop.run_until_complete(
                _start(self.state, self.host, self.port, self.ssl_context, self.subapps)
            )
        except BaseException as err:  # surfaced by start()
            self._error = err
            self._started.set()
            return
        self._started.set()
        self._loop.run_forever()
        if self._runner is not None:
            self._loop.run_until_complete(self._runner.cleanup())
        self._loop.close()

    def start(self) -> ServerThread:
        """Start serving; returns once the port is bound."""
        self._thread.start()
        self._started.wait(10)
        if self._error is not None:
            raise self._error
        return self

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the server's event loop and return its result: in-process use
        of :attr:`store` from another thread (tests, embedding)."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    @property
    def store(self) -> MediaStore:
        """The store service the server runs (use it on the server's loop)."""
        return self.state.store

    def stop(self) -> None:
        """Stop serving; the store is closed as the app's clean-up runs."""
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(30)
        self.state.contacts.close()
        self.state.voice_connectors.close()
        self.state.connect.close()
        if self.state.calls is not None:
            self.state.calls.close()

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
