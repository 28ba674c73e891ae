"""Live fragments between callstream nodes over core NATS: :class:`NatsRelay`.

The producer's node publishes every change of a live fragment on the stream's live
subject (``<prefix>.live.<id>``): opened (the prefix, as readers get it), Cluster bytes
(with their index in the fragment), finished (the trailer and duration), dropped,
persisted; and, when the stream is deleted, its end. A reader's node subscribes to the
subject while it has readers of the stream, asks the producer's node for the fragments
open at that moment (``<prefix>.sync.<id>``: only the producer's node answers) and puts
them in its :class:`~callstream.store.live.LiveHub` as remote fragments, which its readers
follow exactly like local ones.

Core NATS is at-most-once: live bytes are a fast path, never the record. Chunks carry
their index, so a reader's node applies each once and in order; a remote fragment that
hears nothing for :data:`SILENCE_S` (its producer's node died) is dropped, and its
readers end the GetMedia response and resume with their continuation token from what
JetStream stored. Live bytes are plaintext on the wire: protect the links with NATS TLS.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import struct
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import nats.errors
from nats.aio.msg import Msg

from callstream.store.backends.nats import names
from callstream.store.live import LiveChange, LiveFragment, LiveHub

if TYPE_CHECKING:
    from nats.aio.subscription import Subscription

    from callstream.store.backends.nats.store import NatsStore

__all__ = ["LINGER_S", "SILENCE_S", "NatsRelay"]

log = logging.getLogger("callstream.store.nats")

SILENCE_S = 10.0
"""A remote live fragment that hears nothing for this long is dropped."""
LINGER_S = 5.0
"""A node keeps watching a stream this long after its last reader left."""
SYNC_TIMEOUT_S = 1.0
OWNER_TIMEOUT_S = 0.25
"""How long GetDataEndpoint waits for the node of a live producer to name itself."""
_SWEEP_S = 1.0
_LEN = struct.Struct(">I")


@dataclass(slots=True)
class _Watch:
    """A stream this node watches for other nodes' live fragments."""

    arn: str
    hub: LiveHub
    sub: Subscription | None = None
    idle_since: float | None = None
    heard: dict[str, float] = field(default_factory=dict)  # number -> last event time
    pending: dict[str, dict[int, tuple[str, bytes, dict[str, str]]]] = field(
        default_factory=dict
    )  # out-of-order chunks/finishes, by fragment number and chunk index
    ready: asyncio.Event = field(default_factory=asyncio.Event)


def _pack(parts: list[bytes]) -> bytes:
    return b"".join(_LEN.pack(len(p)) + p for p in parts)


def _unpack(data: bytes) -> list[bytes]:
    out: list[bytes] = []
    pos = 0
    while pos < len(data):
        (n,) = _LEN.unpack_from(data, pos)
        out.append(data[pos + 4 : pos + 4 + n])
        pos += 4 + n
    return out


class NatsRelay:
    """:class:`~callstream.store.live.LiveRelay` over core NATS (see the module docstring)."""

    def __init__(self, store: NatsStore) -> None:
        self._store = store
        self._queue: list[tuple[str, str | None, bytes, dict[str, str] | None]] = []
        self._wake = asyncio.Event()
        self._flusher: asyncio.Task[None] | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._local: dict[str, tuple[LiveHub | None, Subscription | None, float]] = {}
        self._local_hub: LiveHub | None = None
        self._watches: dict[str, _Watch] = {}

    # --- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        self._flusher = asyncio.create_task(self._flush_forever())
        self._sweeper = asyncio.create_task(self._sweep_forever())

    async def close(self) -> None:
        for task in (self._flusher, self._sweeper):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        self._watches.clear()
        self._local.clear()

    # --- the producer's side -----------------------------------------------------------------
    def _send(
        self, subject: str, payload: bytes, headers: dict[str, str] | None, reply: str | None = None
    ) -> None:
        self._queue.append((subject, reply, payload, headers))
        self._wake.set()

    async def _flush_forever(self) -> None:
        nc = self._store.nc
        while True:
            await self._wake.wait()
            self._wake.clear()
            queue, self._queue = self._queue, []
            for subject, reply, payload, headers in queue:
                try:
                    if subject == "":  # a sync responder to set up (see opened)
                        await self._serve_sync(reply or "")
                        continue
                    await nc.publish(subject, payload, headers=headers)
                except Exception as err:  # the connection is down: live bytes are lost
                    log.debug("live publish to %s failed: %r", subject, err)

    def opened(self, arn: str, frag: LiveFragment) -> None:
        """A local producer's fragment opened: announce it, and answer sync requests."""
        prefix = self._store.prefix
        if arn not in self._local:
            self._local[arn] = (None, None, time.monotonic())
            self._send("", b"", None, reply=arn)
        hub, sub, _ = self._local[arn]
        self._local[arn] = (hub, sub, time.monotonic())
        self._send(
            names.live_subject(prefix, arn),
            frag.prefix,
            {
                "E": "o",
                "N": frag.number,
                "S": str(frag.server_timestamp_ms),
                "P": str(frag.producer_timestamp_ms),
            },
        )

    def changed(self, arn: str, frag: LiveFragment, change: LiveChange, data: bytes) -> None:
        """A local producer's fragment changed: pass it on."""
        subject = names.live_subject(self._store.prefix, arn)
        if change == "chunk":
            self._send(subject, data, {"E": "c", "N": frag.number, "I": str(len(frag.chunks) - 1)})
        elif change == "finish":
            headers = {
                "E": "f",
                "N": frag.number,
                "I": str(len(frag.chunks)),
                "D": str(frag.duration_ms),
            }
            self._send(subject, data, headers)
        elif change == "drop":
            self._send(subject, b"", {"E": "d", "N": frag.number})
        else:
            self._send(subject, b"", {"E": "p", "N": frag.number})

    async def deleted(self, arn: str) -> None:
        """The stream was deleted: readers on every node end."""
        with contextlib.suppress(Exception):
            await self._store.nc.publish(
                names.live_subject(self._store.prefix, arn), b"", headers={"E": "x"}
            )

    async def superseding(self, arn: str, token: int) -> None:
        """An upload took the stream's lease ``token``: the producer's node ends an older
        upload of the stream (a newer upload wins, as on KVS, also across nodes)."""
        with contextlib.suppress(Exception):
            await self._store.nc.publish(
                names.sync_subject(self._store.prefix, arn),
                b"",
                headers={"E": "s", "T": str(token)},
            )

    def _superseded(self, arn: str, token: int) -> None:
        hub = self._local_hub
        if hub is None or arn not in hub:
            return
        producer = hub.stream(arn).producer
        lease = getattr(producer, "lease", None)
        supersede = getattr(producer, "supersede", None)
        if lease is not None and lease.token < token and callable(supersede):
            supersede()

    def bind(self, hub: LiveHub) -> None:
        """The hub whose local producers' fragments sync requests are answered from."""
        self._local_hub = hub

    async def _serve_sync(self, arn: str) -> None:
        hub_sub = self._local.get(arn)
        if hub_sub is None or hub_sub[1] is not None:
            return

        async def answer(msg: Msg) -> None:
            hub = self._local_hub
            if (msg.headers or {}).get("E") == "s":  # a newer upload on another node
                self._superseded(arn, int((msg.headers or {}).get("T", "0")))
                return
            if (msg.headers or {}).get("E") == "w":  # who ingests it? (only a producer says)
                url = self._store.advertise_url
                if url and msg.reply and self._producing(arn):
                    with contextlib.suppress(Exception):
                        await self._store.nc.publish(msg.reply, b"", headers={"U": url})
                return
            frags: list[LiveFragment] = []
            if hub is not None and arn in hub:
                frags = [f for f in hub.after(arn, None) if f.on_change is not None]
            parts: list[bytes] = []
            for f in frags:
                meta = {
                    "n": f.number,
                    "s": f.server_timestamp_ms,
                    "p": f.producer_timestamp_ms,
                    "c": len(f.chunks),
                    "done": f.complete,
                    "d": f.duration_ms,
                    "persisted": f.persisted,
                }
                parts += [json.dumps(meta).encode(), f.prefix, *f.chunks, f.trailer]
            if msg.reply:
                # Through the queue: everything published before this answer reaches the
                # reader's node first.
                self._send(msg.reply, _pack(parts), None)

        sub = await self._store.nc.subscribe(names.sync_subject(self._store.prefix, arn), cb=answer)
        _, _, used = self._local.get(arn, (None, None, time.monotonic()))
        self._local[arn] = (None, sub, used)

    def _producing(self, arn: str) -> bool:
        hub = self._local_hub
        return hub is not None and arn in hub and hub.stream(arn).producer is not None

    async def owner_url(self, arn: str) -> str | None:
        """The URL of the other node whose producer writes ``arn`` now, if it advertises
        one; None when this node ingests it, nobody does, or NATS does not answer."""
        if self._producing(arn):
            return None
        try:
            reply = await self._store.nc.request(
                names.sync_subject(self._store.prefix, arn),
                b"",
                timeout=OWNER_TIMEOUT_S,
                headers={"E": "w"},
            )
        except Exception:  # no producer anywhere (no responders, a timeout), NATS down
            return None
        return (reply.headers or {}).get("U") or None

    # --- the reader's side -------------------------------------------------------------------
    async def watch(self, arn: str, hub: LiveHub) -> None:
        """Follow other nodes' live fragments of ``arn`` into ``hub``."""
        w = self._watches.get(arn)
        if w is not None:
            w.idle_since = None
            await w.ready.wait()
            return
        w = self._watches[arn] = _Watch(arn, hub)
        nc = self._store.nc
        try:

            async def on_event(msg: Msg) -> None:
                await self._on_event(w, msg)

            w.sub = await nc.subscribe(names.live_subject(self._store.prefix, arn), cb=on_event)
            if arn in hub and hub.stream(arn).producer is not None:
                return  # the producer is this node's: its fragments are here already
            try:
                reply = await nc.request(
                    names.sync_subject(self._store.prefix, arn), b"", timeout=SYNC_TIMEOUT_S
                )
            except (nats.errors.NoRespondersError, nats.errors.TimeoutError, TimeoutError):
                return
            self._apply_snapshot(w, reply.data)
        except Exception as err:  # NATS unavailable: readers get what the log has
            log.debug("watching %s failed: %r", arn, err)
        finally:
            w.ready.set()

    def _apply_snapshot(self, w: _Watch, data: bytes) -> None:
        parts = _unpack(data)
        pos = 0
        hub = w.hub
        while pos < len(parts):
            meta: dict[str, Any] = json.loads(parts[pos])
            count = int(meta["c"])
            prefix = parts[pos + 1]
            chunks = parts[pos + 2 : pos + 2 + count]
            trailer = parts[pos + 2 + count]
            pos += 3 + count
            number = str(meta["n"])
            frag = self._remote(w, number)
            if frag is not None and frag.on_change is not None:
                continue  # this node's own producer
            if frag is None:
                frag = LiveFragment(
                    number=number,
                    server_timestamp_ms=int(meta["s"]),
                    producer_timestamp_ms=int(meta["p"]),
                    prefix=prefix,
                )
                hub.add_remote(w.arn, frag)
            w.heard[number] = time.monotonic()
            for chunk in chunks[len(frag.chunks) :]:
                frag.append(chunk)
            if meta["done"] and not frag.complete and not frag.dropped:
                frag.finish(trailer, int(meta["d"]))
            if meta["persisted"]:
                frag.persisted = True
            self._drain(w, frag)
        hub.notify(w.arn)

    def _remote(self, w: _Watch, number: str) -> LiveFragment | None:
        if w.arn not in w.hub:
            return None
        return w.hub.stream(w.arn).fragments.get(number)

    def _drain(self, w: _Watch, frag: LiveFragment) -> None:
        """Apply the chunks (and finish) that arrived ahead of their turn."""
        waiting = w.pending.get(frag.number)
        while waiting and len(frag.chunks) in waiting:
            kind, data, headers = waiting.pop(len(frag.chunks))
            if kind == "c":
                frag.append(data)
            else:
                frag.finish(data, int(headers["D"]))
                break
        if not waiting:
            w.pending.pop(frag.number, None)

    async def _on_event(self, w: _Watch, msg: Msg) -> None:
        headers = msg.headers or {}
        kind = headers.get("E")
        hub = w.hub
        arn = w.arn
        if kind == "x":
            hub.forget(arn)
            return
        number = headers.get("N", "")
        frag = self._remote(w, number)
        if frag is not None and frag.on_change is not None:
            return  # this node's own producer (NATS echoes our publishes to us)
        w.heard[number] = time.monotonic()
        if kind == "o":
            if frag is None:
                frag = LiveFragment(
                    number=number,
                    server_timestamp_ms=int(headers["S"]),
                    producer_timestamp_ms=int(headers["P"]),
                    prefix=msg.data,
                )
                hub.add_remote(arn, frag)
                self._drain(w, frag)
        elif frag is None:
            if kind in ("c", "f"):  # ahead of the snapshot that will open it
                w.pending.setdefault(number, {})[int(headers["I"])] = (kind, msg.data, headers)
            return
        elif kind in ("c", "f"):
            at = int(headers["I"])
            if at == len(frag.chunks) and not frag.complete and not frag.dropped:
                if kind == "c":
                    frag.append(msg.data)
                else:
                    frag.finish(msg.data, int(headers["D"]))
                self._drain(w, frag)
            elif at > len(frag.chunks):
                w.pending.setdefault(number, {})[at] = (kind, msg.data, headers)
        elif kind == "d":
            if not frag.dropped:
                frag.drop()
        elif kind == "p":
            if not frag.complete and not frag.dropped:
                # Stored, but some of its live bytes never reached this node (a NATS
                # reconnect): its readers end here and resume from the log by token.
                frag.drop()
            frag.persisted = True
            w.heard.pop(number, None)
            w.pending.pop(number, None)
            hub.prune(arn)
        hub.notify(arn)

    # --- housekeeping ------------------------------------------------------------------------
    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(_SWEEP_S)
            try:
                await self._sweep(time.monotonic())
            except Exception:
                log.exception("live relay housekeeping failed")

    async def _sweep(self, now: float) -> None:
        for arn, w in list(self._watches.items()):
            hub = w.hub
            live = hub.stream(arn) if arn in hub else None
            for number, heard in list(w.heard.items()):
                frag = live.fragments.get(number) if live is not None else None
                if frag is None or frag.persisted or frag.dropped:
                    w.heard.pop(number, None)
                elif now - heard > SILENCE_S:  # its producer's node is gone
                    w.heard.pop(number, None)
                    w.pending.pop(number, None)
                    if frag.complete:
                        frag.persisted = True  # stored or not: the log says which
                    else:
                        frag.drop()
                    hub.notify(arn)
            busy = live is not None and (live.readers or live.list_readers or live._waiters)
            if busy:
                w.idle_since = None
                continue
            if w.idle_since is None:
                w.idle_since = now
            elif now - w.idle_since > LINGER_S:
                del self._watches[arn]
                if w.sub is not None:
                    with contextlib.suppress(Exception):
                        await w.sub.unsubscribe()
                if live is not None:
                    for frag in list(live.fragments.values()):
                        if frag.on_change is None and not (frag.persisted or frag.dropped):
                            if frag.complete:
                                frag.persisted = True
                            else:
                                frag.drop()
                    hub.release(arn)
        local = self._local_hub
        for arn, (_, sub, used) in list(self._local.items()):
            producing = (
                local is not None and arn in local and local.stream(arn).producer is not None
            )
            if producing:
                self._local[arn] = (None, sub, now)
            elif now - used > 30.0:
                del self._local[arn]
                if sub is not None:
                    with contextlib.suppress(Exception):
                        await sub.unsubscribe()
