"""Live media streaming of a placed contact: the UpdateContactMediaStreamingBehavior blocks.

An Enabled block gets the contact's stream from the :class:`~callstream.flows.store.CallStore`
(created when absent with the instance's retention and KMS key, reused when present) and opens
an upload in the Connect shape (:func:`~callstream.client.producer.connect_producer`:
``AUDIO_FROM_CUSTOMER`` and ``AUDIO_TO_CUSTOMER`` tracks, ``ContactId``/``InstanceId`` tags,
ABSOLUTE timecodes = call start + media time, 20 ms frames, fragments ending on whole media
seconds). Streaming starts at the next frame to be played: StartTimestamp is that frame's
media time and StartFragmentNumber the number the store assigned (BUFFERING ack) to the first
fragment. A direction the block does not request is streamed as silence.

Streaming goes on across TransferToFlow until a Disabled block (the upload ends after the
frame being played, and the block completes once every fragment is PERSISTED) or the end of
the contact. Each period is published as a MediaStreamingStarted and a MediaStreamingStopped
event.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from typing import Any

from callstream.client.producer import (
    AUDIO_FROM_CUSTOMER,
    AUDIO_TO_CUSTOMER,
    KvsProducer,
    connect_producer,
)
from callstream.flows.clock import FRAGMENT_SAMPLES, SAMPLE_RATE, Int16Array, MediaClock, pcm
from callstream.flows.contact import Contact
from callstream.flows.effects import (
    Failed,
    MediaStreamingStarted,
    MediaStreamingStopped,
    Result,
    StartMediaStreaming,
    StopMediaStreaming,
)
from callstream.flows.instance import Instance
from callstream.flows.store import (
    MEDIA_STREAMING_STARTED,
    MEDIA_STREAMING_STOPPED,
    CallStore,
    CallUpload,
)
from callstream.kvs.acks import Ack, EventType

__all__ = ["MediaStreaming", "Streamer"]

log = logging.getLogger("callstream.flows.call")

Publish = Callable[[str, Mapping[str, Any]], None]


class Streamer:
    """One live-media-streaming period: frames in, 1 s fragments out to an upload.

    Played frames arrive through :meth:`push` (it is a :class:`~callstream.flows.clock.
    FrameSink`); the fragments wait in a queue until :meth:`attach` gives the upload they
    are written to. Fragment numbers come back in the upload's acks (:meth:`on_ack`).
    """

    def __init__(
        self,
        *,
        stream_name: str,
        stream_arn: str,
        producer: KvsProducer,
        media: MediaClock,
        start_sample: int,
        directions: tuple[str, ...],
    ) -> None:
        self.stream_name = stream_name
        self.stream_arn = stream_arn
        self.producer = producer
        self.media = media
        self.start_sample = start_sample
        self.stop_sample: int | None = None
        self.end_sample = start_sample
        self.directions = directions
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.closed = False
        self.first_timecode: int | None = None
        self.last_timecode: int | None = None
        self.numbers: dict[int, str] = {}
        self.errors: list[Ack] = []
        self.start_error: str | None = None
        self.first_number: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.task: asyncio.Task[bool] | None = None
        self._fragment_start: int | None = None

    # frames in -------------------------------------------------------------------------
    def push(self, a: int, b: int, customer: Int16Array, heard: Int16Array) -> None:
        """One played frame (samples ``[a, b)`` of the call): written to the upload at
        once, as a producer SDK streams a live fragment (an unknown-size Cluster per whole
        media second, a block per track per frame), so a reader sees every frame about
        when it is played."""
        if self.closed or a < self.start_sample:
            return
        if self.stop_sample is not None and a >= self.stop_sample:
            self.close()
            return
        producer = self.producer
        if self._fragment_start is None:
            self._fragment_start = a
            start_ms = self.media.epoch_ms(a)
            timecode = producer.timecode_for(start_ms)
            if self.first_timecode is None:
                self.first_timecode = timecode
                self.queue.put_nowait(producer.header())
            self.last_timecode = timecode
            self.queue.put_nowait(producer.cluster_start(start_ms))
        silence = bytes(2 * (b - a))
        rel = (a - self._fragment_start) * 1000 // SAMPLE_RATE
        self.queue.put_nowait(
            producer.block(
                AUDIO_FROM_CUSTOMER, rel, pcm(customer) if "From" in self.directions else silence
            )
            + producer.block(
                AUDIO_TO_CUSTOMER, rel, pcm(heard) if "To" in self.directions else silence
            )
        )
        self.end_sample = b
        if b % FRAGMENT_SAMPLES == 0:
            self._fragment_start = None  # the next frame starts the next fragment
        if self.stop_sample is not None and b >= self.stop_sample:
            self.close()

    def close(self) -> None:
        """No more frames: end the upload's input (which ends the open fragment)."""
        if not self.closed:
            self.closed = True
            self.queue.put_nowait(None)
            if self.first_timecode is None:
                self._fail_start("the call ended before any audio was streamed")

    # the upload ------------------------------------------------------------------------
    def attach(self, upload: CallUpload) -> None:
        """Write the fragments to ``upload`` (on a task of their own)."""
        self.task = asyncio.create_task(self._feed(upload), name=f"stream-{self.stream_name}")

    async def _feed(self, upload: CallUpload) -> bool:
        try:
            while (item := await self.queue.get()) is not None:
                await upload.write(item)
            return await upload.close()
        except asyncio.CancelledError:
            await upload.abort()
            raise

    def on_ack(self, ack: Ack) -> None:
        """Fragment numbers from BUFFERING acks; errors kept."""
        if ack.event_type == EventType.BUFFERING and ack.fragment_number:
            if ack.fragment_timecode is not None:
                self.numbers[ack.fragment_timecode] = ack.fragment_number
            if ack.fragment_timecode == self.first_timecode and not self.first_number.done():
                self.first_number.set_result(ack.fragment_number)
        elif ack.event_type == EventType.ERROR:
            self.errors.append(ack)
            if ack.fragment_timecode == self.first_timecode:
                self._fail_start(f"PutMedia ERROR {ack.error_id} {ack.error_code}")

    def _fail_start(self, message: str) -> None:
        if not self.first_number.done():
            self.start_error = message
            self.first_number.cancel()

    async def started(self) -> str:
        """The first fragment's number, once the store assigned it."""
        assert self.task is not None
        waiters: set[asyncio.Future[Any]] = {self.first_number, self.task}
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        if self.first_number.done() and not self.first_number.cancelled():
            return self.first_number.result()
        if self.start_error is not None:
            raise RuntimeError(self.start_error)
        exc = self.task.exception() if self.task.done() else None
        raise RuntimeError(f"PutMedia ended before the first fragment: {exc}") from exc

    async def stop(self, at_sample: int) -> bool | None:
        """Stream up to ``at_sample`` (or the end of the media), then wait for the upload to
        finish (every fragment PERSISTED): True when every fragment was confirmed, None when
        the upload failed."""
        self.stop_sample = max(self.start_sample, at_sample)
        if self.end_sample >= self.stop_sample or self.media.done.is_set():
            self.close()
        else:
            await self.media.until(self.stop_sample)
            self.close()
        if self.task is None:
            return None
        try:
            return await self.task
        except Exception as exc:
            log.warning("PutMedia upload to %s failed: %s", self.stream_name, exc)
            return None

    @property
    def stop_fragment_number(self) -> str | None:
        """The number of the last fragment streamed."""
        if self.last_timecode is None:
            return None
        return self.numbers.get(self.last_timecode)


class MediaStreaming:
    """The live media streaming of one contact: performs StartMediaStreaming and
    StopMediaStreaming on the media clock, through ``store``; progress lines go to
    ``emit``, the MediaStreamingStarted / MediaStreamingStopped events to ``publish``."""

    def __init__(
        self,
        *,
        store: CallStore,
        media: MediaClock,
        contact: Contact,
        instance: Instance,
        emit: Callable[[str], None],
        publish: Publish,
    ) -> None:
        self.store = store
        self.media = media
        self.contact = contact
        self.instance = instance
        self.emit = emit
        self.publish = publish
        self.streamers: list[Streamer] = []
        self.active: Streamer | None = None

    async def start(self, effect: StartMediaStreaming) -> Result:
        """Create/reuse the stream, start the upload, wait for the first fragment number."""
        if effect.already_streaming and self.active is not None:
            self.active.directions = effect.directions
            stream = self.contact.streaming
            self.emit(f"media streaming continues ({'/'.join(effect.directions)})")
            return MediaStreamingStarted(
                self.active.stream_arn,
                stream.start_fragment_number if stream else "",
                stream.start_timestamp_ms if stream else None,
            )
        if self.media.done.is_set():
            return Failed("the call has ended")
        try:
            arn = await self.store.ensure_stream(
                effect.stream_name,
                retention_hours=effect.retention_hours,
                kms_key_id=effect.kms_key_id,
            )
        except Exception as exc:
            self.emit(f"media streaming failed: {exc}")
            return Failed(f"cannot create stream {effect.stream_name}: {exc}")
        producer = connect_producer(
            contact_id=self.contact.contact_id, instance_id=self.instance.instance_id
        )
        start = self.media.emitted
        start_ms = self.media.epoch_ms(start)
        streamer = Streamer(
            stream_name=effect.stream_name,
            stream_arn=arn,
            producer=producer,
            media=self.media,
            start_sample=start,
            directions=effect.directions,
        )
        self.streamers.append(streamer)
        self.media.sinks.append(streamer)  # frames from `start` on wait for the upload
        try:
            upload = await self.store.open_upload(
                arn, producer_start_ms=start_ms, on_ack=streamer.on_ack
            )
            streamer.attach(upload)
            number = await streamer.started()
        except Exception as exc:
            streamer.close()
            self.emit(f"media streaming failed: {exc}")
            return Failed(str(exc))
        self.active = streamer
        self.emit(
            f"media streaming started: {effect.stream_name} ({'/'.join(effect.directions)}),"
            f" StartFragmentNumber {number}, StartTimestamp {start_ms}"
        )
        self.publish(
            MEDIA_STREAMING_STARTED,
            {
                "ContactId": self.contact.contact_id,
                "StreamARN": arn,
                "StartFragmentNumber": number,
                "StartTimestamp": start_ms,
                "InstanceARN": self.contact.instance_arn or self.instance.arn,
                "Tracks": [AUDIO_FROM_CUSTOMER, AUDIO_TO_CUSTOMER],
            },
        )
        return MediaStreamingStarted(arn, number, start_ms)

    async def stop(self, effect: StopMediaStreaming) -> Result:
        """End the upload after the frame being played; wait for the last PERSISTED."""
        streamer = self.active
        if streamer is None or streamer.stream_arn != effect.stream_arn:
            return self._stopped(effect.stream_arn, self.media.epoch_ms(self.media.emitted), None)
        self.active = None
        at = self.media.emitted if self.media.done.is_set() else self.media.next_frame_end()
        complete = await streamer.stop(at)
        stop_ms = self.media.epoch_ms(streamer.end_sample)
        number = streamer.stop_fragment_number
        if complete is None and effect.reason == "block":
            self.emit("media streaming stop failed (upload error)")
            return Failed("the PutMedia upload failed")
        if complete is False:
            self.emit("media streaming stopped; some fragments were not confirmed")
        self.emit(
            f"media streaming stopped ({effect.reason}): StopTimestamp {stop_ms},"
            f" last fragment {number}"
        )
        return self._stopped(streamer.stream_arn, stop_ms, number)

    def _stopped(self, arn: str, stop_ms: int, number: str | None) -> MediaStreamingStopped:
        self.publish(
            MEDIA_STREAMING_STOPPED,
            {
                "ContactId": self.contact.contact_id,
                "StreamARN": arn,
                "StopFragmentNumber": number,
                "StopTimestamp": stop_ms,
                "InstanceARN": self.contact.instance_arn or self.instance.arn,
            },
        )
        return MediaStreamingStopped(stop_ms, number)

    async def finish(self) -> None:
        """End every upload still running (a start abandoned by a hangup, errors)."""
        for streamer in self.streamers:
            if not streamer.closed or (streamer.task is not None and not streamer.task.done()):
                await streamer.stop(self.media.emitted)

    async def cancel(self) -> None:
        """Abandon uploads still running (the call is being torn down)."""
        for streamer in self.streamers:
            if streamer.task is not None and not streamer.task.done():
                streamer.task.cancel()
                with contextlib.suppress(BaseException):
                    await streamer.task
