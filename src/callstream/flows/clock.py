"""The media clock of a placed call: call audio played frame by frame in (scaled) real time.

Call audio is 8 kHz, 16-bit mono per direction, moved in 20 ms frames. Media time 0 is the
call start (an epoch millisecond, ``call_start_ms``); the clock advances in real time divided
by ``speed``. Frame *k* (samples ``160k .. 160k+159``) is *played* when the clock reaches its
end: only then do its two directions reach the :class:`FrameSink` s (the streams).

* **From the customer**: sample *t* of the call is sample *t* of the customer audio; the
  customer hangs up when it ends (:attr:`MediaClock.customer_left`; the last frame may be
  short), unless the flow ended the media first (:meth:`MediaClock.stop_after_current_frame`).
* **To the customer**: a schedule of non-overlapping segments (prompts, agent audio) queued
  one after the other with :meth:`MediaClock.schedule`, silence between them; a frame is
  rendered when it is played, and what was played is kept (:meth:`MediaClock.heard_audio`).

Waiting is on the media clock: :meth:`MediaClock.until` returns once a sample position has
been played (or the media ended).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
from datetime import UTC, datetime
from typing import Protocol

import numpy as np
import numpy.typing as npt

from callstream.media.resample import resample
from callstream.media.wav import read_wav

__all__ = [
    "FRAGMENT_SAMPLES",
    "FRAME_MS",
    "FRAME_SAMPLES",
    "SAMPLE_RATE",
    "FrameSink",
    "Int16Array",
    "MediaClock",
    "mono_8k",
    "pcm",
]

Int16Array = npt.NDArray[np.int16]
PathLike = str | os.PathLike[str]

SAMPLE_RATE = 8000
FRAME_MS = 20
FRAME_SAMPLES = SAMPLE_RATE * FRAME_MS // 1000
FRAGMENT_SAMPLES = SAMPLE_RATE  # 1 s fragments, aligned to whole media seconds

_MAX_FRAMES_PER_TICK = 250
_MIN_SLEEP_S = 0.002  # at high speeds frames are played in batches rather than one by one


def mono_8k(path: PathLike | bytes) -> Int16Array:
    """Channel 0 of a WAV file (or its bytes) at 8 kHz; ValueError for a broken WAV."""
    audio = read_wav(io.BytesIO(path)) if isinstance(path, bytes) else read_wav(path)
    samples = np.ascontiguousarray(audio.samples[:, 0])
    if audio.rate != SAMPLE_RATE:
        samples = resample(samples, audio.rate, SAMPLE_RATE)
    return np.asarray(samples, dtype=np.int16).reshape(-1)


def pcm(samples: Int16Array) -> bytes:
    """16-bit little-endian PCM bytes of ``samples``."""
    return np.asarray(samples, dtype="<i2").tobytes()


class FrameSink(Protocol):
    """Where played frames go (a live-media-streaming period)."""

    def push(self, a: int, b: int, customer: Int16Array, heard: Int16Array) -> None:
        """One played frame: samples ``[a, b)`` of the call, both directions."""
        ...

    def close(self) -> None:
        """The media ended: no more frames."""
        ...


class MediaClock:
    """The media clock: plays the call frame by frame and hands each frame to the sinks.

    ``emitted`` counts samples played so far; ``limit`` is where the media ends (the end
    of the customer audio, or the frame being played when the flow disconnected).
    """

    def __init__(self, customer: Int16Array, *, speed: float, call_start_ms: int) -> None:
        self.customer = customer
        self.total = int(customer.shape[0])
        self.speed = speed
        self.call_start_ms = call_start_ms
        self.emitted = 0
        self.limit = self.total
        self.stopped_by_flow = False
        self.heard: list[Int16Array] = []
        self.sinks: list[FrameSink] = []
        self.customer_left = asyncio.Event()
        self.done = asyncio.Event()
        self._segments: list[tuple[int, Int16Array]] = []
        self.tail = 0
        self._tick = asyncio.Event()
        self._t0 = 0.0
        self._task: asyncio.Task[None] | None = None

    # clock -----------------------------------------------------------------------------
    @property
    def now_ms(self) -> int:
        """Media time in ms (of the samples played so far)."""
        return self.emitted * 1000 // SAMPLE_RATE

    def epoch_ms(self, sample: int) -> int:
        """Epoch ms of a media sample position."""
        return self.call_start_ms + sample * 1000 // SAMPLE_RATE

    def now(self) -> datetime:
        """The current media time as a UTC datetime (the interpreter's clock)."""
        return datetime.fromtimestamp(self.epoch_ms(self.emitted) / 1000, tz=UTC)

    def next_frame_end(self) -> int:
        """Where the frame being played ends (capped at the end of the media)."""
        return min((self.emitted // FRAME_SAMPLES + 1) * FRAME_SAMPLES, self.limit)

    def start(self) -> None:
        """Start playing (media time 0 is now)."""
        loop = asyncio.get_running_loop()
        self._t0 = loop.time()
        self._task = asyncio.create_task(self._pump(), name="callstream-media-clock")

    async def close(self) -> None:
        """Stop playing now."""
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._finish()

    # to-customer schedule --------------------------------------------------------------
    def schedule(self, audio: Int16Array) -> tuple[int, int]:
        """Queue ``audio`` on the to-customer track after what is already queued; returns
        its ``[start, end)`` sample positions."""
        start = max(self.emitted, self.tail)
        end = start + int(audio.shape[0])
        if end > start:
            self._segments.append((start, audio))
        self.tail = end
        return start, end

    def _render(self, a: int, b: int) -> Int16Array:
        out = np.zeros(b - a, dtype=np.int16)
        keep: list[tuple[int, Int16Array]] = []
        for start, audio in self._segments:
            end = start + int(audio.shape[0])
            lo, hi = max(a, start), min(b, end)
            if lo < hi:
                out[lo - a : hi - a] = audio[lo - start : hi - start]
            if end > b:
                keep.append((start, audio))
        self._segments = keep
        return out

    # waiting ---------------------------------------------------------------------------
    async def until(self, sample: int) -> None:
        """Wait until ``sample`` samples have been played (or the media ended)."""
        while self.emitted < sample and not self.done.is_set():
            tick = self._tick
            await tick.wait()

    async def stop_after_current_frame(self) -> None:
        """End the media after the frame being played (the flow disconnected)."""
        if not self.done.is_set():
            frame_end = (self.emitted // FRAME_SAMPLES + 1) * FRAME_SAMPLES
            self.limit = min(self.limit, frame_end)
            self.stopped_by_flow = True
            self._notify()
            await self.done.wait()

    def hang_up(self) -> None:
        """The customer hangs up after the frame being played (StopContact): the media
        ends there and :attr:`customer_left` is set, as at the end of the customer audio."""
        if not self.done.is_set():
            frame_end = (self.emitted // FRAME_SAMPLES + 1) * FRAME_SAMPLES
            self.limit = min(self.limit, frame_end)
            self._notify()

    def _notify(self) -> None:
        tick, self._tick = self._tick, asyncio.Event()
        tick.set()

    # the pump --------------------------------------------------------------------------
    async def _pump(self) -> None:
        loop = asyncio.get_running_loop()
        frame_s = FRAME_MS / 1000 / self.speed
        try:
            while self.emitted < self.limit:
                frame = self.emitted // FRAME_SAMPLES
                due = self._t0 + (frame + 1) * frame_s
                now = loop.time()
                if now < due:
                    await asyncio.sleep(max(due - now, _MIN_SLEEP_S))
                    continue
                frames_due = int((now - self._t0) / frame_s) - frame
                for _ in range(max(1, min(frames_due, _MAX_FRAMES_PER_TICK))):
                    if self.emitted >= self.limit:
                        break
                    self._play_frame()
                self._notify()
                await asyncio.sleep(0)
            if not self.stopped_by_flow:
                self.customer_left.set()
        finally:
            self._finish()

    def _play_frame(self) -> None:
        a = self.emitted
        b = min(a + FRAME_SAMPLES, self.limit)
        customer = self.customer[a:b]
        heard = self._render(a, b)
        self.heard.append(heard)
        self.emitted = b
        for sink in self.sinks:
            sink.push(a, b, customer, heard)

    def _finish(self) -> None:
        if not self.done.is_set():
            self.done.set()
            for sink in self.sinks:
                sink.close()
            self._notify()

    def heard_audio(self) -> Int16Array:
        """The to-customer track as played."""
        if not self.heard:
            return np.zeros(0, dtype=np.int16)
        return np.concatenate(self.heard).astype(np.int16, copy=False)
