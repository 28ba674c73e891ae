"""Connection limits: what stands between the network and aiohttp's request handlers.

aiohttp bounds neither how long a client may take to send its request headers nor how
many connections one client may hold, and an accept that fails at the descriptor limit
logs a full traceback per attempt. :class:`ConnectionGuard` adds, per listening socket:

* a **per-client cap**: a client address holding ``max_per_client`` connections has
  further ones closed at once (one log line per client and minute);
* a **header timeout**: a connection that has not completed its first request's headers
  within ``header_timeout_s`` is closed (idle keep-alive connections are closed by
  aiohttp's ``keepalive_timeout``, and slow bodies by the handlers);
* **descriptor watch**: one warning line when open descriptors pass 80 % of the limit,
  and one line instead of a traceback when an accept fails for lack of descriptors
  (and none for the retries asyncio left pending when the server closes).

The guard wraps each aiohttp :class:`~aiohttp.web.RequestHandler` in a small protocol
that forwards every call unchanged; nothing of aiohttp's internals is touched.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import resource
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

__all__ = ["ConnectionGuard", "GuardedSite", "Limits", "ServerLog", "open_descriptors"]

log = logging.getLogger("callstream.api")

WARN_EVERY_S = 60.0
"""Repeated warnings of one kind (per client, descriptor limit) at most this often."""
DESCRIPTOR_WARN_FRACTION = 0.8


@dataclass(frozen=True, slots=True)
class Limits:
    """Connection limits (``callstream serve`` flags)."""

    header_timeout_s: float = 10.0
    """A new connection must complete its first request's headers within this."""
    max_per_client: int = 0
    """Connections one client address may hold; 0: a quarter of the descriptor limit."""

    def per_client(self) -> int:
        """The effective per-client cap."""
        if self.max_per_client > 0:
            return self.max_per_client
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft == resource.RLIM_INFINITY:
            return 16384
        return max(64, soft // 4)


def open_descriptors() -> int | None:
    """Descriptors this process has open (None where /proc is not available)."""
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return None


class ServerLog(logging.LoggerAdapter):  # type: ignore[type-arg]
    """aiohttp's request-handler logger, without tracebacks for what clients did.

    aiohttp logs a malformed request (bad request line, header or chunk framing) and a
    client that disconnects mid-request with a full traceback at ERROR. Those are the
    client's doing and arrive as fast as a client can send garbage: they become one
    DEBUG line. Everything else is logged as aiohttp logs it."""

    def __init__(self) -> None:
        super().__init__(logging.getLogger("aiohttp.server"), {})

    def exception(self, msg: object, *args: object, **kw: Any) -> None:
        exc_info = kw.get("exc_info")
        exc = exc_info if isinstance(exc_info, BaseException) else sys.exc_info()[1]
        if isinstance(exc, HttpProcessingError | ConnectionError):
            self.logger.debug("%s (%s)", msg, exc)
            return
        super().exception(msg, *args, **kw)


class _Guarded(asyncio.Protocol):
    """One accepted connection: admission, the header timer, then pure forwarding."""

    __slots__ = ("_guard", "_inner", "_peer", "_timer", "transport")

    def __init__(self, guard: ConnectionGuard, inner: asyncio.Protocol) -> None:
        self._guard = guard
        self._inner: asyncio.Protocol | None = inner
        self._peer: str | None = None
        self._timer: asyncio.TimerHandle | None = None
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        peer = transport.get_extra_info("peername")
        host = str(peer[0]) if isinstance(peer, tuple) and peer else "?"
        if not self._guard._admit(host):
            self._inner = None
            transport.abort()
            return
        self._peer = host
        self.transport = transport
        self._guard._connections[transport] = self
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(self._guard.limits.header_timeout_s, self._header_timeout)
        assert self._inner is not None
        self._inner.connection_made(transport)

    def request_started(self) -> None:
        """The first request's headers are complete."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _header_timeout(self) -> None:
        self._timer = None
        if self.transport is not None and not self.transport.is_closing():
            log.debug("closing %s: no request headers within the header timeout", self._peer)
            self.transport.abort()

    def data_received(self, data: bytes) -> None:
        if self._inner is not None:
            self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._inner is not None else None

    def pause_writing(self) -> None:
        if self._inner is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._inner is not None:
            self._inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        inner, self._inner = self._inner, None
        if self._peer is not None:
            self._guard._release(self._peer)
            if self.transport is not None:
                self._guard._connections.pop(self.transport, None)
        self.transport = None
        if inner is not None:
            inner.connection_lost(exc)


class ConnectionGuard:
    """Connection accounting shared by a server's sites (see the module docstring)."""

    def __init__(self, limits: Limits | None = None) -> None:
        self.limits = limits or Limits()
        self.max_per_client = self.limits.per_client()
        self._per_client: dict[str, int] = {}
        self._connections: dict[asyncio.BaseTransport, _Guarded] = {}
        self._warned: dict[str, float] = {}
        self.refused = 0
        """Connections closed at once because their client was at its cap."""

    def protocol_factory(self, make: Callable[[], asyncio.Protocol]) -> Callable[[], _Guarded]:
        """Wrap aiohttp's protocol factory."""
        return lambda: _Guarded(self, make())

    def request_started(self, transport: asyncio.BaseTransport | None) -> None:
        """Called for every request whose headers are complete (stops the header timer)."""
        if transport is not None:
            guarded = self._connections.get(transport)
            if guarded is not None:
                guarded.request_started()

    def connections(self, host: str) -> int:
        """Open connections of one client address."""
        return self._per_client.get(host, 0)

    def _admit(self, host: str) -> bool:
        n = self._per_client.get(host, 0)
        if n >= self.max_per_client:
            self.refused += 1
            self._warn(
                f"client:{host}",
                "client %s holds %d connections (the per-client limit): closing new ones",
                host,
                n,
            )
            return False
        self._per_client[host] = n + 1
        return True

    def _release(self, host: str) -> None:
        n = self._per_client.get(host, 0) - 1
        if n > 0:
            self._per_client[host] = n
        else:
            self._per_client.pop(host, None)

    def _warn(self, key: str, message: str, *args: Any) -> None:
        now = time.monotonic()
        if now - self._warned.get(key, -WARN_EVERY_S) >= WARN_EVERY_S:
            self._warned[key] = now
            log.warning(message, *args)

    def check_descriptors(self) -> None:
        """Warn (once a minute at most) when open descriptors near the limit."""
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        used = open_descriptors()
        if used is None or soft == resource.RLIM_INFINITY:
            return
        if used >= soft * DESCRIPTOR_WARN_FRACTION:
            self._warn(
                "descriptors",
                "%d of %d file descriptors in use: new connections will soon be refused "
                "(raise the limit with `ulimit -n`)",
                used,
                soft,
            )

    def install_exception_handler(self, loop: asyncio.AbstractEventLoop) -> None:
        """Turn the event loop's per-attempt traceback for an accept that failed for lack
        of descriptors into one warning line a minute; other errors go on as before."""
        previous = loop.get_exception_handler()

        def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
            exc = context.get("exception")
            if isinstance(exc, OSError) and "accept" in str(context.get("message", "")):
                soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
                self._warn(
                    "accept",
                    "cannot accept connections: %s (descriptor limit %d); retrying",
                    exc.strerror or exc,
                    soft,
                )
                return
            if isinstance(exc, ValueError) and _is_accept_retry(context.get("handle")):
                # asyncio schedules one accept retry per failed accept (up to the
                # backlog); a retry that fires after the listening socket closed finds
                # fd -1. The server is gone, so there is nothing left to retry.
                return
            if previous is not None:
                previous(loop, context)
            else:
                loop.default_exception_handler(context)

        loop.set_exception_handler(handler)

    async def watch(self, interval_s: float = 5.0) -> None:
        """Check descriptors every ``interval_s`` (run as a task while serving)."""
        while True:
            self.check_descriptors()
            await asyncio.sleep(interval_s)


def _is_accept_retry(handle: object) -> bool:
    """Whether an event-loop callback is asyncio's retry of a failed accept."""
    callback = getattr(handle, "_callback", None)
    return getattr(callback, "__name__", "") == "_start_serving"


class GuardedSite(web.TCPSite):
    """A TCP site whose connections pass through a :class:`ConnectionGuard`."""

    def __init__(self, runner: web.BaseRunner, guard: ConnectionGuard, *a: Any, **kw: Any):
        super().__init__(runner, *a, **kw)
        self._guard = guard

    async def start(self) -> None:
        """Listen (as :class:`aiohttp.web.TCPSite` does, with the guarded factory)."""
        runner = self._runner
        server = runner.server
        assert server is not None
        await web.BaseSite.start(self)
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self._guard.protocol_factory(server),
            self._host,
            self._port,
            ssl=self._ssl_context,
            backlog=self._backlog,
            reuse_address=self._reuse_address,
            reuse_port=self._reuse_port,
        )
        with contextlib.suppress(AttributeError):
            sockets = self._server.sockets
            self._bound_port = sockets[0].getsockname()[1] if sockets else self._port
