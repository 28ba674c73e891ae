"""Media plane: PutMedia (full-duplex chunked ingest with JSON acks) and GetMedia.

PutMedia drives a sans-I/O :class:`~callstream.store.ingest.IngestSession`; its events
become acks, live bytes in the :class:`~callstream.store.live.LiveHub`, and fragments
persisted by the backend. GetMedia serves stored fragments, then follows the live edge,
rendering each fragment as the per-fragment MKV document real KVS sends (kvs-wire §2.4).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import math
import time
from collections.abc import Awaitable, Callable
from decimal import Decimal, InvalidOperation
from typing import Any

from aiohttp import web

from callstream.api.app import (
    BODY_SHA256,
    Handler,
    ServerState,
    log,
    read_json,
    start_streaming,
)
from callstream.api.errors import KvsError
from callstream.api.livesink import ChunkedSink
from callstream.kvs.acks import Ack, EventType, serialize
from callstream.mkv.kvs import kvs_end_tags, kvs_start_tags, render_fragment
from callstream.mkv.writer import segment_start
from callstream.store.base import (
    FragmentAppend,
    FragmentData,
    FragmentNotFound,
    FragmentRecord,
    StoreError,
    StreamNotFound,
    StreamRecord,
)
from callstream.store.ingest import (
    ClusterBytes,
    FragmentOpened,
    FragmentReady,
    FragmentReceived,
    IngestError,
    IngestEvent,
    IngestSession,
)
from callstream.store.live import LiveFragment, StreamLive
from callstream.store.numbers import is_valid_fragment_number, make_fragment_number

__all__ = ["ROUTES", "parse_timestamp", "serve_fragments"]


FLUSH_AFTER_S = 0.15
"""Pause after a complete Cluster after which its fragment is stored without waiting."""


def _now_ms() -> int:
    return int(time.time() * 1000)


def parse_timestamp(value: Any, field: str) -> int:
    """A request timestamp (epoch seconds as number, decimal string or ISO 8601) in ms."""
    if isinstance(value, bool) or value is None:
        raise KvsError("InvalidArgumentException", f"{field} must be a timestamp.")
    if isinstance(value, int | float):
        if not math.isfinite(value) or abs(value) > 1e13:
            raise KvsError("InvalidArgumentException", f"{field} is out of range.")
        return round(float(value) * 1000)
    if isinstance(value, str):
        try:
            number = Decimal(value)
        except InvalidOperation:
            pass
        else:
            # adjusted() first: comparing or scaling 1e999999999 overflows the context
            if not number.is_finite() or number.adjusted() > 13 or abs(number) > 10**13:
                raise KvsError("InvalidArgumentException", f"{field} is out of range.")
            return int((number * 1000).to_integral_value())
        from datetime import datetime

        try:
            return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * 1000)
        except ValueError:
            pass
    raise KvsError("InvalidArgumentException", f"{field} is not a valid timestamp: {value!r}.")


# --- PutMedia ---------------------------------------------------------------------------------

PERSIST_BACKLOG = 4
"""Completed fragments of one PutMedia connection waiting to be stored, at most."""

ACK_DRAIN_S = 5.0
"""How long an ending PutMedia waits for its last acks to be written."""


class _PutMedia:
    """One PutMedia connection."""

    def __init__(self, state: ServerState, stream: StreamRecord, response: web.StreamResponse):
        self.state = state
        self.stream = stream
        self.response = response
        self.live: StreamLive = state.hub.stream(stream.arn)
        self.numbers: dict[int, LiveFragment] = {}  # ingest seq -> fragment
        self.acks: asyncio.Queue[Ack | None] = asyncio.Queue()
        # Never blocks a put; ``handle`` waits for room before queueing, which holds the
        # upload (and, through TCP, the producer) while storage is behind.
        self.persist: asyncio.Queue[tuple[FragmentReady, LiveFragment] | None] = asyncio.Queue()
        self.room = asyncio.Event()  # set whenever a queued fragment has been dealt with
        self.persister: asyncio.Task[None] | None = None  # runs persist_fragments
        self.superseded = False
        self.ending = False  # the handler is in its final clean-up: nothing may cancel it
        self.task = asyncio.current_task()

    def _retention_hours(self) -> int:
        """The stream's retention now (UpdateDataRetention may change it mid-upload)."""
        try:
            current: StreamRecord = self.state.backend.get_stream(arn=self.stream.arn)
        except StreamNotFound:
            return self.stream.data_retention_hours
        return current.data_retention_hours

    def live_bytes(self, ev: ClusterBytes) -> None:
        """More of an open Cluster, for live readers (the caller wakes them)."""
        self.numbers[ev.seq].append(ev.data)

    def supersede(self) -> None:
        """A newer PutMedia connection took the stream (or the server is stopping): end
        this one, storing the fragments it completed. Idempotent, and a no-op once the
        connection is ending anyway."""
        if self.superseded or self.ending:
            return
        self.superseded = True
        if self.task is not None:
            self.task.cancel()

    async def write_acks(self) -> None:
        while (ack := await self.acks.get()) is not None:
            with contextlib.suppress(ConnectionError, RuntimeError):
                await self.response.write(serialize(ack))

    async def persist_fragments(self) -> None:
        while (item := await self.persist.get()) is not None:
            ready, frag = item
            try:
                assert self.state.persister is not None
                await self.state.persister.store(
                    FragmentAppend(
                        self.stream,
                        FragmentData(
                            header=ready.header,
                            cluster=ready.cluster,
                            trailer=ready.trailer,
                            ebml_header=ready.ebml_header,
                        ),
                        server_timestamp_ms=frag.server_timestamp_ms,
                        producer_timestamp_ms=frag.producer_timestamp_ms,
                        duration_ms=ready.duration_ms,
                        cluster_timecode=ready.timecode,
                        fragment_number=frag.number,
                    )
                )
            except Exception as err:  # storage failure: tell the producer, keep going
                frag.drop()
                if isinstance(err, StreamNotFound):
                    code = "STREAM_NOT_ACTIVE"
                elif isinstance(err, StoreError):  # a full disk, say: one line each
                    log.warning("cannot store fragment %s: %s", frag.number, err.message)
                    code = "INTERNAL_ERROR"
                else:
                    log.exception("persisting fragment %s failed", frag.number)
                    code = "INTERNAL_ERROR"
                await self.acks.put(Ack.error(code, ready.timecode, frag.number))
                self.state.hub.notify(self.stream.arn)
                continue
            finally:
                self.room.set()
            frag.persisted = True
            try:
                retained = self._retention_hours() > 0
            except StoreError:  # the store is closing: the fragment is stored all the same
                retained = True
            if retained:
                await self.acks.put(Ack(EventType.PERSISTED, ready.timecode, frag.number))
            self.state.hub.prune(self.stream.arn)

    async def wait_for_room(self) -> None:
        """Hold the upload while PERSIST_BACKLOG completed fragments wait for storage
        (not once the connection is being ended, nor if storing has stopped)."""
        while (
            self.persist.qsize() >= PERSIST_BACKLOG
            and not (self.superseded or self.ending)
            and not (self.persister is not None and self.persister.done())
        ):
            self.room.clear()
            await self.room.wait()

    async def handle(self, events: list[IngestEvent]) -> bool:
        """Apply ingest events; False when the connection must end."""
        hub = self.state.hub
        arn = self.stream.arn
        touched = False
        ending_after_batch = False
        for ev in events:
            if isinstance(ev, FragmentOpened):
                now = _now_ms()
                try:  # an in-memory counter (a reservation is written every 1024): inline
                    seq = self.state.backend.next_sequence(self.stream)
                except StreamNotFound:  # deleted while we were ingesting
                    await self.acks.put(Ack.error("STREAM_NOT_ACTIVE", ev.timecode, None))
                    return False
                except StoreError as err:  # no fragment number (a full disk): end here
                    log.warning("PutMedia to %s ends: %s", self.stream.arn, err.message)
                    await self.acks.put(Ack.error("INTERNAL_ERROR", ev.timecode, None))
                    return False
                number = make_fragment_number(seq, now)
                pre = kvs_start_tags(number, now, ev.producer_timestamp_ms)
                frag = LiveFragment(
                    number=number,
                    server_timestamp_ms=now,
                    producer_timestamp_ms=ev.producer_timestamp_ms,
                    prefix=ev.ebml_header + segment_start() + ev.prefix + pre,
                )
                self.numbers[ev.seq] = frag
                hub.open(arn, frag)
                touched = True
                await self.acks.put(Ack(EventType.BUFFERING, ev.timecode, number))
            elif isinstance(ev, ClusterBytes):
                self.live_bytes(ev)
                touched = True
            elif isinstance(ev, FragmentReceived):
                await self.acks.put(
                    Ack(EventType.RECEIVED, ev.timecode, self.numbers[ev.seq].number)
                )
            elif isinstance(ev, FragmentReady):
                frag = self.numbers.pop(ev.seq)
                frag.finish(ev.trailer, ev.duration_ms)
                touched = True
                hub.notify(arn)
                try:  # backpressure: hold the upload while storage is behind
                    await self.wait_for_room()
                except asyncio.CancelledError:
                    if not self.superseded:
                        raise
                    # Ended by a newer connection or by shutdown: finish this batch of
                    # events (its bytes are consumed) and end after it.
                    ending_after_batch = True
                finally:  # queued exactly once, also when the connection is being ended
                    self.persist.put_nowait((ev, frag))
            elif isinstance(ev, IngestError):
                frag_or_none = self.numbers.pop(ev.seq, None) if ev.seq is not None else None
                if frag_or_none is not None:
                    frag_or_none.drop()
                    touched = True
                failed = frag_or_none.number if frag_or_none else None
                await self.acks.put(Ack.error(ev.code, ev.timecode, failed))
                if ev.fatal:
                    if touched:
                        hub.notify(arn)
                    return False
        if touched:
            hub.notify(arn)
        if ending_after_batch:
            raise asyncio.CancelledError
        return True


async def put_media(request: web.Request, state: ServerState) -> web.StreamResponse:
    """``POST /putMedia``: stream MKV in, acks out, on one connection."""
    h = request.headers
    name = h.get("x-amzn-stream-name")
    arn = h.get("x-amzn-stream-arn")
    stream = await state.stream({"StreamName": name, "StreamARN": arn})
    timecode_type = h.get("x-amzn-fragment-timecode-type", "").upper()
    if timecode_type not in ("ABSOLUTE", "RELATIVE"):
        raise KvsError(
            "InvalidArgumentException",
            "x-amzn-fragment-timecode-type must be ABSOLUTE or RELATIVE.",
        )
    start_ms = 0
    if h.get("x-amzn-producer-start-timestamp"):
        start_ms = parse_timestamp(
            h["x-amzn-producer-start-timestamp"], "x-amzn-producer-start-timestamp"
        )
        if start_ms < 0:
            raise KvsError(
                "InvalidArgumentException",
                "x-amzn-producer-start-timestamp must not be before 1970.",
            )
    elif timecode_type == "RELATIVE":
        start_ms = _now_ms()

    read_next = request.content.readany
    expected_sha256 = request.get(BODY_SHA256)
    if expected_sha256:  # the client signed a concrete body hash: check it before ingesting
        body = await request.read()
        if hashlib.sha256(body).hexdigest() != expected_sha256.lower():
            raise KvsError(
                "InvalidSignatureException",
                "The request body does not match the x-amz-content-sha256 it was signed with.",
            )
        pieces = [body[i : i + 65536] for i in range(0, len(body), 65536)]
        pieces.reverse()

        async def read_next() -> bytes:
            return pieces.pop() if pieces else b""

    response = await start_streaming(request, "application/json")

    conn = _PutMedia(state, stream, response)
    live = conn.live
    previous = live.producer
    if isinstance(previous, _PutMedia):
        previous.supersede()  # a newer connection to the stream wins, as on AWS
    live.producer = conn
    state.uploads.add(conn)
    if state.stopping:
        conn.supersede()
    session = IngestSession(
        timecode_type=timecode_type,
        producer_start_ms=start_ms,
        last_timestamp_ns=live.last_timestamp_ns,
    )
    writer = asyncio.create_task(conn.write_acks())
    persister = conn.persister = asyncio.create_task(conn.persist_fragments())
    cfg = state.config
    # One watchdog per connection instead of a timer per chunk: while the handler waits
    # for body bytes, it interrupts the wait once the producer has been quiet long enough
    # to store a complete Cluster (FLUSH_AFTER_S) or to send an IDLE ack.
    loop = asyncio.get_running_loop()
    me = asyncio.current_task()
    reading = poked = False
    quiet_since = idle_since = loop.time()  # last body bytes (quiet_since: or poke)
    dog: asyncio.TimerHandle | None = None

    def watchdog() -> None:
        nonlocal poked, dog
        wait = FLUSH_AFTER_S if session.awaiting_trailer else cfg.putmedia_idle_ack_s
        now = loop.time()
        due = quiet_since + wait
        if reading and not poked and me is not None and now >= due:
            poked = True
            me.cancel()
        # Wake when the quiet period would be due, and at least every FLUSH_AFTER_S (a
        # Cluster may complete meanwhile, which shortens the wait). While the handler is
        # busy (not reading) nothing can be due.
        delay = min(FLUSH_AFTER_S, max(due - now, 0.005)) if reading else FLUSH_AFTER_S
        dog = loop.call_later(delay, watchdog)

    dog = loop.call_later(FLUSH_AFTER_S, watchdog)
    try:
        ok = True
        while ok:
            reading = True
            try:
                chunk: bytes | None = await read_next()
            except asyncio.CancelledError:
                if not poked or me is None:
                    raise
                poked = False
                me.uncancel()
                if conn.superseded or me.cancelling():
                    raise  # a real cancellation came with the poke
                chunk = None  # the watchdog's poke: the producer has been quiet
            finally:
                reading = False
            if chunk is None:
                quiet_since = loop.time()
                if session.awaiting_trailer:
                    ok = await conn.handle(session.flush())
                elif loop.time() - idle_since > cfg.putmedia_idle_close_s:
                    break
                else:
                    await conn.acks.put(Ack.idle())
                continue
            if not chunk:
                if not session.failed:
                    ok = await conn.handle(session.close())
                break
            quiet_since = idle_since = loop.time()
            events = session.feed(chunk)
            if len(events) == 1 and type(events[0]) is ClusterBytes:
                # The steady state of a live upload (frames of an open Cluster): no
                # coroutine for it.
                conn.live_bytes(events[0])
                live.wake()
            elif events:
                ok = await conn.handle(events)
    except ConnectionError:
        pass
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if not conn.superseded or task is None:
            raise
        task.uncancel()
    finally:
        conn.ending = True  # a newer connection or shutdown no longer interrupts us
        if dog is not None:
            dog.cancel()
        try:
            if session.awaiting_trailer:  # the connection dropped after a complete Cluster
                with contextlib.suppress(Exception):
                    await conn.handle(session.flush())
            live.last_timestamp_ns = session.last_timestamp_ns
        finally:
            for frag in conn.numbers.values():  # fragments that never completed
                frag.drop()
            state.hub.notify(stream.arn)
            conn.persist.put_nowait(None)
            try:
                # asyncio.wait, not await: should this handler still be cancelled (a
                # forced shutdown), storing what was received must not be cancelled too.
                await asyncio.wait([persister])
                conn.acks.put_nowait(None)
                done, _ = await asyncio.wait([writer], timeout=ACK_DRAIN_S)
                if not done:  # the producer stopped reading its acks
                    writer.cancel()
                    if request.transport is not None:
                        request.transport.abort()
            finally:
                if not writer.done():
                    conn.acks.put_nowait(None)
                if live.producer is conn:
                    live.producer = None
                state.uploads.discard(conn)
                state.hub.release(stream.arn)
    with contextlib.suppress(ConnectionError, RuntimeError):
        await response.write_eof()
    if not request.content.is_eof():
        # Ended before the producer finished its body (a newer connection won, the
        # server is stopping, invalid MKV): close the connection, as KVS does, instead
        # of letting aiohttp read and discard the rest of the upload for 10 s.
        request.protocol.force_close()
    return response


# --- GetMedia ---------------------------------------------------------------------------------


def _document(rec: FragmentRecord, data: FragmentData, *, end_tags: bool) -> bytes:
    now = _now_ms()
    return render_fragment(
        ebml_header=data.ebml_header,
        header=data.header,
        cluster=data.cluster,
        trailer=data.trailer,
        fragment_number=rec.fragment_number,
        server_timestamp_ms=rec.server_timestamp_ms,
        producer_timestamp_ms=rec.producer_timestamp_ms,
        millis_behind_now=max(0, now - rec.server_timestamp_ms - rec.duration_ms)
        if end_tags
        else None,
        continuation_token=rec.fragment_number if end_tags else None,
    )


def _end_tags(frag: LiveFragment) -> bytes:
    behind = max(0, _now_ms() - frag.server_timestamp_ms - frag.duration_ms)
    return kvs_end_tags(behind, frag.number)


async def serve_fragments(
    state: ServerState,
    stream: StreamRecord,
    *,
    after: str | None,
    write: Callable[[bytes], Awaitable[None]],
    live_edge: bool = True,
    sink: ChunkedSink | None = None,
) -> None:
    """Write fragments with numbers > ``after`` as GetMedia documents, stored ones first,
    then the live edge until idle. (A callback, not a generator: every live chunk passes
    through here, and each generator layer costs a step per chunk.) With ``sink``, the
    open fragment's chunks reach the reader through it once the reader has caught up."""
    hub = state.hub
    live = hub.stream(stream.arn)
    last = after
    idle = state.config.live_idle_timeout_s
    while True:
        records: list[FragmentRecord] = []
        if last is None or last not in live.fragments:
            # Behind the live layer: look in the store. (Once ``last`` is a fragment the
            # hub still holds, everything after it passed through the hub too.)
            records = await state.run(state.backend.fragments, stream, after_number=last, limit=16)
        pending = hub.after(stream.arn, last)
        stored_next = records[0].fragment_number if records else None
        live_next = pending[0] if pending else None
        if stored_next is not None and (live_next is None or stored_next < live_next.number):
            for rec in records:
                if live_next is not None and rec.fragment_number >= live_next.number:
                    break
                last = rec.fragment_number
                try:
                    data = await state.run(state.backend.read_fragment, stream, last)
                except FragmentNotFound:  # expired between listing and reading
                    continue
                await write(_document(rec, data, end_tags=True))
            continue
        if live_next is not None:
            await _follow(live, live_next, write, sink)
            if live_next.dropped and not live_next.complete:
                return  # a rejected fragment was half sent: end; clients resume by token
            last = live_next.number
            continue
        if not live_edge:
            return
        if not await live.wait(idle) and not hub.after(stream.arn, last):
            records = await state.run(state.backend.fragments, stream, after_number=last, limit=1)
            if not records:
                return


async def _follow(
    live: StreamLive,
    frag: LiveFragment,
    write: Callable[[bytes], Awaitable[None]],
    sink: ChunkedSink | None,
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
            await write(frag.trailer + _end_tags(frag))
            return
        if frag.dropped:
            return
        # Caught up (no await since the last chunk was written): from here the producer
        # hands chunks to the sink, and we wake when the fragment ends or the sink lets go.
        if sink is not None and sink.ready():
            sent = await sink.ride(frag, sent)
        else:
            # No timer per chunk: the producer's connection ends (its idle limit
            # included) by completing or dropping this fragment, and either wakes us.
            await live.wait(None)


def _before(number: str) -> str:
    """The fragment number just before ``number`` (same width), so that "after it" means
    "from ``number`` on"."""
    return f"{int(number) - 1:0{len(number)}d}"


async def _start_point(
    state: ServerState, stream: StreamRecord, selector: dict[str, Any]
) -> str | None:
    """The fragment number a StartSelector starts after (None: from the earliest)."""
    kind = selector.get("StartSelectorType")
    backend = state.backend
    if kind == "EARLIEST":
        return None
    if kind == "NOW":
        pending = state.hub.after(stream.arn, None)
        open_now = [f for f in pending if not f.complete]
        if open_now:
            return _before(open_now[0].number)
        newest: FragmentRecord | None = await state.run(backend.last_fragment, stream)
        numbers = [f.number for f in pending] + ([newest.fragment_number] if newest else [])
        return max(numbers, default=None)
    if kind == "FRAGMENT_NUMBER":
        number = selector.get("AfterFragmentNumber")
        if not is_valid_fragment_number(number):
            raise KvsError("InvalidArgumentException", "AfterFragmentNumber is not valid.")
        return str(number)
    if kind == "CONTINUATION_TOKEN":
        token = selector.get("ContinuationToken")
        if not is_valid_fragment_number(token):
            raise KvsError("InvalidArgumentException", "ContinuationToken is not valid.")
        return str(token)
    if kind in ("PRODUCER_TIMESTAMP", "SERVER_TIMESTAMP"):
        ts = parse_timestamp(selector.get("StartTimestamp"), "StartTimestamp")
        field = "producer_timestamp_ms" if kind == "PRODUCER_TIMESTAMP" else "server_timestamp_ms"
        by = "producer" if kind == "PRODUCER_TIMESTAMP" else "server"

        def key(item: FragmentRecord | LiveFragment) -> int:
            value: int = getattr(item, field)
            return value

        # The fragment containing the timestamp, else the first one after it; stored
        # fragments first, then the live ones (the open one may contain it).
        window = 60_000  # longer than any fragment PutMedia accepts
        records: list[FragmentRecord] = await state.run(
            backend.fragments, stream, start_ms=ts - window, end_ms=ts, by=by
        )
        containing = [r for r in records if key(r) + r.duration_ms >= ts]
        if containing:
            return _before(containing[-1].fragment_number)
        later: list[FragmentRecord] = await state.run(
            backend.fragments, stream, start_ms=ts, by=by, limit=1
        )
        if later:
            return _before(later[0].fragment_number)
        pending = state.hub.after(stream.arn, None)
        live_containing = [
            f for f in pending if key(f) <= ts and (not f.complete or key(f) + f.duration_ms >= ts)
        ]
        if live_containing:
            return _before(live_containing[-1].number)
        live_later = [f for f in pending if key(f) >= ts]
        if live_later:
            return _before(live_later[0].number)
        newest = await state.run(backend.last_fragment, stream)
        numbers = [f.number for f in pending] + ([newest.fragment_number] if newest else [])
        return max(numbers, default=None)
    raise KvsError("InvalidArgumentException", f"Invalid StartSelectorType {kind!r}.")


async def get_media(request: web.Request, state: ServerState) -> web.StreamResponse:
    """``POST /getMedia``."""
    body = await read_json(request)
    stream = await state.stream(body)
    selector = body.get("StartSelector")
    if not isinstance(selector, dict):
        raise KvsError("InvalidArgumentException", "StartSelector is required.")
    after = await _start_point(state, stream, selector)
    live = state.hub.stream(stream.arn)
    if live.readers >= state.config.max_readers_per_stream:
        raise KvsError(
            "ConnectionLimitExceededException",
            f"More than {state.config.max_readers_per_stream} concurrent GetMedia connections.",
        )
    live.readers += 1
    try:
        response = await start_streaming(request, "video/webm")
        transport = request.transport
        sink = ChunkedSink(transport) if isinstance(transport, asyncio.Transport) else None
        await serve_fragments(state, stream, after=after, write=response.write, sink=sink)
        await response.write_eof()
        return response
    finally:
        live.readers -= 1
        state.hub.release(stream.arn)


ROUTES: dict[str, Handler] = {
    "/putMedia": put_media,
    "/getMedia": get_media,
}
