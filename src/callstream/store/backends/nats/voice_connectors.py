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

What the bucket held when this node last saw it (document and revision per connector) is
kept beside the registry (``voice-connectors-cluster.json``), so a node that starts again
tells a change made to its registry while it was stopped (``callstream voice-connectors
delete`` with the server down) from a change the cluster made meanwhile: the first is
published, the second applied. An entry older than what the node already has (an echo of
its own put, a late delivery) is never applied.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING, Any

import nats.js.errors as js_errors
from nats.js.api import KeyValueConfig, StorageType

from callstream.durable import replace_file
from callstream.voice.connectors import VoiceConnectorRegistry

if TYPE_CHECKING:
    from nats.js.kv import KeyValue

    from callstream.store.backends.nats.store import NatsStore

__all__ = ["ClusterVoiceConnectors", "bucket"]

log = logging.getLogger("callstream.voice")

RECONCILE_S = 2.0
"""Changes written to the registry file by another process (the CLI) are published
within this; changes made through the server's registry at once."""
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
        self.state_path = Path(registry.path).with_name("voice-connectors-cluster.json")
        self._kv: KeyValue | None = None
        # what the bucket holds, as last seen: document and revision per connector
        self._known: dict[str, dict[str, Any]] = {}
        self._rev: dict[str, int] = {}
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
        saved = await asyncio.to_thread(self._load_state)
        while True:
            try:
                self._kv = await self.store.retrying(self._open_bucket)
                watcher = await self._watch()
                local = await asyncio.to_thread(self.registry.documents)
                async for entry in watcher:
                    if entry is None:  # the bucket's current contents are in
                        break
                    vc_id = entry.key[len(_PREFIX) :]
                    base = saved.get(vc_id)
                    if base is not None and local.get(vc_id) != base:
                        continue  # changed here while stopped: this node's change is published
                    await self._take(
                        entry.key, entry.value, entry.operation, entry.revision, save=False
                    )
                for vc_id, base in saved.items():  # deleted here while stopped
                    if vc_id not in local and vc_id not in self._known:
                        self._known[vc_id] = base
                await self._publish_local()
                await asyncio.to_thread(self._save_state, dict(self._known))
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
        await self._stop_watching()

    async def _watch(self) -> Any:
        await self._stop_watching()
        assert self._kv is not None
        self._watcher = await self.store.retrying(self._kv.watchall)
        return self._watcher

    async def _stop_watching(self) -> None:
        watcher, self._watcher = self._watcher, None
        if watcher is not None:  # its subscription would hold up the store's drain
            with contextlib.suppress(Exception):
                await watcher.stop()

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

    # --- what this node last saw of the bucket -----------------------------------------------
    def _load_state(self) -> dict[str, dict[str, Any]]:
        try:
            raw = json.loads(self.state_path.read_text())
            return {str(k): dict(v) for k, v in raw["known"].items()}
        except FileNotFoundError:
            return {}
        except (ValueError, KeyError, TypeError, AttributeError) as err:
            log.warning("%s is unreadable (%s): the cluster's connectors win", self.state_path, err)
            return {}

    def _save_state(self, known: dict[str, dict[str, Any]]) -> None:
        body = json.dumps({"known": known}, separators=(",", ":")).encode()
        replace_file(self.state_path, body, mode=0o600)

    # --- the bucket -> this registry ----------------------------------------------------------
    async def _take(
        self,
        key: str,
        value: bytes | None,
        operation: str | None,
        revision: int | None,
        *,
        save: bool = True,
    ) -> None:
        if not key.startswith(_PREFIX):
            return
        vc_id = key[len(_PREFIX) :]
        async with self._lock:
            if revision is not None and revision <= self._rev.get(vc_id, 0):
                return  # this node's own put, or older than what it has
            try:
                if operation in _OPS_DELETED or not value:
                    await asyncio.to_thread(self.registry.apply, vc_id, None)
                    self._known.pop(vc_id, None)
                else:
                    document = json.loads(value)
                    await asyncio.to_thread(self.registry.apply, vc_id, document)
                    self._known[vc_id] = document
                if revision is not None:
                    self._rev[vc_id] = revision
                if save:  # joining saves once, after the bucket's contents are in
                    await asyncio.to_thread(self._save_state, dict(self._known))
            except (ValueError, TypeError) as err:
                log.warning("voice connector %s from the cluster is malformed: %s", vc_id, err)
            except (sqlite3.Error, OSError) as err:  # the registry is busy: the next pass
                log.warning(
                    "voice connector %s: cannot apply the cluster's change (%s)", vc_id, err
                )

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
                watcher = await self._watch()

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
            changed = False
            for vc_id, document in local.items():
                if self._known.get(vc_id) != document:
                    payload = json.dumps(document, separators=(",", ":")).encode()
                    revision = await self.store.retrying(kv.put, _PREFIX + vc_id, payload)
                    self._rev[vc_id] = max(self._rev.get(vc_id, 0), revision)
                    self._known[vc_id] = document
                    changed = True
            for vc_id in [v for v in self._known if v not in local]:
                await self.store.retrying(kv.delete, _PREFIX + vc_id)
                del self._known[vc_id]
                changed = True
            if changed:
                await asyncio.to_thread(self._save_state, dict(self._known))
