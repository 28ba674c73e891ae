"""Uploads fed from this process: MKV bytes (:class:`Writer`) or audio frames per track
(:class:`FrameWriter`), through the same ingest as PutMedia.

A :class:`FrameWriter` turns timestamped frames into the MKV a KVS producer would send
(an unknown-size Cluster per fragment, a SimpleBlock per frame, as it arrives), so live
readers get each frame as it is written and the store checks it like any upload. The
bytes of the header, fragment metadata and blocks come from a :class:`FrameEncoder`,
which decides the stream's shape (Connect's two tracks, a Chime leg, ...).
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from callstream.store.base import StoreError
from callstream.store.uploads import UploadResult, UploadRunner

__all__ = ["FrameEncoder", "FrameMuxer", "FrameWriter", "Writer", "WriterClosed"]

QUEUE_CHUNKS = 64
"""Chunks a writer may have waiting before :meth:`Writer.write` waits (backpressure)."""


class WriterClosed(StoreError):
    """The upload ended (a newer upload took the stream, the store closed, or the bytes
    were invalid) and takes no more data."""


class Writer:
    """An upload fed from this process: write MKV bytes in any chunking, then
    :meth:`close`. Acks go to ``on_ack`` as the store produces them (the same acks a
    PutMedia producer reads)."""

    def __init__(self, runner: UploadRunner, queue: asyncio.Queue[bytes]) -> None:
        self.runner = runner
        self._queue = queue
        self._task: asyncio.Task[UploadResult] | None = None
        self._closed = False

    def _start(self, task: asyncio.Task[UploadResult]) -> None:
        self._task = task

    @property
    def stream_arn(self) -> str:
        return self.runner.stream.arn

    @property
    def ended(self) -> bool:
        """The upload is over (after :meth:`close`, or ended by the store)."""
        return self._task is not None and self._task.done()

    async def write(self, data: bytes) -> None:
        """Hand over bytes of the MKV stream (waits while the store is behind)."""
        if self._closed or self.ended:
            raise WriterClosed("the upload has ended")
        if data and not await self._offer(bytes(data)):
            raise WriterClosed("the upload has ended")

    def write_nowait(self, data: bytes) -> bool:
        """Hand over bytes without waiting: False when the store is behind (the queue is
        full) or the upload has ended; then use :meth:`write`."""
        if self._closed or self.ended or self._queue.full():
            return False
        if data:
            self._queue.put_nowait(bytes(data))
        return True

    async def close(self) -> UploadResult:
        """End the upload: the last fragment is completed and stored; returns how the
        upload went once every fragment is stored and acknowledged."""
        assert self._task is not None
        if not self._closed:
            self._closed = True
            await self._offer(b"")
        return await self._task

    async def _offer(self, data: bytes) -> bool:
        """Queue ``data`` for the upload; False when the upload ended first (it reads no
        more, so a full queue would never drain)."""
        task = self._task
        assert task is not None
        if task.done():
            return False
        if not self._queue.full():
            self._queue.put_nowait(data)
            return True
        put = asyncio.ensure_future(self._queue.put(data))
        done, _ = await asyncio.wait([put, task], return_when=asyncio.FIRST_COMPLETED)
        if put in done:
            return True
        put.cancel()
        return False

    async def abort(self) -> UploadResult:
        """End now, as a newer upload would: complete fragments are stored, an open one
        is dropped."""
        assert self._task is not None
        self._closed = True
        self.runner.supersede()
        return await self._task


class FrameEncoder(Protocol):
    """The MKV bytes of a stream of audio frames, in a KVS producer's layout."""

    def header(self) -> bytes:
        """EBML header, unknown-size Segment, Info, Tracks."""
        ...

    def cluster_start(self, start_ms: int) -> bytes:
        """A fragment's metadata Tags, then an unknown-size Cluster whose Timecode says
        its first frame is at ``start_ms`` (epoch ms)."""
        ...

    def block(self, track: str | int, relative_ms: int, data: bytes) -> bytes:
        """One frame of ``track``, ``relative_ms`` after its Cluster's start."""
        ...


class FrameMuxer:
    """Timestamped audio frames per track -> the MKV bytes a KVS producer sends for them
    (sans-I/O; :class:`FrameWriter` and the voice connector's legs write its output). A
    new fragment starts with the first frame at or after ``fragment_ms`` past the current
    one's start (a frame of another track may be a little earlier than the start: its
    block timecode is then negative, as MKV allows)."""

    def __init__(self, encoder: FrameEncoder, *, fragment_ms: int = 1000) -> None:
        if not 1 <= fragment_ms <= 10_000:
            raise ValueError("fragment_ms must be 1 .. 10000 (PutMedia's fragment limit)")
        self.encoder = encoder
        self.fragment_ms = fragment_ms
        self._cluster_ms: int | None = None
        self._header_sent = False

    def frame(self, track: str | int, data: bytes, timestamp_ms: int) -> bytes:
        """The bytes for one frame of ``track`` whose first sample is at ``timestamp_ms``
        (epoch ms): the header before the first frame, a new Cluster when one is due."""
        out = []
        if not self._header_sent:
            out.append(self.encoder.header())
            self._header_sent = True
        start = self._cluster_ms
        if start is None or timestamp_ms - start >= self.fragment_ms:
            out.append(self.encoder.cluster_start(timestamp_ms))
            self._cluster_ms = start = timestamp_ms
        out.append(self.encoder.block(track, timestamp_ms - start, data))
        return b"".join(out)


class FrameWriter:
    """An upload of timestamped audio frames per track (PCM or G.711, as the encoder
    declares its tracks), fragmented by a :class:`FrameMuxer`."""

    def __init__(self, writer: Writer, encoder: FrameEncoder, *, fragment_ms: int = 1000) -> None:
        self.writer = writer
        self.muxer = FrameMuxer(encoder, fragment_ms=fragment_ms)

    @property
    def encoder(self) -> FrameEncoder:
        return self.muxer.encoder

    @property
    def fragment_ms(self) -> int:
        return self.muxer.fragment_ms

    async def write(self, track: str | int, data: bytes, timestamp_ms: int) -> None:
        """One frame of ``track`` whose first sample is at ``timestamp_ms`` (epoch ms)."""
        await self.writer.write(self.muxer.frame(track, data, timestamp_ms))

    async def close(self) -> UploadResult:
        """End the upload (the last fragment is completed and stored)."""
        return await self.writer.close()
