"""Voice connectors the same on every node of a cluster: :class:`ClusterVoiceConnectors`.

Each node keeps its voice connectors in its own SQLite registry
(:class:`~callstream.voice.connectors.VoiceConnectorRegistry`), which the SIP server
resolves every INVITE against. With the NATS store the registries are kept equal through
the KV bucket ``<prefix>_voice`` (one key ``vc.<id>`` per connector, its stored row as
JSON): a change made on any node (through ``chime-sdk-voice`` or the CLI) is put in the
bucket, and every node applies what the bucket holds to its registry. So a connector
created with boto3 on one node takes SIPREC calls on every node, and its streaming
configuration, tags and deletion follow. Concurrent changes of one connector on two nodes:
the bucket's last write wins on every node.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import TYPE_CHECKING, Any

import nats.js.errors as js_errors
from nats.js.api import KeyValueConfig, StorageType

from callstream.voice.connectors import VoiceConnectorRegistry

if TYPE_CHECKING:
    from nats.js.kv import KeyValue

    from callstream.store.backends.nats.store import NatsStore

__all__ = ["ClusterVoiceConnectors", "bucket"]

log = logging.getLogger("callstream.voice")

RECONCILE_S = 2.0
"""Changes written to the registry file by another process (the CLI) are published
within this; changes made through the server's registry at once."""
INITIAL_S = 10.0
"""How long a starting node waits for the bucket's contents before it publishes its own."""
_PREFIX = "vc."
_OPS_DELETED = ("DEL", "PURGE")


def bucket(prefix: str) -> str:
    return f"{prefix}_voice"


class ClusterVoiceConnectors:
    """Keeps ``registry`` equal to the cluster's voice connectors (see the module
    docstring). :meth:`start`, then :meth:`close`."""

    def __init__(self, store: NatsStore, registry: VoiceConnectorRegistry) -> None:
        self.store = store
        self.registry = registry
        self._kv: KeyValue | None = None
        self._known: dict[str, dict[str, Any]] = {}  # what the bucket holds, as last seen
        # revisions this node put: their echo must not undo a change made here since
        self._mine: set[int] = set()
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._watcher: Any = None
        self.ready = asyncio.Event()
        """Set once the registry holds what the cluster had when this node started."""

    async def start(self) -> None:
        """Start following the cluster (in the background: a node whose NATS is slow to
        answer still starts; its registry catches up)."""
        loop = asyncio.get_running_loop()

        def wake() -> None:
            loop.call_soon_threadsafe(self._wake.set)

        self.registry.on_change = wake
        self._tasks = [asyncio.create_task(self._run(), name="callstream-voice-connectors")]

    async def _run(self) -> None:
        """Take what the bucket holds, publish what only this node has, then follow both."""
        while True:
            try:
                self._kv = await self.store.retrying(self._open_bucket)
                watcher = self._watcher = await self.store.retrying(self._kv.watchall)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(INITIAL_S):
                        async for entry in watcher:
                            if entry is None:  # the bucket's current contents are in
                                break
                            await self._take(
                                entry.key, entry.value, entry.operation, entry.revision
                            )
                await self._publish_local()
                break
            except asyncio.CancelledError:
                raise
            except Exception as err:
                log.warning("voice connectors: cannot join the cluster's (%s); retrying", err)
                await asyncio.sleep(1.0)
        self.ready.set()
        follower = asyncio.create_task(self._follow(watcher), name="callstream-voice-follow")
        self._tasks.append(follower)
        await self._publish_forever()

    async def close(self) -> None:
        self.registry.on_change = None
        for task in reversed(self._tasks):
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._watcher is not None:  # its subscription would hold up the store's drain
            with contextlib.suppress(Exception):
                await self._watcher.stop()

    async def _open_bucket(self) -> KeyValue:
        js, name = self.store.js, bucket(self.store.prefix)
        try:
            return await js.key_value(name)
        except js_errors.BucketNotFoundError:
            pass
        config = KeyValueConfig(
            bucket=name, history=1, storage=StorageType.FILE, replicas=self.store.replicas
        )
        try:
            return await js.create_key_value(config)
        except js_errors.APIError as err:
            if err.err_code != 10058:  # created by another node meanwhile
                raise
            return await js.key_value(name)

    # --- the bucket -> this registry ----------------------------------------------------------
    async def _take(
        self, key: str, value: bytes | None, operation: str | None, revision: int | None
    ) -> None:
        if not key.startswith(_PREFIX):
            return
        vc_id = key[len(_PREFIX) :]
        async with self._lock:
            if revision in self._mine:
                self._mine.discard(revision)
                return
            try:
                if operation in _OPS_DELETED or not value:
                    await asyncio.to_thread(self.registry.apply, vc_id, None)
                    self._known.pop(vc_id, None)
                    return
                document = json.loads(value)
                await asyncio.to_thread(self.registry.apply, vc_id, document)
                self._known[vc_id] = document
            except (ValueError, TypeError) as err:
                log.warning("voice connector %s from the cluster is malformed: %s", vc_id, err)

    async def _follow(self, watcher: Any) -> None:
        while True:
            try:
                async for entry in watcher:
                    if entry is not None:
                        await self._take(entry.key, entry.value, entry.operation, entry.revision)
            except asyncio.CancelledError:
                raise
            except Exception as err:  # the watch broke (NATS failed over): watch again
                log.warning("voice connectors: cluster watch failed (%s); retrying", err)
            await asyncio.sleep(1.0)
            with contextlib.suppress(Exception):
                assert self._kv is not None
                watcher = self._watcher = await self._kv.watchall()

    # --- this registry -> the bucket ----------------------------------------------------------
    async def _publish_forever(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(RECONCILE_S):
                    await self._wake.wait()
            self._wake.clear()
            try:
                await self._publish_local()
            except asyncio.CancelledError:
                raise
            except Exception as err:
                log.warning("voice connectors: cannot publish to the cluster (%s)", err)

    async def _publish_local(self) -> None:
        """Put every connector that differs from what the bucket holds; delete from the
        bucket what this node deleted. Holds the lock while it puts, so the echo of a put
        is recognised as this node's own."""
        assert self._kv is not None
        kv = self._kv
        async with self._lock:
            local = await asyncio.to_thread(self.registry.documents)
            for vc_id, document in local.items():
                if self._known.get(vc_id) != document:
                    payload = json.dumps(document, separators=(",", ":")).encode()
                    self._mine.add(await self.store.retrying(kv.put, _PREFIX + vc_id, payload))
                    self._known[vc_id] = document
            for vc_id in [v for v in self._known if v not in local]:
                await self.store.retrying(kv.delete, _PREFIX + vc_id)
                del self._known[vc_id]
