"""The NATS JetStream backend behind the async seam: :class:`NatsStore`.

Several ``callstream serve`` nodes with the same ``--store nats://...`` (and the same
master key file) act as one store: the catalog is a KV bucket
(:mod:`.catalog`), fragments are JetStream messages (:mod:`.fragments`), and live
fragments travel between nodes over core NATS (:mod:`.live`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, ParamSpec, TypeVar

import nats
import nats.errors
import nats.js.errors as js_errors
from nats.js.api import KeyValueConfig, StorageType

from callstream.store.backends.nats import names
from callstream.store.backends.nats.catalog import NatsCatalog
from callstream.store.backends.nats.fragments import NatsLog
from callstream.store.backends.nats.live import NatsRelay
from callstream.store.base import NodeState, StoreError
from callstream.store.crypto import Keyring

if TYPE_CHECKING:
    from nats.aio.client import Client
    from nats.js.client import JetStreamContext
    from nats.js.kv import KeyValue

    from callstream.store.backends.nats.membership import NatsMembership

__all__ = ["DEFAULT_MAX_PAYLOAD", "OPERATION_DEADLINE_S", "NatsStore"]

_P = ParamSpec("_P")
_T = TypeVar("_T")

OPERATION_DEADLINE_S = 30.0
"""How long a catalog or index operation is retried while NATS fails over (a server
died, JetStream elects new leaders) before it fails with :class:`StoreError`."""
_TRANSIENT = (
    TimeoutError,
    nats.errors.TimeoutError,
    nats.errors.NoRespondersError,
    nats.errors.ConnectionClosedError,
    nats.errors.ConnectionReconnectingError,
    nats.errors.StaleConnectionError,
    js_errors.NoStreamResponseError,
    js_errors.ServiceUnavailableError,
)

log = logging.getLogger("callstream.store.nats")

DEFAULT_MAX_PAYLOAD = 1024 * 1024
"""nats-server's default ``max_payload``; larger fragments are stored in parts."""


class NatsStore:
    """:class:`~callstream.store.base.StoreBackend` on a NATS JetStream cluster.

    ``servers`` are ``nats://host:port`` seed URLs (the client learns the rest of the
    cluster from them and fails over between them); ``replicas`` is the copies JetStream
    keeps of each stream (None: 3 when the cluster has at least 3 servers, else 1);
    ``prefix`` names this deployment's bucket, streams and subjects; ``keyring`` holds
    the master keys (the same file on every node); ``advertise_url`` is where clients
    reach this node (``serve --public-url``): GetDataEndpoint on another node sends live
    GetMedia readers of a stream this node ingests here.
    """

    def __init__(
        self,
        servers: tuple[str, ...],
        *,
        keyring: Keyring,
        region: str = "us-east-1",
        account_id: str = "123456789012",
        max_streams: int = 10000,
        replicas: int | None = None,
        prefix: str = names.DEFAULT_PREFIX,
        user: str | None = None,
        password: str | None = None,
        connect_timeout_s: float = 5.0,
        advertise_url: str | None = None,
    ) -> None:
        if replicas is not None and not 1 <= replicas <= 5:
            raise ValueError(f"NATS replicas must be 1..5, got {replicas}")
        self.servers = servers
        self.keyring = keyring
        self.region = region
        self.account_id = account_id
        self.max_streams = max_streams
        self.prefix = names.check_prefix(prefix)
        self.advertise_url = advertise_url.rstrip("/") if advertise_url else None
        self._replicas = replicas
        self._user = user
        self._password = password
        self._connect_timeout_s = connect_timeout_s
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._kv: KeyValue | None = None
        self._catalog = NatsCatalog(self)
        self._log = NatsLog(self)
        self._relay = NatsRelay(self)
        self.replicas = replicas or 1
        self.max_payload = DEFAULT_MAX_PAYLOAD
        self.closed = False

    # --- StoreBackend ------------------------------------------------------------------------
    @property
    def catalog(self) -> NatsCatalog:
        return self._catalog

    @property
    def log(self) -> NatsLog:
        return self._log

    @property
    def relay(self) -> NatsRelay:
        return self._relay

    def join(self, node: NodeState) -> NatsMembership:
        """The node's events relayed between the nodes and its voice connectors shared
        (:mod:`~callstream.store.backends.nats.membership`); start it after the store."""
        from callstream.store.backends.nats.membership import NatsMembership

        return NatsMembership(self, node)

    @property
    def nc(self) -> Client:
        if self._nc is None:
            raise StoreError("the NATS store is not started")
        return self._nc

    @property
    def js(self) -> JetStreamContext:
        if self._js is None:
            raise StoreError("the NATS store is not started")
        return self._js

    @property
    def kv(self) -> KeyValue:
        if self._kv is None:
            raise StoreError("the NATS store is not started")
        return self._kv

    async def retrying(
        self, fn: Callable[_P, Awaitable[_T]], *args: _P.args, **kwargs: _P.kwargs
    ) -> _T:
        """``await fn(*args, **kwargs)``, retried through NATS fail-overs (timeouts, no
        responders, JetStream without a leader) for :data:`OPERATION_DEADLINE_S`; then
        :class:`StoreError`. Other errors (not found, wrong revision) pass at once."""
        deadline = time.monotonic() + OPERATION_DEADLINE_S
        delay = 0.05
        while True:
            try:
                return await fn(*args, **kwargs)
            except _TRANSIENT as err:
                if self.closed:
                    raise StoreError("the store is closed") from None
                if time.monotonic() >= deadline:
                    raise StoreError(f"NATS did not answer: {err!r}") from None
                await asyncio.sleep(delay)
                delay = min(delay * 2, 0.5)

    def check_open(self) -> None:
        if self.closed:
            raise StoreError("the store is closed")
        if self._nc is None:
            raise StoreError("the NATS store is not started")

    async def start(self) -> None:
        """Connect, open (or create) the catalog bucket, start the live relay."""
        if self._nc is not None:
            raise RuntimeError("NatsStore.start() called twice")

        async def disconnected() -> None:
            if not self.closed:
                log.warning("NATS connection lost; reconnecting")

        async def reconnected() -> None:
            url = self._nc.connected_url if self._nc is not None else None
            log.warning("NATS reconnected to %s", url.netloc if url else "?")

        async def error(err: Exception) -> None:
            log.debug("NATS: %r", err)

        try:
            nc = await nats.connect(
                servers=list(self.servers),
                user=self._user,
                password=self._password,
                connect_timeout=self._connect_timeout_s,
                allow_reconnect=True,
                max_reconnect_attempts=3,  # the first connection; forever once connected
                reconnect_time_wait=0.25,
                disconnected_cb=disconnected,
                reconnected_cb=reconnected,
                error_cb=error,
                name="callstream",
                # A node's own live events are for the other nodes: not delivered back.
                no_echo=True,
            )
        except Exception as err:
            raise StoreError(
                f"cannot connect to NATS at {', '.join(self.servers)}: {err or type(err).__name__}"
            ) from None
        nc.options["max_reconnect_attempts"] = -1
        self._nc = nc
        self.max_payload = int(nc.max_payload or DEFAULT_MAX_PAYLOAD)
        if self._replicas is None:
            info = getattr(nc, "_server_info", {}) or {}
            known = set(info.get("connect_urls") or ())
            self.replicas = 3 if len(known) >= 3 else 1
        self._js = nc.jetstream(timeout=5.0)
        try:
            self._kv = await self._open_bucket()
        except StoreError:
            await nc.close()
            raise
        self._relay.start()

    async def _open_bucket(self) -> KeyValue:
        js = self.js
        name = names.bucket(self.prefix)
        for _ in range(120):  # 30 s
            try:
                return await js.key_value(name)
            except js_errors.BucketNotFoundError:
                pass
            except _TRANSIENT:
                await asyncio.sleep(0.25)  # JetStream (or its meta leader) is not up yet
                continue
            except js_errors.APIError as err:
                raise StoreError(f"NATS JetStream: {err.description}") from None
            except Exception as err:
                raise StoreError(f"NATS JetStream is not available: {err!r}") from None
            try:
                return await js.create_key_value(
                    KeyValueConfig(
                        bucket=name, history=1, storage=StorageType.FILE, replicas=self.replicas
                    )
                )
            except _TRANSIENT:
                await asyncio.sleep(0.25)
                continue
            except js_errors.APIError as err:
                # 503: no meta leader yet; 10005: the servers of a new cluster do not
                # know each other yet ("no suitable peers for placement")
                if err.code == 503 or err.err_code == 10005:
                    await asyncio.sleep(0.25)
                    continue
                if err.err_code != 10058:  # created by another node meanwhile
                    raise StoreError(
                        f"cannot create the catalog bucket: {err.description}"
                    ) from None
        raise StoreError("NATS JetStream did not become available")

    async def close(self) -> None:
        """Stop the relay and drain the connection (idempotent)."""
        if self.closed:
            return
        self.closed = True
        await self._relay.close()
        if self._nc is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._nc.drain(), 5.0)
            with contextlib.suppress(Exception):
                await self._nc.close()

    @classmethod
    def default_keyring(cls, data_dir: Path) -> Keyring:
        """``<data_dir>/keys.json``, as the embedded store (copy it to every node)."""
        return Keyring(Path(data_dir) / "keys.json")
