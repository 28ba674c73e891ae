"""In-memory live layer: fragments being ingested, for GetMedia readers at the live edge.

A fragment enters the hub when its Cluster opens (BUFFERING), grows as Cluster bytes
arrive, completes when its trailer is known, and leaves a little after it is persisted
(readers that raced the persistence still find it here).

Readers catch up by pulling: they wait on a per-stream wake-up future that every change
resolves. A reader that has caught up with an open fragment can instead attach a
:class:`LiveSink` to it: the producer then hands each new Cluster chunk straight to the
sink, and the reader sleeps until the fragment completes or is dropped. That saves the
reader a wake-up per chunk, which is most of what a live stream costs.

The hub is per process. A backend shared by several processes (NATS JetStream) gives the
hub a :class:`LiveRelay`: every change a local producer makes to a live fragment is then
also handed to the relay, which carries it to the other nodes, and a reader's node asks
the relay (:meth:`LiveHub.watch`) to feed it the changes other nodes' producers make, so
a reader on any node sees the open fragment's bytes as they arrive.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, Protocol

__all__ = ["LiveChange", "LiveFragment", "LiveHub", "LiveRelay", "LiveSink", "StreamLive"]

LiveChange = Literal["chunk", "finish", "drop", "persist"]
"""What happened to a live fragment (see :meth:`LiveRelay.changed`)."""

KEEP_AFTER_PERSIST = 4
"""Completed fragments kept in memory per stream after they were persisted."""


class LiveSink:
    """A reader that takes a live fragment's Cluster chunks as the producer adds them.

    A subclass says how a chunk is delivered (:meth:`push`) and whether the reader can
    take one now (:meth:`ready`); :meth:`ride` keeps it attached to a fragment until the
    fragment ends or :meth:`push` refuses a chunk."""

    def __init__(self) -> None:
        self.sent = 0  # chunks of the fragment delivered so far
        self._waiter: asyncio.Future[None] | None = None

    def ready(self) -> bool:
        """The reader can take a chunk now."""
        raise NotImplementedError

    def push(self, data: bytes) -> bool:
        """Deliver one chunk now (and count it in :attr:`sent`); False detaches the sink
        (``data`` was not taken). Called from the producer's side."""
        raise NotImplementedError

    def release(self) -> None:
        """Detached (the fragment ended, or backpressure): wake the reader."""
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def ride(self, frag: LiveFragment, sent: int) -> int:
        """Stay attached to ``frag`` until it ends or the sink lets go; returns how many of
        its chunks have been delivered."""
        self.sent = sent
        self._waiter = asyncio.get_running_loop().create_future()
        frag.attach(self)
        try:
            await self._waiter
        finally:
            frag.detach(self)
            self._waiter = None
        return self.sent


@dataclass(slots=True)
class LiveFragment:
    """A fragment as the live layer holds it. The producer changes it through
    :meth:`append`, :meth:`finish` and :meth:`drop`, which keep attached sinks current."""

    number: str
    server_timestamp_ms: int
    producer_timestamp_ms: int
    prefix: bytes  # EBML header + Segment + header elements + KVS pre-cluster Tags
    chunks: list[bytes] = field(default_factory=list)  # the Cluster, as it arrives
    trailer: bytes = b""
    duration_ms: int = 0
    complete: bool = False
    dropped: bool = False  # rejected by validation: never served again
    persisted: bool = False
    sinks: list[LiveSink] = field(default_factory=list)
    on_change: Callable[[LiveFragment, LiveChange, bytes], None] | None = None
    """Told of every change (the hub's relay, for a fragment a local producer makes)."""

    def append(self, data: bytes) -> None:
        """More Cluster bytes."""
        self.chunks.append(data)
        if self.on_change is not None:
            self.on_change(self, "chunk", data)
        for sink in self.sinks:
            if not sink.push(data):  # rare (a reader fell behind): rebuild the list
                kept = self.sinks[: self.sinks.index(sink)]
                rest = self.sinks[len(kept) + 1 :]
                self.sinks = kept + [other for other in rest if other.push(data)]
                break

    def attach(self, sink: LiveSink) -> None:
        """Hand every chunk appended from now on to ``sink`` until it detaches."""
        self.sinks.append(sink)

    def detach(self, sink: LiveSink) -> None:
        """Stop handing chunks to ``sink`` (no-op when it is no longer attached)."""
        if sink in self.sinks:
            self.sinks.remove(sink)

    def finish(self, trailer: bytes, duration_ms: int) -> None:
        """The Cluster and the elements after it are complete."""
        self.trailer = trailer
        self.duration_ms = duration_ms
        self.complete = True
        if self.on_change is not None:
            self.on_change(self, "finish", trailer)
        self._release()

    def drop(self) -> None:
        """Rejected or abandoned: never served again."""
        self.dropped = True
        if self.on_change is not None:
            self.on_change(self, "drop", b"")
        self._release()

    def mark_persisted(self) -> None:
        """Durably stored (readers may now find it in the fragment log)."""
        self.persisted = True
        if self.on_change is not None:
            self.on_change(self, "persist", b"")

    def _release(self) -> None:
        sinks, self.sinks = self.sinks, []
        for sink in sinks:
            sink.release()


@dataclass(slots=True)
class StreamLive:
    """Live state of one stream."""

    fragments: dict[str, LiveFragment] = field(default_factory=dict)  # insertion = number order
    readers: int = 0  # GetMedia connections
    list_readers: int = 0  # GetMediaForFragmentList connections
    producer: object | None = None  # the upload that owns the stream
    deleted: bool = False  # the stream was deleted: readers end
    created: float = field(default_factory=time.monotonic)
    _waiters: set[asyncio.Future[None]] = field(default_factory=set)

    def wake(self) -> None:
        """Wake every reader waiting in :meth:`wait`."""
        waiters = self._waiters
        if waiters:
            self._waiters = set()
            for fut in waiters:
                if not fut.done():
                    fut.set_result(None)

    async def wait(self, timeout: float | None) -> bool:
        """Wait for the next :meth:`wake`; False on timeout (``None``: no time limit)."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.add(fut)
        try:
            if timeout is None:
                await fut
            else:
                async with asyncio.timeout(timeout):
                    await fut
        except TimeoutError:
            return False
        finally:
            self._waiters.discard(fut)
        return True


class LiveRelay(Protocol):
    """Carries live fragments between the processes that share a backend (see the module
    docstring). Called from the event loop; the change methods must not block."""

    def bind(self, hub: LiveHub) -> None:
        """The hub this relay serves (the hub calls this once, as it is made)."""
        ...

    def opened(self, arn: str, frag: LiveFragment) -> None:
        """A local producer opened ``frag`` (later changes come through :meth:`changed`)."""
        ...

    def changed(self, arn: str, frag: LiveFragment, change: LiveChange, data: bytes) -> None:
        """A local producer's fragment changed: Cluster bytes appended (``data``), finished
        (``data`` is the trailer), dropped, or persisted."""
        ...

    async def watch(self, arn: str, hub: LiveHub) -> None:
        """Feed other nodes' live fragments of ``arn`` into ``hub`` from now on (until the
        hub no longer uses the stream); returns once the fragments open now are in it."""
        ...

    async def owner_url(self, arn: str) -> str | None:
        """Where clients reach the other process whose producer writes ``arn`` now (None:
        this one, none, or unknown): what GetDataEndpoint gives live readers."""
        ...


class LiveHub:
    """Live state of every stream, keyed by stream ARN. Use from the event loop only.

    A stream is in the hub while it is used: from its first producer or reader until
    :meth:`release` finds it idle (no producer, no reader, every fragment stored). A
    stream per call (Connect contacts, Chime legs) thus costs memory only during the
    call; what a later upload must know (the last frame's timestamp) is kept apart."""

    def __init__(self, relay: LiveRelay | None = None) -> None:
        self._streams: dict[str, StreamLive] = {}
        self.relay = relay
        if relay is not None:
            relay.bind(self)

    def __contains__(self, arn: str) -> bool:
        return arn in self._streams

    async def watch(self, arn: str) -> None:
        """Make sure other nodes' live fragments of ``arn`` reach this hub (no-op without
        a relay)."""
        if self.relay is not None:
            await self.relay.watch(arn, self)

    def stream(self, arn: str) -> StreamLive:
        """The live state of ``arn`` (created on first use)."""
        live = self._streams.get(arn)
        if live is None:
            live = self._streams[arn] = StreamLive()
        return live

    def __len__(self) -> int:
        return len(self._streams)

    def release(self, arn: str) -> bool:
        """Drop ``arn``'s live state if nothing uses it any more (True if dropped)."""
        live = self._streams.get(arn)
        if live is None:
            return False
        if (
            live.producer is not None
            or live.readers
            or live.list_readers
            or live._waiters
            or any(not (f.persisted or f.dropped) for f in live.fragments.values())
        ):
            return False
        del self._streams[arn]
        return True

    def forget(self, arn: str) -> None:
        """Drop a deleted stream's live state, waking its readers."""
        live = self._streams.pop(arn, None)
        if live is not None:
            live.deleted = True
            for frag in live.fragments.values():
                frag.drop()
            live.wake()

    def notify(self, arn: str) -> None:
        """Wake readers of ``arn``."""
        live = self._streams.get(arn)
        if live is not None:
            live.wake()

    def open(self, arn: str, frag: LiveFragment) -> None:
        """A new fragment of a local producer starts (told to the relay)."""
        self.stream(arn).fragments[frag.number] = frag
        relay = self.relay
        if relay is not None:

            def changed(f: LiveFragment, change: LiveChange, data: bytes) -> None:
                relay.changed(arn, f, change, data)

            frag.on_change = changed
            relay.opened(arn, frag)

    def add_remote(self, arn: str, frag: LiveFragment) -> None:
        """A fragment another node's producer opened (from the relay: not relayed back)."""
        self.stream(arn).fragments[frag.number] = frag

    def after(self, arn: str, number: str | None) -> list[LiveFragment]:
        """Live fragments with numbers greater than ``number``, in order."""
        live = self._streams.get(arn)
        if live is None:
            return []
        return [
            f
            for f in live.fragments.values()
            if not f.dropped and (number is None or f.number > number)
        ]

    def prune(self, arn: str) -> None:
        """Forget persisted fragments beyond the keep window."""
        live = self._streams.get(arn)
        if live is None:
            return
        done = [n for n, f in live.fragments.items() if f.persisted or f.dropped]
        for n in done[: max(0, len(done) - KEEP_AFTER_PERSIST)]:
            del live.fragments[n]
