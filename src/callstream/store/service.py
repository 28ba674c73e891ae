"""The media store service: everything the store does, in process.

:class:`MediaStore` is what every producer and consumer talks to: the KVS HTTP API
(PutMedia, GetMedia, the archived media and control-plane operations are thin adapters
over it), and in-process parts (contact flows, the voice connector, ingest gateways,
analytics) without a loop through HTTP::

    store = MediaStore(open_backend("embedded", data_dir))
    await store.start()
    stream = await store.create_stream("call-1", data_retention_hours=24)
    writer = await store.open_frame_writer(stream, connect_producer(contact_id="c-1"))
    await writer.write("AUDIO_FROM_CUSTOMER", pcm_20ms, timestamp_ms)
    ...
    async for fragment in store.read(stream, StartSelector.earliest(), follow=True):
        print(fragment.number, fragment.parse().tags)

Producers -> store service (ingest, numbering, live fan-out, persistence, retention,
encryption; the backend behind :mod:`callstream.store.base`'s async seam) -> consumers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from typing import Any, Literal, Protocol

from callstream.events.types import Event
from callstream.kvs.acks import Ack
from callstream.kvs.selectors import StartSelector
from callstream.store import reading
from callstream.store.base import (
    FragmentRecord,
    ReaderKind,
    StoreBackend,
    StoreError,
    StreamRecord,
    now_ms,
)
from callstream.store.live import LiveHub, LiveSink
from callstream.store.numbers import is_valid_fragment_number, parse_fragment_number
from callstream.store.reading import MediaFragment
from callstream.store.upload import EndReason
from callstream.store.uploads import StoreConfig, UploadResult, UploadRunner
from callstream.store.writers import FrameEncoder, FrameWriter, Writer

__all__ = ["EventSink", "MediaFragment", "MediaStore", "StoreClosed", "StoreConfig"]

log = logging.getLogger("callstream.store")

MS_LIMIT = 1 << 62
"""Past any time a fragment can have been stored at (the store keeps 64-bit ms)."""


class StoreClosed(StoreError):
    """The store is closing or closed."""


class EventSink(Protocol):
    """Where the store reports what happens to streams (the call-event bus)."""

    def publish(self, event: Event) -> object: ...


class MediaStore:
    """The store service over one backend (see the module docstring)."""

    def __init__(
        self,
        backend: StoreBackend,
        *,
        config: StoreConfig | None = None,
        events: EventSink | None = None,
    ) -> None:
        self.backend = backend
        self.config = config or StoreConfig()
        self.events = events
        # A backend several processes share relays live fragments between them.
        self.hub = LiveHub(relay=getattr(backend, "relay", None))
        self.uploads: set[UploadRunner] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._reaper: asyncio.Task[None] | None = None
        self.closing = False

    # --- lifecycle ----------------------------------------------------------------------
    async def start(self) -> None:
        """Start the backend and the retention reaper."""
        await self.backend.start()
        if self.config.reap_interval_s > 0:
            self._reaper = asyncio.create_task(self._reap_forever())

    async def stop_uploads(self, timeout: float = 10.0) -> None:
        """End every upload the way a newer one would: each stores what it completed and
        sends its acks. New uploads end at once from here on."""
        self.closing = True
        uploads = list(self.uploads)
        for upload in uploads:
            upload.supersede()
        tasks = [u.task for u in uploads if u.task is not None and not u.task.done()]
        if tasks:
            await asyncio.wait(tasks, timeout=timeout)

    async def close(self) -> None:
        """End uploads, stop the reaper, close the backend."""
        await self.stop_uploads()
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
        for task in list(self._tasks):
            task.cancel()
        await self.backend.close()

    async def _reap_forever(self) -> None:
        while True:
            try:
                freed = await self.backend.log.reap(now_ms())
                if freed:
                    log.info("retention reaper freed %d bytes", freed)
            except StoreError as err:
                log.warning("retention reaper: %s", err.message)
            except Exception:
                log.exception("retention reaper failed")
            await asyncio.sleep(self.config.reap_interval_s)

    def _publish(self, event: Event) -> None:
        if self.events is not None:
            try:
                self.events.publish(event)
            except Exception:  # a broken subscriber must not fail the store
                log.exception("publishing %s failed", type(event).__name__)

    # --- streams ------------------------------------------------------------------------
    async def create_stream(
        self,
        name: str,
        *,
        device_name: str | None = None,
        media_type: str | None = None,
        kms_key_id: str | None = None,
        data_retention_hours: int = 0,
        tags: dict[str, str] | None = None,
    ) -> StreamRecord:
        """A new stream (KVS's CreateStream)."""
        record = await self.backend.catalog.create_stream(
            name,
            device_name=device_name,
            media_type=media_type,
            kms_key_id=kms_key_id,
            data_retention_hours=data_retention_hours,
            tags=dict(tags or {}),
        )
        self._publish(
            Event.of(
                "StreamCreated",
                StreamARN=record.arn,
                StreamName=record.name,
                DataRetentionInHours=record.data_retention_hours,
                MediaType=record.media_type,
                KmsKeyId=record.kms_key_id,
            )
        )
        return record

    async def stream(self, *, name: str | None = None, arn: str | None = None) -> StreamRecord:
        """The stream a name or ARN names (:class:`StreamNotFound` when absent)."""
        return await self.backend.catalog.get_stream(name=name, arn=arn)

    async def list_streams(
        self, *, prefix: str | None = None, after_name: str | None = None, limit: int = 10000
    ) -> list[StreamRecord]:
        return await self.backend.catalog.list_streams(
            prefix=prefix, after_name=after_name, limit=limit
        )

    async def update_stream(
        self, arn: str, current_version: str, **changes: object
    ) -> StreamRecord:
        return await self.backend.catalog.update_stream(arn, current_version, **changes)

    async def delete_stream(self, arn: str, current_version: str | None = None) -> None:
        """Delete the stream; its live readers end, its upload gets STREAM_NOT_ACTIVE."""
        record = await self.backend.catalog.get_stream(arn=arn)
        await self.backend.catalog.delete_stream(arn, current_version)
        self.hub.forget(arn)
        self._publish(Event.of("StreamDeleted", StreamARN=record.arn, StreamName=record.name))

    # --- uploads ------------------------------------------------------------------------
    def _runner(
        self,
        stream: StreamRecord,
        timecode_type: str,
        producer_start_ms: int | None,
        send_ack: Callable[[Ack], Awaitable[None]],
    ) -> UploadRunner:
        if timecode_type not in ("ABSOLUTE", "RELATIVE"):
            raise ValueError("timecode_type must be ABSOLUTE or RELATIVE")
        start = producer_start_ms
        if start is None:
            start = now_ms() if timecode_type == "RELATIVE" else 0
        return UploadRunner(
            self.backend,
            self.hub,
            self.config,
            stream,
            timecode_type=timecode_type,
            producer_start_ms=start,
            send_ack=send_ack,
        )

    async def ingest(
        self,
        stream: StreamRecord,
        read: Callable[[], Awaitable[bytes]],
        send_ack: Callable[[Ack], Awaitable[None]],
        *,
        timecode_type: str = "ABSOLUTE",
        producer_start_ms: int | None = None,
    ) -> UploadResult:
        """Run one upload whose MKV bytes come from ``read`` (``b""`` at the end) and
        whose acks go to ``send_ack``: PutMedia's core. Returns once the upload ended,
        every fragment it completed is stored and its acks are sent."""
        runner = self._runner(stream, timecode_type, producer_start_ms, send_ack)
        return await self._run_upload(runner, read)

    async def _run_upload(
        self, runner: UploadRunner, read: Callable[[], Awaitable[bytes]]
    ) -> UploadResult:
        stream = runner.stream
        self.uploads.add(runner)
        self._publish(
            Event.of(
                "ProducerConnected",
                StreamARN=stream.arn,
                StreamName=stream.name,
                ProducerStartTimestamp=runner.producer_start_ms or None,
                FragmentTimecodeType=runner.timecode_type,
            )
        )
        try:
            result = await runner.run(read, closing=self.closing)
        finally:
            self.uploads.discard(runner)
        self._publish(_producer_ended(stream, result, stopping=self.closing))
        return result

    async def open_writer(
        self,
        stream: StreamRecord,
        *,
        timecode_type: str = "ABSOLUTE",
        producer_start_ms: int | None = None,
        on_ack: Callable[[Ack], object] | None = None,
    ) -> Writer:
        """An upload of MKV bytes fed from this process (see :class:`Writer`)."""
        queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize=64)

        async def send(ack: Ack) -> None:
            if on_ack is not None:
                on_ack(ack)

        async def read() -> bytes:
            return await queue.get()

        runner = self._runner(stream, timecode_type, producer_start_ms, send)
        writer = Writer(runner, queue)
        writer._start(asyncio.create_task(self._run_upload(runner, read)))
        return writer

    async def open_frame_writer(
        self,
        stream: StreamRecord,
        encoder: FrameEncoder,
        *,
        fragment_ms: int = 1000,
        timecode_type: str = "ABSOLUTE",
        producer_start_ms: int | None = None,
        on_ack: Callable[[Ack], object] | None = None,
    ) -> FrameWriter:
        """An upload of timestamped audio frames (see :class:`FrameWriter`)."""
        writer = await self.open_writer(
            stream,
            timecode_type=timecode_type,
            producer_start_ms=producer_start_ms,
            on_ack=on_ack,
        )
        return FrameWriter(writer, encoder, fragment_ms=fragment_ms)

    def producing(self, arn: str) -> bool:
        """Whether an upload (PutMedia, or an in-process writer) is writing to ``arn``."""
        return any(upload.stream.arn == arn for upload in self.uploads)

    async def live_ingest_url(self, arn: str) -> str | None:
        """Where clients reach the other node that ingests ``arn`` live now, when the
        backend is shared by several nodes and that node advertises a URL; else None."""
        relay = self.hub.relay
        return None if relay is None else await relay.owner_url(arn)

    # --- reading ------------------------------------------------------------------------
    async def start_after(self, stream: StreamRecord, selector: StartSelector) -> str | None:
        """The fragment number a reader with ``selector`` starts after (None: earliest)."""
        await self.hub.watch(stream.arn)
        return await reading.start_after(self.backend.log, self.hub, stream, selector)

    async def follow(
        self,
        stream: StreamRecord,
        after: str | None,
        write: Callable[[bytes], Awaitable[None]],
        *,
        sink: LiveSink | None = None,
        live_edge: bool = True,
    ) -> None:
        """Write fragments after ``after`` as GetMedia documents, live ones chunk by chunk
        (GetMedia's core; the caller holds a reader slot)."""
        idle = self.config.live_idle_s if live_edge else None
        await self.hub.watch(stream.arn)
        await reading.follow(
            self.backend.log, self.hub, stream, after=after, write=write, idle_s=idle, sink=sink
        )

    async def read(
        self,
        stream: StreamRecord,
        start: StartSelector,
        *,
        follow: bool = True,
        idle_s: float | None = None,
    ) -> AsyncIterator[MediaFragment]:
        """Whole fragments from ``start`` on: stored ones, then (``follow``) each live one
        as it completes, until the stream is deleted, ``idle_s`` passes without a new
        fragment, or the caller stops. Without ``follow``, only what is there now."""
        after = await self.start_after(stream, start)
        limit: float | None = idle_s if follow else 0.0
        if follow:
            await self.hub.watch(stream.arn)
        async for fragment in reading.fragments(
            self.backend.log, self.hub, stream, after=after, idle_s=limit
        ):
            yield fragment

    @contextlib.asynccontextmanager
    async def reader_slot(self, stream: StreamRecord, kind: ReaderKind) -> AsyncIterator[None]:
        """Hold one of the stream's concurrent-reader places for GetMedia (3) or
        GetMediaForFragmentList (5); :class:`ReaderLimitExceeded` when none is free."""
        limit = self.config.max_readers if kind == "GET_MEDIA" else self.config.max_list_readers
        slot = await self.backend.catalog.acquire_reader(stream.arn, kind, limit)
        try:
            yield
        finally:
            await self.backend.catalog.release_reader(slot)

    async def list_fragments(
        self,
        stream: StreamRecord,
        *,
        after_number: str | None = None,
        start_ms: int | None = None,
        end_ms: int | None = None,
        by: Literal["server", "producer"] = "server",
        limit: int | None = None,
    ) -> list[FragmentRecord]:
        """Stored fragments in number order (ListFragments' core)."""
        return await self.backend.log.range(
            stream, after_number=after_number, start_ms=start_ms, end_ms=end_ms, by=by, limit=limit
        )

    async def find_fragments(
        self, stream: StreamRecord, numbers: Iterable[str]
    ) -> dict[str, FragmentRecord]:
        """Index entries of ``numbers`` (missing ones left out). A fragment number
        encodes its server timestamp, so each is found with a point query; numbers that
        are not where their timestamp says are looked for in the whole index."""
        log_ = self.backend.log
        wanted = set(numbers)
        found: dict[str, FragmentRecord] = {}
        stamps = sorted(
            {parse_fragment_number(n)[1] for n in wanted if is_valid_fragment_number(n)}
        )
        for ts in stamps:
            if ts > MS_LIMIT:
                continue
            for rec in await log_.range(stream, start_ms=ts, end_ms=ts):
                if rec.fragment_number in wanted:
                    found[rec.fragment_number] = rec
        if len(found) < len(wanted):
            for rec in await log_.range(stream):
                if rec.fragment_number in wanted:
                    found[rec.fragment_number] = rec
        return found

    async def fragment(self, stream: StreamRecord, record: FragmentRecord) -> MediaFragment:
        """One stored fragment's bytes (:class:`FragmentNotFound` once expired)."""
        data = await self.backend.log.read(stream, record.fragment_number)
        return MediaFragment.stored(record, data)

    async def fragments(
        self, stream: StreamRecord, records: Sequence[FragmentRecord]
    ) -> list[MediaFragment]:
        return [await self.fragment(stream, r) for r in records]


_END_REASONS = {
    EndReason.BODY_ENDED: "COMPLETED",
    EndReason.SUPERSEDED: "SUPERSEDED",
    EndReason.IDLE: "IDLE_TIMEOUT",
    EndReason.FAILED: "ERROR",
}


def _producer_ended(stream: StreamRecord, result: UploadResult, *, stopping: bool) -> Event:
    reason = _END_REASONS[result.end_reason] if result.end_reason is not None else "ERROR"
    if stopping and result.end_reason is EndReason.SUPERSEDED:
        reason = "SERVER_STOPPING"
    return Event.of(
        "ProducerEnded",
        StreamARN=stream.arn,
        StreamName=stream.name,
        FragmentsStored=len(result.stored),
        LastFragmentNumber=result.stored[-1] if result.stored else None,
        Reason=reason,
        ErrorCode=result.errors[-1].error_code if result.errors else None,
    )
