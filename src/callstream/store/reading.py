"""Reading a stream: where a start selector points, stored fragments then the live edge.

Two ways out, one logic:

* :func:`follow` writes fragments as GetMedia documents (kvs-wire §2.4) through a
  callback, chunk by chunk while a fragment is still arriving (the HTTP GetMedia adapter,
  with an optional :class:`~callstream.store.live.LiveSink` the producer writes to);
* :func:`fragments` yields whole fragments (:class:`MediaFragment`) to in-process
  consumers, the live ones as each completes.

Both take stored fragments from the fragment log and then the open and recent ones from
the :class:`~callstream.store.live.LiveHub`, so a reader never misses a fragment that is
being persisted while it catches up.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

from callstream.kvs.selectors import StartSelector, contains
from callstream.mkv.kvs import Fragment, FragmentReader, kvs_end_tags, render_fragment
from callstream.store.base import (
    FragmentData,
    FragmentLog,
    FragmentNotFound,
    FragmentRecord,
    InvalidArgument,
    StreamRecord,
    now_ms,
)
from callstream.store.live import LiveFragment, LiveHub, LiveSink, StreamLive
from callstream.store.numbers import is_valid_fragment_number

__all__ = ["MediaFragment", "before", "follow", "fragments", "start_after"]

TIMESTAMP_WINDOW_MS = 60_000
"""Longer than any fragment PutMedia accepts: a timestamp lies in a fragment that starts
at most this much earlier."""

Write = Callable[[bytes], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class MediaFragment:
    """One whole fragment as a reader gets it."""

    number: str
    server_timestamp_ms: int
    producer_timestamp_ms: int
    duration_ms: int
    body: bytes
    """The GetMedia document up to the Cluster's trailing elements (EBML header, Segment,
    the producer's header, the KVS pre-Cluster tags, the Cluster, what followed it)."""

    def document(self, *, end_tags: bool = True) -> bytes:
        """The fragment exactly as GetMedia serves it (with MILLIS_BEHIND_NOW as of now
        and its CONTINUATION_TOKEN), or as GetMediaForFragmentList does (no end tags)."""
        if not end_tags:
            return self.body
        behind = max(0, now_ms() - self.server_timestamp_ms - self.duration_ms)
        return self.body + kvs_end_tags(behind, self.number)

    def parse(self) -> Fragment:
        """The fragment's tracks, producer tags and frames."""
        reader = FragmentReader()
        parsed = reader.feed(self.document()) + reader.close()
        return parsed[0]

    @classmethod
    def stored(cls, record: FragmentRecord, data: FragmentData) -> MediaFragment:
        body = render_fragment(
            ebml_header=data.ebml_header,
            header=data.header,
            cluster=data.cluster,
            trailer=data.trailer,
            fragment_number=record.fragment_number,
            server_timestamp_ms=record.server_timestamp_ms,
            producer_timestamp_ms=record.producer_timestamp_ms,
        )
        return cls(
            record.fragment_number,
            record.server_timestamp_ms,
            record.producer_timestamp_ms,
            record.duration_ms,
            body,
        )

    @classmethod
    def live(cls, frag: LiveFragment) -> MediaFragment:
        """A completed live fragment."""
        body = b"".join((frag.prefix, *frag.chunks, frag.trailer))
        return cls(
            frag.number,
            frag.server_timestamp_ms,
            frag.producer_timestamp_ms,
            frag.duration_ms,
            body,
        )


def before(number: str) -> str:
    """The fragment number just before ``number`` (same width), so that "after it" means
    "from ``number`` on"."""
    return f"{int(number) - 1:0{len(number)}d}"


async def start_after(
    log: FragmentLog, hub: LiveHub, stream: StreamRecord, selector: StartSelector
) -> str | None:
    """The fragment number a reader starts after (None: from the earliest)."""
    kind = selector.type
    if kind == "EARLIEST":
        return None
    if kind == "NOW":
        pending = hub.after(stream.arn, None)
        open_now = [f for f in pending if not f.complete]
        if open_now:
            return before(open_now[0].number)
        return await _newest(log, stream, pending)
    if kind in ("FRAGMENT_NUMBER", "CONTINUATION_TOKEN"):
        number = (
            selector.fragment_number if kind == "FRAGMENT_NUMBER" else selector.continuation_token
        )
        if not is_valid_fragment_number(number):
            what = "AfterFragmentNumber" if kind == "FRAGMENT_NUMBER" else "ContinuationToken"
            raise InvalidArgument(f"{what} is not valid.")
        assert number is not None
        return before(number) if selector.inclusive else number
    if kind in ("PRODUCER_TIMESTAMP", "SERVER_TIMESTAMP"):
        assert selector.timestamp_ms is not None
        return await _containing(log, hub, stream, selector.timestamp_ms, kind)
    raise InvalidArgument(f"Invalid StartSelectorType {kind!r}.")


async def _containing(
    log: FragmentLog, hub: LiveHub, stream: StreamRecord, ts: int, kind: str
) -> str | None:
    """Start with the fragment containing ``ts``, else the first one after it; stored
    fragments first, then the live ones (the open one may contain it)."""
    producer = kind == "PRODUCER_TIMESTAMP"

    def key(item: FragmentRecord | LiveFragment) -> int:
        return item.producer_timestamp_ms if producer else item.server_timestamp_ms

    by: Literal["server", "producer"] = "producer" if producer else "server"
    records = await log.range(stream, start_ms=ts - TIMESTAMP_WINDOW_MS, end_ms=ts, by=by)
    containing = [r for r in records if contains(key(r), r.duration_ms, ts)]
    if containing:
        return before(containing[-1].fragment_number)
    later = await log.range(stream, start_ms=ts, by=by, limit=1)
    if later:
        return before(later[0].fragment_number)
    pending = hub.after(stream.arn, None)
    live_containing = [
        f
        for f in pending
        if key(f) <= ts and (not f.complete or contains(key(f), f.duration_ms, ts))
    ]
    if live_containing:
        return before(live_containing[-1].number)
    live_later = [f for f in pending if key(f) >= ts]
    if live_later:
        return before(live_later[0].number)
    return await _newest(log, stream, pending)


async def _newest(
    log: FragmentLog, stream: StreamRecord, pending: list[LiveFragment]
) -> str | None:
    """The number of the stream's newest fragment, stored or ``pending`` (None: none)."""
    newest = await log.last(stream)
    numbers = [f.number for f in pending] + ([newest.fragment_number] if newest else [])
    return max(numbers, default=None)


async def _sequence(
    log: FragmentLog,
    hub: LiveHub,
    live: StreamLive,
    stream: StreamRecord,
    after: str | None,
    idle_s: float | None,
) -> AsyncGenerator[MediaFragment | LiveFragment, None]:
    """The fragments after ``after`` in number order: stored ones (read whole), then the
    live ones (as they are: the consumer takes each until it completes or is dropped),
    until nothing new came for ``idle_s`` (None: until the stream is deleted). The reader
    policy shared by :func:`follow` and :func:`fragments`."""
    last = after
    while True:
        if live.deleted:
            return
        records: list[FragmentRecord] = []
        if last is None or last not in live.fragments:
            # Behind the live layer: look in the log. (Once ``last`` is a fragment the
            # hub still holds, everything after it passed through the hub too.)
            records = await log.range(stream, after_number=last, limit=16)
        pending = hub.after(stream.arn, last)
        stored_next = records[0].fragment_number if records else None
        live_next = pending[0] if pending else None
        if stored_next is not None and (live_next is None or stored_next < live_next.number):
            for rec in records:
                if live_next is not None and rec.fragment_number >= live_next.number:
                    break
                last = rec.fragment_number
                try:
                    data = await log.read(stream, last)
                except FragmentNotFound:  # expired between listing and reading
                    continue
                yield MediaFragment.stored(rec, data)
            continue
        if live_next is not None:
            yield live_next
            last = live_next.number
            continue
        if idle_s is not None and idle_s <= 0:
            return
        if (
            not await live.wait(idle_s)
            and not hub.after(stream.arn, last)
            and not await log.range(stream, after_number=last, limit=1)
        ):
            return


async def follow(
    log: FragmentLog,
    hub: LiveHub,
    stream: StreamRecord,
    *,
    after: str | None,
    write: Write,
    idle_s: float | None,
    sink: LiveSink | None = None,
) -> None:
    """Write fragments with numbers > ``after`` as GetMedia documents, stored ones first,
    then the live edge until nothing new came for ``idle_s`` (None: only what exists),
    a live fragment chunk by chunk as it arrives. (Chunks go through a callback, not a
    generator: every live chunk passes through here, and each generator layer costs a
    step per chunk.) With ``sink``, the open fragment's chunks reach the reader through it
    once the reader has caught up."""
    live = hub.stream(stream.arn)
    live.readers += 1
    sequence = _sequence(log, hub, live, stream, after, 0.0 if idle_s is None else idle_s)
    try:
        async for item in sequence:
            if isinstance(item, MediaFragment):
                await write(item.document())
                continue
            await _follow_live(live, item, write, sink)
            if item.dropped and not item.complete:
                return  # a rejected fragment was half sent: end; clients resume by token
    finally:
        await sequence.aclose()
        live.readers -= 1
        hub.release(stream.arn)


async def _follow_live(
    live: StreamLive, frag: LiveFragment, write: Write, sink: LiveSink | None
) -> None:
    """One live fragment: its prefix, Cluster bytes as they arrive, trailer and end tags."""
    await write(frag.prefix)
    sent = 0
    while True:
        chunks = frag.chunks
        while sent < len(chunks):
            await write(chunks[sent])
            sent += 1
        if frag.complete:
            behind = max(0, now_ms() - frag.server_timestamp_ms - frag.duration_ms)
            await write(frag.trailer + kvs_end_tags(behind, frag.number))
            return
        if frag.dropped:
            return
        # Caught up (no await since the last chunk was written): from here the producer
        # hands chunks to the sink, and we wake when the fragment ends or the sink lets go.
        if sink is not None and sink.ready():
            sent = await sink.ride(frag, sent)
        else:
            # No timer per chunk: the producer's upload ends (its idle limit included) by
            # completing or dropping this fragment, and either wakes us.
            await live.wait(None)


async def fragments(
    log: FragmentLog,
    hub: LiveHub,
    stream: StreamRecord,
    *,
    after: str | None,
    idle_s: float | None,
) -> AsyncIterator[MediaFragment]:
    """Whole fragments with numbers > ``after``: stored ones, then live ones as each
    completes, until nothing new came for ``idle_s`` (0: only what exists; None: follow
    until the stream is deleted or the caller stops iterating)."""
    live = hub.stream(stream.arn)
    live.readers += 1
    sequence = _sequence(log, hub, live, stream, after, idle_s)
    try:
        async for item in sequence:
            if isinstance(item, MediaFragment):
                yield item
                continue
            while not (item.complete or item.dropped):
                await live.wait(None)
            if item.complete:
                yield MediaFragment.live(item)
    finally:
        await sequence.aclose()
        live.readers -= 1
        hub.release(stream.arn)
