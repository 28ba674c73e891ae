"""Uploads into the store: the I/O edge around :class:`~callstream.store.upload.UploadLifecycle`.

An :class:`UploadRunner` reads one upload's MKV bytes through a ``read`` callback (an
HTTP body for PutMedia, a queue for an in-process :class:`Writer`) and carries out what
the lifecycle decides: fragment numbers from the fragment log, Cluster bytes to live
readers through the :class:`~callstream.store.live.LiveHub`, completed fragments to the
log (in order, at most :attr:`StoreConfig.persist_backlog` waiting: a slow disk slows the
producer instead of growing memory), acks through a ``send_ack`` callback on a task of
their own (a producer that stops reading acks never holds the upload).

Time enters through one watchdog timer per upload, not a timer per chunk: while the
runner waits for bytes, the watchdog interrupts the wait once the lifecycle has something
due (a pause after a complete Cluster, an IDLE ack, the idle end).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from callstream.kvs.acks import Ack, EventType
from callstream.mkv.kvs import kvs_start_tags
from callstream.mkv.writer import segment_start
from callstream.store.base import (
    FragmentAppend,
    FragmentData,
    ProducerLease,
    StoreBackend,
    StoreError,
    StreamNotFound,
    StreamRecord,
    now_ms,
)
from callstream.store.ingest import (
    ClusterBytes,
    FragmentOpened,
    FragmentReady,
    FragmentReceived,
    IngestError,
    IngestSession,
)
from callstream.store.live import LiveFragment, LiveHub, StreamLive
from callstream.store.upload import (
    EndReason,
    IdleAck,
    UploadEnded,
    UploadEvent,
    UploadLifecycle,
    UploadState,
)

__all__ = ["StoreConfig", "UploadResult", "UploadRunner"]

log = logging.getLogger("callstream.store")

Read = Callable[[], Awaitable[bytes]]
"""The next chunk of the body; ``b""`` at its end."""
SendAck = Callable[[Ack], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class StoreConfig:
    """How the store service behaves (``callstream serve`` settings)."""

    flush_after_s: float = 0.15
    idle_ack_s: float = 3.0
    idle_close_s: float = 30.0
    persist_backlog: int = 4
    """Completed fragments of one upload waiting for storage, at most."""
    ack_drain_s: float = 5.0
    """How long an ending upload waits for its last acks to be sent."""
    live_idle_s: float = 3.0
    """A GetMedia response at the live edge ends after this long without news."""
    max_readers: int = 3
    max_list_readers: int = 5
    reap_interval_s: float = 60.0


@dataclass(slots=True)
class UploadResult:
    """How an upload went."""

    end_reason: EndReason | None = None
    stored: list[str] = field(default_factory=list)
    """Numbers of the fragments stored, in order."""
    errors: list[Ack] = field(default_factory=list)
    acks_sent: bool = True
    """Every ack reached ``send_ack`` (False: the producer stopped taking them)."""


class UploadRunner:
    """One upload (see the module docstring)."""

    def __init__(
        self,
        backend: StoreBackend,
        hub: LiveHub,
        config: StoreConfig,
        stream: StreamRecord,
        *,
        timecode_type: str,
        producer_start_ms: int,
        send_ack: SendAck,
    ) -> None:
        self.backend = backend
        self.hub = hub
        self.config = config
        self.stream = stream
        self.timecode_type = timecode_type
        self.producer_start_ms = producer_start_ms
        self.send_ack = send_ack
        self.result = UploadResult()
        self.numbers: dict[int, LiveFragment] = {}  # ingest seq -> fragment
        self.acks: asyncio.Queue[Ack | None] = asyncio.Queue()
        # Never blocks a put: the reading loop waits for room before queueing, which
        # holds the upload (and, through TCP, the producer) while storage is behind.
        self.persist: asyncio.Queue[tuple[FragmentReady, LiveFragment] | None] = asyncio.Queue()
        self.room = asyncio.Event()  # set whenever a queued fragment has been dealt with
        self.persister: asyncio.Task[None] | None = None
        self.superseded = False
        self.ending = False  # in the final clean-up: nothing may interrupt it any more
        self.task: asyncio.Task[object] | None = None
        self.live: StreamLive | None = None
        self.lifecycle: UploadLifecycle | None = None
        self.lease: ProducerLease | None = None  # once the upload took the stream

    # --- control from outside -----------------------------------------------------------
    def supersede(self) -> None:
        """A newer upload took the stream (or the store is closing): end this one, storing
        the fragments it completed. Idempotent; a no-op once the upload is ending."""
        if self.superseded or self.ending:
            return
        self.superseded = True
        if self.task is not None:
            self.task.cancel()

    # --- the run ------------------------------------------------------------------------
    async def run(self, read: Read, *, closing: bool = False) -> UploadResult:
        """Read and store the upload until it ends; returns how it went."""
        self.task = asyncio.current_task()
        catalog = self.backend.catalog
        lease: ProducerLease = await catalog.acquire_producer(self.stream.arn)
        self.lease = lease
        live = self.live = self.hub.stream(self.stream.arn)
        previous = live.producer
        if isinstance(previous, UploadRunner):
            previous.supersede()  # a newer upload to the stream wins, as on KVS
        live.producer = self
        session = IngestSession(
            timecode_type=self.timecode_type,
            producer_start_ms=self.producer_start_ms,
            last_timestamp_ns=lease.last_timestamp_ns,
        )
        loop = asyncio.get_running_loop()
        cfg = self.config
        lifecycle = self.lifecycle = UploadLifecycle(
            session,
            now=loop.time(),
            flush_after_s=cfg.flush_after_s,
            idle_ack_s=cfg.idle_ack_s,
            idle_close_s=cfg.idle_close_s,
        )
        writer = asyncio.create_task(self._write_acks())
        self.persister = asyncio.create_task(self._persist_fragments())
        if closing:
            self.supersede()
        try:
            await self._read_loop(read, lifecycle)
        finally:
            await self._end(lifecycle, lease, writer)
        return self.result

    async def _read_loop(self, read: Read, lifecycle: UploadLifecycle) -> None:
        # One watchdog per upload instead of a timer per chunk: while the loop waits for
        # body bytes, it interrupts the wait once the lifecycle has something due.
        loop = asyncio.get_running_loop()
        me = asyncio.current_task()
        reading = poked = False
        dog: asyncio.TimerHandle | None = None
        live = self.live
        assert live is not None

        def watchdog() -> None:
            nonlocal poked, dog
            now = loop.time()
            due = lifecycle.deadline()
            if due is None:
                return
            if reading and not poked and me is not None and now >= due:
                poked = True
                me.cancel()
            # Wake when due, and at least every flush period (a Cluster may complete
            # meanwhile, which brings the deadline closer); nothing is due while busy.
            step = self.config.flush_after_s
            delay = min(step, max(due - now, 0.005)) if reading else step
            dog = loop.call_later(delay, watchdog)

        dog = loop.call_later(self.config.flush_after_s, watchdog)
        try:
            while lifecycle.state is UploadState.RECEIVING:
                reading = True
                try:
                    chunk: bytes | None = await read()
                except asyncio.CancelledError:
                    if not poked or me is None:
                        raise
                    poked = False
                    me.uncancel()
                    if self.superseded or me.cancelling():
                        raise  # a real cancellation came with the poke
                    chunk = None  # the watchdog: something is due
                finally:
                    reading = False
                if chunk is None:
                    await self.handle(lifecycle.tick(loop.time()))
                elif not chunk:
                    await self.handle(lifecycle.end_of_body())
                else:
                    events = lifecycle.data(chunk, loop.time())
                    if len(events) == 1 and type(events[0]) is ClusterBytes:
                        # The steady state of a live upload (frames of an open Cluster):
                        # no coroutine for it.
                        self.numbers[events[0].seq].append(events[0].data)
                        live.wake()
                    elif events:
                        await self.handle(events)
        except ConnectionError:
            await self.handle(lifecycle.connection_lost())
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if not self.superseded or task is None:
                raise
            task.uncancel()
        finally:
            if dog is not None:
                dog.cancel()

    async def handle(self, events: list[UploadEvent]) -> None:
        """Carry out the lifecycle's events."""
        hub = self.hub
        arn = self.stream.arn
        touched = False
        ending_after_batch = False
        for ev in events:
            kind = type(ev)
            if kind is ClusterBytes:
                assert isinstance(ev, ClusterBytes)
                self.numbers[ev.seq].append(ev.data)
                touched = True
            elif kind is FragmentOpened:
                assert isinstance(ev, FragmentOpened)
                if not await self._open(ev):
                    assert self.lifecycle is not None
                    self.result.end_reason = EndReason.FAILED
                    self.lifecycle.stop()
                    break
                touched = True
            elif kind is FragmentReceived:
                assert isinstance(ev, FragmentReceived)
                number = self.numbers[ev.seq].number
                await self.acks.put(Ack(EventType.RECEIVED, ev.timecode, number))
            elif kind is FragmentReady:
                assert isinstance(ev, FragmentReady)
                frag = self.numbers.pop(ev.seq)
                frag.finish(ev.trailer, ev.duration_ms)
                touched = True
                hub.notify(arn)
                try:  # backpressure: hold the upload while storage is behind
                    await self._wait_for_room()
                except asyncio.CancelledError:
                    if not self.superseded:
                        raise
                    # Ended by a newer upload or by shutdown: finish this batch (its
                    # bytes are consumed) and end after it.
                    ending_after_batch = True
                finally:  # queued exactly once, also when the upload is being ended
                    self.persist.put_nowait((ev, frag))
            elif kind is IngestError:
                assert isinstance(ev, IngestError)
                dropped = self.numbers.pop(ev.seq, None) if ev.seq is not None else None
                if dropped is not None:
                    dropped.drop()
                    touched = True
                ack = Ack.error(ev.code, ev.timecode, dropped.number if dropped else None)
                self.result.errors.append(ack)
                await self.acks.put(ack)
            elif kind is IdleAck:
                await self.acks.put(Ack.idle())
            elif kind is UploadEnded:
                assert isinstance(ev, UploadEnded)
                self.result.end_reason = ev.reason
        if touched:
            hub.notify(arn)
        if ending_after_batch:
            raise asyncio.CancelledError

    async def _open(self, ev: FragmentOpened) -> bool:
        """Number a new fragment and open it for live readers; False if that failed."""
        now = now_ms()
        try:
            number = await self.backend.log.allocate(self.stream, now)
        except StreamNotFound:  # deleted while we were ingesting
            await self.acks.put(Ack.error("STREAM_NOT_ACTIVE", ev.timecode, None))
            return False
        except StoreError as err:  # no fragment number (a full disk): end here
            log.warning("upload to %s ends: %s", self.stream.arn, err.message)
            await self.acks.put(Ack.error("INTERNAL_ERROR", ev.timecode, None))
            return False
        pre = kvs_start_tags(number, now, ev.producer_timestamp_ms)
        frag = LiveFragment(
            number=number,
            server_timestamp_ms=now,
            producer_timestamp_ms=ev.producer_timestamp_ms,
            prefix=ev.ebml_header + segment_start() + ev.prefix + pre,
        )
        self.numbers[ev.seq] = frag
        self.hub.open(self.stream.arn, frag)
        await self.acks.put(Ack(EventType.BUFFERING, ev.timecode, number))
        return True

    async def _wait_for_room(self) -> None:
        """Hold the upload while ``persist_backlog`` completed fragments wait for storage
        (not once the upload is being ended, nor if storing has stopped)."""
        while (
            self.persist.qsize() >= self.config.persist_backlog
            and not (self.superseded or self.ending)
            and not (self.persister is not None and self.persister.done())
        ):
            self.room.clear()
            await self.room.wait()

    async def _write_acks(self) -> None:
        while (ack := await self.acks.get()) is not None:
            with contextlib.suppress(ConnectionError, RuntimeError):
                await self.send_ack(ack)

    async def _retained(self) -> bool:
        """Does the stream keep data now (UpdateDataRetention may change it mid-upload)?"""
        try:
            current = await self.backend.catalog.get_stream(arn=self.stream.arn)
        except StoreError:  # deleted or closing: the fragment is stored all the same
            return self.stream.data_retention_hours > 0
        return current.data_retention_hours > 0

    async def _persist_fragments(self) -> None:
        while (item := await self.persist.get()) is not None:
            ready, frag = item
            try:
                [result] = await self.backend.log.append(
                    [
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
                    ]
                )
                if isinstance(result, BaseException):
                    raise result
            except Exception as err:  # storage failure: tell the producer, keep going
                frag.drop()
                if isinstance(err, StreamNotFound):
                    code = "STREAM_NOT_ACTIVE"
                elif isinstance(err, StoreError):  # a full disk, say: one line each
                    log.warning("cannot store fragment %s: %s", frag.number, err.message)
                    code = "INTERNAL_ERROR"
                else:
                    log.exception("storing fragment %s failed", frag.number)
                    code = "INTERNAL_ERROR"
                ack = Ack.error(code, ready.timecode, frag.number)
                self.result.errors.append(ack)
                await self.acks.put(ack)
                self.hub.notify(self.stream.arn)
                continue
            finally:
                self.room.set()
            frag.mark_persisted()
            self.result.stored.append(frag.number)
            if await self._retained():
                await self.acks.put(Ack(EventType.PERSISTED, ready.timecode, frag.number))
            self.hub.prune(self.stream.arn)

    async def _end(
        self, lifecycle: UploadLifecycle, lease: ProducerLease, writer: asyncio.Task[None]
    ) -> None:
        """Store what was received, send the last acks, give the stream back."""
        self.ending = True  # a newer upload or shutdown no longer interrupts us
        live = self.live
        assert live is not None and self.persister is not None
        try:
            with contextlib.suppress(Exception):
                await self.handle(lifecycle.supersede())  # a complete Cluster: store it
            if self.result.end_reason is None:
                self.result.end_reason = lifecycle.end_reason
        finally:
            for frag in self.numbers.values():  # fragments that never completed
                frag.drop()
            self.hub.notify(self.stream.arn)
            self.persist.put_nowait(None)
            try:
                # asyncio.wait, not await: should this task still be cancelled (a forced
                # shutdown), storing what was received must not be cancelled too.
                await asyncio.wait([self.persister])
                self.acks.put_nowait(None)
                done, _ = await asyncio.wait([writer], timeout=self.config.ack_drain_s)
                if not done:  # the producer stopped taking its acks
                    writer.cancel()
                    self.result.acks_sent = False
            finally:
                if not writer.done():
                    self.acks.put_nowait(None)
                with contextlib.suppress(StoreError):
                    await self.backend.catalog.release_producer(
                        lease, lifecycle.session.last_timestamp_ns
                    )
                if live.producer is self:
                    live.producer = None
                self.hub.release(self.stream.arn)
